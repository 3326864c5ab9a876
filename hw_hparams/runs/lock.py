"""One process per run folder: an exclusive `flock` on `<run>/.run.lock`, which names its holder.

The kernel drops the lock when its process ends, however it ends (SIGKILL, a crash, a lost node
on a shared file system once its lease expires), so a killed run never blocks the next one. The file
holds `pid <pid> on <host> since <time>` for the refusal message and is removed on a clean exit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from hw_hparams.config.errors import ConfigError
from hw_hparams.runs.format import LOCK

log = logging.getLogger(__name__)


class RunLocked(ConfigError):
    """Another live process holds the run folder; the folder belongs to it and is left as it is."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 200).decode(errors="replace").strip()
    return text or "another process"


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (its holder may have removed it meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _refusal(path: Path, holder: str) -> RunLocked:
    return RunLocked(
        f"{path.parent} is in use by {holder}; two processes must not train one run: "
        "wait for that one to end, or stop it"
    )


def check_free(run_dir: Path) -> None:
    """Raise RunLocked if a live process holds `run_dir`; creates and changes nothing."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:  # no lock file (or no folder): nobody holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            raise _refusal(run_dir / LOCK, _holder(fd)) from None
    finally:
        os.close(fd)  # also releases a lock we just took


def _acquire(path: Path) -> int | None:
    """The locked file's descriptor; None where the file system has no locks. Raises RunLocked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(fd) if err.errno in (errno.EAGAIN, errno.EACCES) else None
            os.close(fd)
            if holder is None:  # e.g. Lustre mounted without `flock`
                log.warning(
                    "cannot lock %s (%s): nothing stops a second process from training this run", path, err.strerror
                )
                return None
            raise _refusal(path, holder) from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # we locked a file its holder had just removed: take the new one


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold `run_dir` for this process; raise RunLocked if another live process holds it."""
    path = run_dir / LOCK
    fd = _acquire(path)
    if fd is None:
        yield
        return
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked, so no one can lock the old file after we let go
        os.close(fd)
