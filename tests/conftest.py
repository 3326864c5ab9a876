"""Shared fixtures: small generated datasets in CIFAR-100's on-disk format, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw_hparams.data.fake import write_fake_cifar100

# Overrides that point a run at a generated dataset and keep it small and quick on the CPU.
def fake_data_overrides(root: Path, val_size: int = 100) -> list[str]:
    return [f"data.root={root}", "data.verify_checksums=false", "data.download=false", f"data.val_size={val_size}"]


TINY_RUN = ["model=tiny", "batch_size=50", "trainer.progress=false"]


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """600 training + 100 test images, 100 classes (val_size 100 leaves 500 for training)."""
    root = tmp_path_factory.mktemp("fake_cifar")
    write_fake_cifar100(root, train=600, test=100, seed=0)
    return root


@pytest.fixture(scope="session")
def learnable_root(tmp_path_factory) -> Path:
    """3000 training + 200 test images, for the learnability check."""
    root = tmp_path_factory.mktemp("learnable_cifar")
    write_fake_cifar100(root, train=3000, test=200, seed=1)
    return root


def run_cli(args: list[str], cwd: Path, module: str = "hw_hparams.train", timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd`, capturing output (HYDRA_FULL_ERROR unset)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
