"""Ctrl-C (SIGINT), SIGTERM (what SLURM sends before it cancels a job) and SLURM's requeue signal as one exception.

Inside `handle_signals()`, each of them raises `Interrupted` (a KeyboardInterrupt) in the main
thread at the next Python instruction, so the epoch in progress is abandoned, except inside a
`deferred()` block (a checkpoint and the files that describe it being written): there the signal
waits until the block ends. In a SLURM job run by submitit, its requeue signal (USR2) is taken over
too (slurm/requeue.py): once it may act, submitit requeues the job (SIGTERM, which SLURM sends then,
is ignored meanwhile), and the `Interrupted` it raises says whether the job was requeued.
`stop_reason(err, ...)` is the status and the line a stopped run records; `exit_code(err)` is the
shell's convention, 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from hw_hparams.slurm import requeue

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal arrived; `signum` says which. After the requeue signal, `requeued` is submitit's
    SystemExit once it requeued the job (`job.job_outcome` raises it again), else `not_requeued` says why not."""

    def __init__(self, signum: int, requeued: SystemExit | None = None, not_requeued: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.requeued = requeued
        self.not_requeued = not_requeued
        self.reported = False  # each stopped run said so in its own line (train/loop.py)


_state = {"depth": 0, "pending": None, "requeue": {}, "requeued": False}


def _on_signal(signum, frame) -> None:
    if _state["requeued"] and signum == signal.SIGTERM:  # SLURM ends a requeued job with SIGTERM: already stopping
        return
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    raise _interrupted(signum)


def _interrupted(signum: int) -> Interrupted:
    handler = _state["requeue"].get(signum)
    if handler is None:
        return Interrupted(signum)
    # `scontrol requeue` makes SLURM send SIGTERM to every process of the job, scontrol included: ignored
    # meanwhile (scontrol inherits that, so it lives to report success); other signals wait.
    _state["depth"] += 1
    term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        outcome = requeue.requeue(handler, signum)
    finally:
        signal.signal(signal.SIGTERM, term)
        _state["depth"] -= 1
    if isinstance(outcome, str):
        return Interrupted(signum, not_requeued=outcome)
    _state.update(requeued=True, pending=None)
    return Interrupted(signum, requeued=outcome)


@contextlib.contextmanager
def handle_signals():
    """Turn SIGINT, SIGTERM and submitit's requeue signal into `Interrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    extra = requeue.requeue_signal()
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS + ((extra,) if extra else ())}
    _state["requeue"] = {extra: previous[extra]} if extra else {}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _state.update(depth=0, pending=None, requeue={}, requeued=False)


@contextlib.contextmanager
def deferred():
    """Hold the signals until the block ends, then raise `Interrupted` for the first one held."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if not _state["depth"] and _state["pending"]:
        signum, _state["pending"] = _state["pending"], None
        raise _interrupted(signum)


def stop_reason(err: KeyboardInterrupt, done: int, epochs: int) -> tuple[str, str]:
    """(status, line) for a run that `err` stopped after `done` of `epochs` epochs: `interrupted`, or `requeued`."""
    if getattr(err, "signum", None) not in (None, signal.SIGINT, signal.SIGTERM):
        return requeue.stopped(signal_name(err), done, epochs, err.not_requeued)
    return (
        "interrupted",
        f"interrupted by {signal_name(err)} after epoch {done} of {epochs}; re-run the same command to resume",
    )


def signal_name(err: KeyboardInterrupt) -> str:
    """SIGINT, SIGTERM, SIGUSR2 (a plain KeyboardInterrupt is Ctrl-C: SIGINT)."""
    return signal.Signals(getattr(err, "signum", signal.SIGINT)).name


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(getattr(err, "signum", signal.SIGINT))
