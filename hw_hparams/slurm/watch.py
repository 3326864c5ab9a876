"""Job states while a sweep waits: squeue where sacct has no accounting, and sacct's warnings in one line.

submitit polls `sacct` for the state of its jobs (`SlurmJob.watcher`, a SlurmInfoWatcher). On a
cluster without accounting each poll fails with a warning ("Bypassing sacct error ..., status may be
inaccurate"), and a job that ends without a result (scancel, a killed node) is never seen to end, so
the sweep would wait forever. `watch_without_accounting()` asks sacct once; when it fails, the
watcher asks squeue instead (slurmctld lists an ended job for MinJobAge seconds; a job it no longer
lists has ended). `fold_sacct_warnings()` lets the first of submitit's sacct warnings through and
drops the repeats.
"""

from __future__ import annotations

import getpass
import logging
import subprocess

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger("hw_hparams.slurm")

_HEADER = "JobID|State|NodeList"  # the columns submitit asks sacct for
GONE = "ENDED (no longer listed by squeue)"


class SqueueWatcher(SlurmInfoWatcher):
    """submitit's job watcher reading `squeue --states=all` in sacct's format."""

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", f"--user={getpass.getuser()}"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info = super().read_info(f"{_HEADER}\n{text}")
        for job_id in self._registered - self._finished - info.keys():  # listed since its submission, gone now: ended
            info[job_id] = {"JobID": job_id, "State": GONE}
        return info


def _sacct_error() -> str | None:
    """Why sacct cannot answer on this cluster (its first line), or None when it can."""
    try:
        proc = subprocess.run(
            ["sacct", "--noheader", "-X", "--jobs=1", "--format=JobID"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    return None if proc.returncode == 0 else ((proc.stderr or proc.stdout).strip().splitlines() or ["sacct failed"])[0]


def watch_without_accounting() -> None:
    """Have submitit read job states from squeue when sacct cannot answer (said in one line)."""
    if isinstance(SlurmJob.watcher, SqueueWatcher):
        return
    why = _sacct_error()
    if why is not None:
        log.info("sacct cannot answer here (%s): job states come from squeue", why)
        SlurmJob.watcher = SqueueWatcher(delay_s=60)


class _FoldSacctWarnings(logging.Filter):
    """The first 'Bypassing sacct error' warning, marked as folded; none of the repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in str(record.msg):
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg, record.args = f"{' '.join(record.getMessage().split())} (repeats of this warning are not shown)", ()
        return True


def fold_sacct_warnings() -> None:
    """Install the fold on submitit's logger, once per process."""
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, _FoldSacctWarnings) for f in logger.filters):
        logger.addFilter(_FoldSacctWarnings())
