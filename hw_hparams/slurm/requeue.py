"""Inside a SLURM job run by submitit: its requeue signal, and which attempt of the job this is.

SLURM sends submitit's requeue signal (USR2, or $SUBMITIT_PREEMPT_SIGNAL) `signal_delay_s` before the
job's time limit. submitit's handler for it (`submitit/core/job_environment.py`,
`SignalHandler.checkpoint_and_try_requeue`) pickles the launcher's `checkpoint()` (the same job
again), runs `scontrol requeue` and raises SystemExit wherever the program happens to be; a job that
timed out `max_num_timeout` times is not requeued (it raises an error instead). `interrupt.handle_signals`
takes the signal over while a run trains: it waits outside `deferred()` blocks like SIGTERM does,
then `requeue()` runs submitit's handler, and the run ends as `requeued` (or `interrupted` when it
was not requeued). When SLURM starts the job again, the run resumes after its last checkpoint.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def requeue_signal() -> signal.Signals | None:
    """The signal submitit requeues this process's job on, if this is a submitit job that handles it."""
    if "SUBMITIT_EXECUTOR" not in os.environ:  # set in every job submitit runs
        return None
    from submitit.core.job_environment import JobEnvironment, SignalHandler

    sig = signal.Signals[f"SIG{JobEnvironment.USR_SIG}"]
    owner = getattr(signal.getsignal(sig), "__self__", None)
    return sig if isinstance(owner, SignalHandler) else None


def requeue(handler: Callable, signum: int) -> SystemExit | str:
    """Run submitit's requeue handler: the SystemExit it raised once the job is requeued (raise it again
    when the run has recorded that: submitit_local requeues on its exit status), else why it did not requeue."""
    try:
        handler(signum, None)
    except SystemExit as exit_:  # submitit exits right after `scontrol requeue` succeeded
        return exit_
    except Exception as err:  # noqa: BLE001 - e.g. "timed-out too many times", or scontrol failed
        return " ".join(str(err).split()) or type(err).__name__
    return "submitit requeues from the job's first task only"


def job() -> dict | None:
    """{"job_id", "attempt"} of the SLURM job this process runs in (attempt 1, then 2 after a requeue, ...);
    None outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return {"job_id": job_id, "attempt": int(os.environ.get("SLURM_RESTART_COUNT") or 0) + 1}


def stopped(signame: str, done: int, epochs: int, not_requeued: str | None) -> tuple[str, str]:
    """(status, line) of a run that the requeue signal stopped after `done` of `epochs` epochs."""
    if not_requeued is not None:
        return "interrupted", (
            f"stopped by {signame} (SLURM time limit or preemption) after epoch {done} of {epochs} and not requeued "
            f"({not_requeued}); re-run the same command to resume"
        )
    info = job()
    if info is None:  # submitit_local requeues too
        return (
            "requeued",
            f"requeued by submitit ({signame}) after epoch {done} of {epochs}: the job's next attempt resumes it",
        )
    return "requeued", (
        f"requeued by SLURM ({signame}: time limit or preemption) after epoch {done} of {epochs}: attempt "
        f"{info['attempt'] + 1} of job {info['job_id']} resumes it when it starts"
    )
