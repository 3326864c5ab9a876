"""How a training job ends on the command line, one line each, never a traceback.

- A user error (ConfigError): exit 2 via `cli.exit_on_user_error`; a sweep stops there (fix, re-run).
- Another live process holds the run folder (RunLocked): exit 2; its folder is left as it is.
- A crash: one log line (summary.json says `failed` when it happened in the epoch loop). A single
  run exits 1; in a sweep (`-m`) the remaining jobs still run, and Hydra then exits 1 naming the
  first failed job. `HYDRA_FULL_ERROR=1` shows the traceback instead. A full disk or an unwritable
  folder is said so; the last checkpoint is intact (checkpoint.save), so a re-run resumes.
- An output folder that cannot be created: exit 2 before Hydra starts (`cli.preflight`).
- Ctrl-C / SIGTERM: summary.json says `interrupted`; exit 130 / 143; a sweep stops there.
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

from hydra.errors import CompactHydraException

from .cli import exit_on_user_error, fail
from .config import ConfigError
from .interrupt import Interrupted, exit_code, signal_name
from .lock import RunLocked

log = logging.getLogger("hw_hparams.train")

DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class JobFailed(CompactHydraException):
    """A job of a sweep crashed; Hydra prints this one line (after running the other jobs) and exits 1."""


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
            if isinstance(err, OSError) and err.errno in DISK_ERRORS:
                line = (
                    f"{run_dir} failed: cannot write {err.filename or 'a file'}: {err.strerror}; the last checkpoint "
                    "is intact: free space (or fix permissions) and re-run the same command to resume"
                )
            else:
                text = " ".join(str(err).split())[:300]
                line = f"{run_dir} failed: {type(err).__name__}: {text}"
            if multirun:  # Hydra runs the other jobs, then prints this line and how to see the traceback
                log.error(line)
                raise JobFailed(line) from err
            log.error("%s (HYDRA_FULL_ERROR=1 shows the traceback)", line)
            sys.exit(1)


def exit_interrupted(err: KeyboardInterrupt) -> None:
    """Exit 128 + signal number; one line on stderr unless the run already logged its own."""
    if not getattr(err, "reported", False):
        print(f"error: interrupted by {signal_name(err)}; re-run the same command to resume", file=sys.stderr)
    sys.exit(exit_code(err))
