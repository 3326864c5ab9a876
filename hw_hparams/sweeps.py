"""One sweep of `python -m hw_hparams.train -m`, seen from outside: its run folders, their state, a run.

`run_dirs` names the folder of every job a command line would run, exactly as Hydra will (the
experiment's `hydra.sweeper.params` expanded, each job's `hydra.job.override_dirname` computed by
Hydra's own config loader), so a driver can read results and tell finished sweeps from unfinished
ones without launching anything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path


from .cli import check_overrides
from .run_files import read_json

log = logging.getLogger("hw_hparams.sweeps")
FINISHED = ("completed", "diverged")


def run_dirs(overrides: list[str], sweep_dir: Path) -> list[Path]:
    """The run folder of every job of `python -m hw_hparams.train -m *overrides` in `sweep_dir`, in job order."""
    return [sweep_dir / cfg.hydra.sweep.subdir for cfg in check_overrides("train", overrides, multirun=True, limit=None)]


def check(overrides: list[str]) -> None:
    """Raise ConfigError (one line) when any job of the sweep would not compose or validate."""
    check_overrides("train", overrides, multirun=True)


def summary_of(run_dir: Path) -> dict | None:
    """The run's summary.json, or None when it has not started."""
    path = run_dir / "summary.json"
    return read_json(path) if path.exists() else None


def is_finished(run_dir: Path, need_test: bool = False) -> bool:
    """Completed or diverged (and, with `need_test`, completed with its test split evaluated)."""
    s = summary_of(run_dir)
    if s is None or s["status"] not in FINISHED:
        return False
    return not need_test or s["status"] != "completed" or s["test"] is not None


def launch(overrides: list[str], sweep_dir: Path) -> int:
    """Run the sweep as `python -m hw_hparams.train -m ... hydra.sweep.dir=sweep_dir`; its exit status.

    A subprocess, so that any Hydra launcher (joblib, submitit) runs the jobs, and output streams through.
    """
    cmd = [sys.executable, "-m", "hw_hparams.train", "-m", *overrides, f"hydra.sweep.dir='{sweep_dir}'"]
    log.info("running: %s", " ".join(cmd[1:]))
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # a terminal's Ctrl-C reaches the sweep too; let it record where it stopped
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # the interrupt was ours alone: pass it on
            proc.send_signal(signal.SIGINT)
            proc.wait()
        raise
