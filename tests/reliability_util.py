"""Helpers shared by the reliability tests (tests/*/test_reliability_*.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
import torch
from support import ONE_THREAD, PATIENCE_S, TINY_RUN, fake_data_overrides, finish, run_cli, start_cli, without_timing  # noqa: F401 - TINY_RUN, fake_data_overrides, run_cli: re-exported
from support import compose_train as cfg
from support import read_rows as rows
from torch.optim.optimizer import register_optimizer_step_post_hook

HERE = Path(__file__).resolve().parent


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """stderr is exactly one line, `error: ...`, containing `words`; no traceback anywhere. Returns the line."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


EPOCHS = 3  # a reliability test's run
STEPS_PER_EPOCH = 10  # fake_root: 500 training images (val_size 100) in batches of 50 (TINY_RUN)
RUN_FILES = ("history.csv", "summary.json", "checkpoint.pt", "checkpoint.prev.pt", "data_stats.json")


def file_states(folder: Path, mtimes: bool = True) -> dict:
    """name -> (bytes, mtime_ns) of the run files present in `folder` (equal: nothing was rewritten);
    with mtimes=False, name -> bytes (equal: nothing changed)."""
    return {
        n: ((folder / n).read_bytes(), (folder / n).stat().st_mtime_ns) if mtimes else (folder / n).read_bytes()
        for n in RUN_FILES
        if (folder / n).exists()
    }


def start_train(args: list[str], cwd: Path):
    """`python -m hw_hparams.train args` in the background (support.start_cli; one thread)."""
    return start_cli(args, cwd, env=ONE_THREAD)


def run_many(jobs: list[tuple[list[str], Path]], timeout: float = PATIENCE_S) -> list[subprocess.CompletedProcess]:
    """Run several `python -m hw_hparams.train` command lines at once (each in its own folder); fails
    saying which did not end within `timeout` seconds."""
    procs = [start_train(args, cwd) for args, cwd in jobs]
    return [finish(p, f"`python -m hw_hparams.train {' '.join(args)}`", timeout) for p, (args, _) in zip(procs, jobs)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """In-process runs on one CPU thread (several times faster on a busy 2-core machine); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def straight_history(tmp_path_factory, overrides: list[str]) -> list[dict]:
    """The history (without timings) of an uninterrupted in-process run of `overrides`."""
    run_dir = tmp_path_factory.mktemp("straight")
    from hw_hparams.train.lifecycle import run

    run(cfg(overrides), run_dir)
    return without_timing(rows(run_dir / "history.csv"))


@contextlib.contextmanager
def signal_at_step(sig: int, step: int):
    """Send this process `sig` right after the `step`-th optimizer step (counted from 1) inside the block."""
    steps = []

    def hook(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), sig)

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def signal_in_checkpoint_write(monkeypatch, sig: int, nth: int = 2) -> None:
    """Send this process `sig` while the `nth` checkpoint is being written (at its fsync)."""
    real_fsync, writes = os.fsync, []

    def fsync(fd):
        if ".checkpoint.pt.tmp" in os.readlink(f"/proc/self/fd/{fd}"):
            writes.append(1)
            if len(writes) == nth:
                os.kill(os.getpid(), sig)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
