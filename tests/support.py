"""Helpers shared by the test modules (import as `from support import ...`)."""

from __future__ import annotations

import csv
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import command_server
from hydra import compose, initialize_config_dir

from hw_hparams.config.naming import CONFIG_DIR

# Epochs: ceil(15 x 0.004) = 1 for the lr sweep, ceil(300 x 0.004) = 2 for the others; 100 training images.
DEMO = [
    "demo=true",
    "study=t",
    "demo_epoch_scale=0.004",
    "demo_train=150",
    "demo_val=50",
    "demo_test=20",
    "trainer.progress=false",
    "trainer.device=cpu",
]
# CPU float sums depend on the thread count; with one thread a run's numbers are the same in any process.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}

# Run settings that keep a CPU run small and quick.
TINY_RUN = ["model=tiny", "batch_size=50", "trainer.progress=false"]

# How long a test waits for a child process or a condition before it calls it stuck, in seconds. Sized
# for a 2-core machine busy with other work (a second copy of the suite, say), where a tiny run's
# command takes a minute instead of a few seconds: generous, because a slow machine is no failure.
PATIENCE_S = 900
LONG_PATIENCE_S = 1800  # a whole demo study, the kill harness: minutes alone

T = TypeVar("T")


def path_with_tests() -> dict[str, str]:
    """{"PYTHONPATH": tests/, then the current PYTHONPATH}: a command started with it imports the tests' helpers
    (fault_inject, a Hydra callback such as rendezvous or slow_steps, search_plan), and so do its jobs."""
    return {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    }


def shared_folder(tmp_path_factory) -> Path:
    """The temporary folder every process of this test session shares: the controller's under pytest-xdist (each
    worker's own is a folder in it), else the session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = PATIENCE_S, alive=None, interval: float = 0.05
) -> T:
    """Poll `condition()` until it returns something true, and return that. Fail, saying `what` was
    waited for and for how long, after `timeout` seconds, or as soon as `alive` (a Popen that should
    still be running meanwhile) has exited, with the end of its output."""
    start = time.monotonic()
    while True:
        value = condition()
        if value:
            return value
        waited = time.monotonic() - start
        if alive is not None and alive.poll() is not None:
            out, err = alive.communicate()
            raise AssertionError(
                f"waited {waited:.0f} s for {what}, but the process exited with {alive.returncode} first:\n"
                f"{(out or '')[-2000:]}{(err or '')[-3000:]}"
            )
        if waited > timeout:
            raise AssertionError(f"waited {timeout:.0f} s for {what}: it did not happen")
        time.sleep(interval)


def finish(proc: subprocess.Popen, what: str, timeout: float = PATIENCE_S) -> subprocess.CompletedProcess:
    """Wait for `proc` to exit (its output captured); fail after `timeout` s saying `what` it was doing, with its
    output so far."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"{what} did not end within {timeout:.0f} s; killed it:\n{(out or '')[-2000:]}{(err or '')[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def fake_data_overrides(root: Path, val_size: int = 100) -> list[str]:
    """Overrides that point a run at a generated dataset under `root`."""
    return [f"data.root={root}", "data.verify_checksums=false", "data.download=false", f"data.val_size={val_size}"]


def small_data_overrides(small_root: Path) -> list[str]:
    """Overrides for the `small_root` fixture's 140 images: 40 for validation, 100 for training (2 batches of 50)."""
    return fake_data_overrides(small_root, val_size=40)


def compose_train(overrides: list[str]):
    """The training config for `overrides`, as `python -m hw_hparams.train` composes it."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def small_cfg(root: Path, *extra: str):
    """A 2-epoch tiny-model run on `small_root`'s data (`small_data_overrides`)."""
    return compose_train(
        [*small_data_overrides(root), "model=tiny", "epochs=2", "batch_size=50", "trainer.progress=false", *extra]
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file as a list of dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def start_cli(
    args: list[str],
    cwd: Path,
    module: str = "hw_hparams.train",
    env: dict | None = None,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    start_new_session: bool = False,
):
    """`python -m module args` started in `cwd` (HYDRA_FULL_ERROR unset; `env` added), its output as subprocess.Popen
    takes it (PIPE: text): a process forked from one that has imported torch and the commands (command_server.py),
    or, where its environment needs it or HW_TEST_SPAWN=1, a fresh interpreter (a Popen)."""
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **(env or {})}
    how = {"stdout": stdout, "stderr": stderr, "start_new_session": start_new_session}
    return command_server.start(module, args, cwd, env, **how) or subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, text=True, **how
    )


def run_cli(
    args: list[str], cwd: Path, module: str = "hw_hparams.train", timeout: float = PATIENCE_S, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd` (`start_cli`), its output captured; fails after `timeout` seconds saying
    which command did not end."""
    return finish(start_cli(args, cwd, module, env), f"`python -m {module} {' '.join(args)}`", timeout)


def shown_lines(screen: str) -> list[str]:
    """The lines a terminal shows once `screen` (run_in_terminal's) is written to it: each line's text after its last
    carriage return (a bar drawn and wiped before it is gone), erase-line sequences dropped."""
    return [line.rstrip("\r").rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in screen.split("\n")]


def run_in_terminal(
    args: list[str],
    cwd: Path,
    module: str = "hw_hparams.train",
    timeout: float = PATIENCE_S,
    env: dict | None = None,
    size: tuple[int, int] = (24, 80),
) -> tuple[int, str]:
    """`python -m module args` in `cwd` on a pseudo-terminal of `size` (rows, columns), as a person's
    shell runs it: stdin, stdout and stderr are the terminal (isatty() is true). Returns (exit status,
    everything written to the terminal, decoded; the terminal turns each \\n into \\r\\n). Fails after
    `timeout` seconds saying which command did not end, with its last output."""
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "TERM": "xterm", **(env or {})}
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,  # its own session, as a shell's job: no signal of ours reaches it
    )
    os.close(slave)
    out, deadline = bytearray(), time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise AssertionError(
                    f"`python -m {module} {' '.join(args)}` on a terminal did not end within {timeout:.0f} s; "
                    f"killed it:\n{out[-3000:].decode(errors='replace')}"
                )
            if select.select([master], [], [], min(left, 1.0))[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    chunk = b""
                if not chunk:
                    break
                out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=PATIENCE_S), out.decode(errors="replace")


def without_timing(history: list[dict]) -> list[dict]:
    """History rows without the `epoch_time_s` column (the only one that may differ between equal runs)."""
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


def stamps(study: Path) -> dict[Path, int]:
    """mtime (ns) of every run's summary.json, history.csv and checkpoint.pt in a study folder."""
    return {
        p: p.stat().st_mtime_ns
        for pattern in ("*/*/summary.json", "*/*/history.csv", "*/*/checkpoint.pt")
        for p in study.glob(pattern)
    }
