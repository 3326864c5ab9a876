"""Helpers shared by the reliability tests (tests/test_reliability_*.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


from support import TINY_RUN, compose_train as cfg, fake_data_overrides, read_rows as rows, run_cli, without_timing  # noqa: F401


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """stderr is exactly one line, `error: ...`, containing `words`; no traceback anywhere. Returns the line."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


RUN_FILES = ("history.csv", "summary.json", "checkpoint.pt", "checkpoint.prev.pt", "data_stats.json")


def file_states(folder: Path, mtimes: bool = True) -> dict:
    """name -> (bytes, mtime_ns) of the run files present in `folder` (equal: nothing was rewritten);
    with mtimes=False, name -> bytes (equal: nothing changed)."""
    return {
        n: ((folder / n).read_bytes(), (folder / n).stat().st_mtime_ns) if mtimes else (folder / n).read_bytes()
        for n in RUN_FILES if (folder / n).exists()
    }


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m hw_hparams.train args` in the background (one thread, HYDRA_FULL_ERROR unset)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen([sys.executable, "-m", "hw_hparams.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_many(jobs: list[tuple[list[str], Path]], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Run several `python -m hw_hparams.train` command lines at once (each in its own folder)."""
    procs = [start_cli(args, cwd) for args, cwd in jobs]
    results = []
    for p, (args, _) in zip(procs, jobs):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            out, err = p.communicate()
        results.append(subprocess.CompletedProcess(args, p.returncode, out, err))
    return results


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """In-process runs on one CPU thread (several times faster on a busy 2-core machine); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
