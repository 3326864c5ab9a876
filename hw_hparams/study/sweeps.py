"""One sweep of `python -m hw_hparams.train -m`, seen from outside: its run folders, and a launch.

`run_dirs` names the folder of every job a command line would run, exactly as Hydra will (the
experiment's `hydra.sweeper.params` expanded, each job's folder named by naming.py), so a driver
can read results and tell finished sweeps from unfinished ones without launching anything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from hw_hparams.config import naming
from hw_hparams.config.overrides import command_jobs
from hw_hparams.train.preflight import check_overrides

log = logging.getLogger("hw_hparams.study.sweeps")


def run_dirs(overrides: list[str], sweep_dir: Path) -> list[Path]:
    """The run folder of every job of `python -m hw_hparams.train -m *overrides` in `sweep_dir`, in job order."""
    return [
        sweep_dir / naming.job_folder(cfg, multirun=True).name
        for cfg in check_overrides(overrides, multirun=True, limit=None)
    ]


def jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of every job of `python -m hw_hparams.train -m *overrides`, as Hydra's sweeper makes them."""
    with naming.hydra_context():
        return command_jobs(overrides, multirun=True)


def check(overrides: list[str]) -> list:
    """Every job's composed config; ConfigError (one line) when any would not compose or validate."""
    return check_overrides(overrides, multirun=True, limit=None)


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
