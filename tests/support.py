"""Helpers shared by the test modules (import as `from support import ...`)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

# Epochs: ceil(15 x 0.004) = 1 for the lr sweep, ceil(300 x 0.004) = 2 for the others; 100 training images.
DEMO = ["demo=true", "study=t", "demo_epoch_scale=0.004", "demo_train=150", "demo_val=50", "demo_test=20",
        "trainer.progress=false", "trainer.device=cpu"]
# CPU float sums depend on the thread count; with one thread a run's numbers are the same in any process.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}

# Run settings that keep a CPU run small and quick.
TINY_RUN = ["model=tiny", "batch_size=50", "trainer.progress=false"]


def fake_data_overrides(root: Path, val_size: int = 100) -> list[str]:
    """Overrides that point a run at a generated dataset under `root`."""
    return [f"data.root={root}", "data.verify_checksums=false", "data.download=false", f"data.val_size={val_size}"]


def compose_train(overrides: list[str]):
    """The training config for `overrides`, as `python -m hw_hparams.train` composes it."""
    with initialize_config_module("hw_hparams.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file as a list of dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_cli(args: list[str], cwd: Path, module: str = "hw_hparams.train", timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd`, capturing output (HYDRA_FULL_ERROR unset; `env` added)."""
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def without_timing(history: list[dict]) -> list[dict]:
    """History rows without the `epoch_time_s` column (the only one that may differ between equal runs)."""
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


def stamps(study: Path) -> dict[Path, int]:
    """mtime (ns) of every run's summary.json, history.csv and checkpoint.pt in a study folder."""
    return {p: p.stat().st_mtime_ns for pattern in ("*/*/summary.json", "*/*/history.csv", "*/*/checkpoint.pt")
            for p in study.glob(pattern)}
