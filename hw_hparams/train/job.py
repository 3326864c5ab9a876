"""A training job's side of Hydra: its record in the run folder, and how it ends on the command line.

`record(run_dir)` writes Hydra's record of the command (`.hydra/config.yaml`, `hydra.yaml`,
`overrides.yaml`) and logs to `train.log`, once the run is accepted and trains (Hydra itself writes
nothing into run folders: conf/train.yaml), so a refused command leaves every file as it was.

Each way a job ends is one line, never a traceback:

- A user error (ConfigError): exit 2 via `cli.exit_on_user_error`; a sweep stops there (fix, re-run).
- Another live process holds the run folder (RunLocked): exit 2; its folder is left as it is.
- A crash: one log line (summary.json says `failed` when it happened in the epoch loop). A single
  run exits 1; in a sweep (`-m`) the remaining jobs still run, and Hydra then exits 1 naming the
  first failed job. `HYDRA_FULL_ERROR=1` shows the traceback instead. A full disk or an unwritable
  folder is said so; the last checkpoint is intact (checkpoint.save), so a re-run resumes.
- An output folder that cannot be created: exit 2 before Hydra starts (`cli.preflight`).
- Ctrl-C / SIGTERM: summary.json says `interrupted`; exit 130 / 143; a sweep stops there.
- The GPU cannot be used any more in this process (engine/gpu.py: an unrecoverable CUDA error, or a
  failed CUDA-graph capture whose aftermath could not be shown sound): one line, summary.json says
  `failed`, exit 75 (EXIT_RESUME), and a sweep stops there (every later job of the process would fail
  the same way); re-running the same command resumes every run from its last checkpoint.
- SLURM's requeue signal in a submitit job: summary.json says `requeued`; the job exits as submitit
  chose (slurm/requeue.py), and starts again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from hw_hparams.config.errors import ConfigError, fail, say
from hw_hparams.engine.gpu import EXIT_RESUME, DeviceUnusable
from hw_hparams.runs.folder import atomic_write_bytes
from hw_hparams.runs.format import HYDRA_RECORD, LOG
from hw_hparams.runs.interrupt import Interrupted, exit_code, signal_name
from hw_hparams.runs.lock import RunLocked
from hw_hparams.train.preflight import exit_on_user_error

log = logging.getLogger("hw_hparams.train")

DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class JobFailed(CompactHydraException):
    """A job of a sweep crashed; Hydra prints this one line (after running the other jobs) and exits 1."""


LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # when not under Hydra


@contextlib.contextmanager
def record(run_dir: Path, task_cfg, hydra_cfg=None):
    """Write the command's record into `run_dir` (under Hydra: `hydra_cfg`, default the current job's)
    and log to its train.log while the block runs: every line that names no run, and the lines that
    name this one (`extra={"run": run_dir}`), so runs trained together keep their logs apart."""
    log_format = LOG_FORMAT
    if hydra_cfg is None and HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
    if hydra_cfg is not None:
        folder = run_dir / HYDRA_RECORD
        folder.mkdir(exist_ok=True)
        for name, node in (
            ("config.yaml", task_cfg),
            ("hydra.yaml", OmegaConf.create({"hydra": hydra_cfg})),
            ("overrides.yaml", hydra_cfg.overrides.task),
        ):
            atomic_write_bytes(folder / name, OmegaConf.to_yaml(node).encode())
        log_format = OmegaConf.select(hydra_cfg, "job_logging.formatters.simple.format", default=LOG_FORMAT)
    handler = logging.FileHandler(run_dir / LOG)
    handler.setFormatter(logging.Formatter(log_format))
    handler.addFilter(lambda r: getattr(r, "run", run_dir) == run_dir)
    root, ours = logging.getLogger(), logging.getLogger("hw_hparams")
    level = ours.level
    if ours.getEffectiveLevel() > logging.INFO:  # outside Hydra (which sets INFO): the log still gets its lines
        ours.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        ours.setLevel(level)


@contextlib.contextmanager
def job_outcome(run_dir: Path, multirun: bool):
    """Run one job's body, turning each way it can end into one line and the right exit."""
    with exit_on_user_error(run_dir):
        try:
            yield
        except RunLocked as err:
            fail(str(err))  # the folder belongs to the live process: nothing of it is removed
        except Interrupted as err:
            if err.requeued is not None:  # submitit's exit, now that the run says `requeued`
                raise err.requeued from None
            raise
        except ConfigError:
            raise
        except Exception as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if isinstance(err, DeviceUnusable):
                exit_device_unusable(err, run_dir)
            line = failure_line(run_dir, err)
            if multirun:  # Hydra runs the other jobs, then prints this line and how to see the traceback
                log.error(line)
                raise JobFailed(line) from err
            log.error("%s (HYDRA_FULL_ERROR=1 shows the traceback)", line)
            sys.exit(1)


def exit_device_unusable(err: DeviceUnusable, where: object) -> NoReturn:
    """This process cannot use its GPU any more: one line, exit EXIT_RESUME, even in a sweep (every later job
    of the process would fail the same way)."""
    log.error("%s stopped: %s (exit %d)", where, err, EXIT_RESUME)
    sys.exit(EXIT_RESUME)


def failure_line(run_dir: Path, err: BaseException) -> str:
    """The one line for a job that ended in `err`: a user error as it is, a full disk said so, a crash named."""
    if isinstance(err, ConfigError):
        return str(err)
    if isinstance(err, OSError) and err.errno in DISK_ERRORS:
        return (
            f"{run_dir} failed: cannot write {err.filename or 'a file'}: {err.strerror}; the last checkpoint "
            "is intact: free space (or fix permissions) and re-run the same command to resume"
        )
    return f"{run_dir} failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}"


def exit_interrupted(err: KeyboardInterrupt) -> None:
    """Exit 128 + signal number; one line on stderr unless the run already logged its own."""
    if not (isinstance(err, Interrupted) and err.reported):
        say(f"interrupted by {signal_name(err)}; re-run the same command to resume")
    sys.exit(exit_code(err))
