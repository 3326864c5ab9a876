"""Shared fixtures: small generated datasets in CIFAR-100's on-disk format."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_hparams.data.fake import write_fake_cifar100


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
