"""The study's data: CIFAR-100 loaded, split 40k/10k, statistics from the training split, kept on the device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hw_hparams.data.augment import Normalize, crop_flip
from hw_hparams.data.cifar import (
    DataError,
    cached_channel_stats,
    channel_stats,
    check_dataset,
    load_cifar100,
    split_indices,
)

__all__ = [
    "DataError",
    "Normalize",
    "Split",
    "Splits",
    "channel_stats",
    "check_dataset",
    "crop_flip",
    "load_splits",
    "split_indices",
]


@dataclass
class Split:
    """One split on the training device: images uint8 [N, 3, 32, 32], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    stats: dict  # what data_stats.json holds


def load_splits(data_cfg, device: torch.device) -> Splits:
    """Load CIFAR-100 per `data_cfg` (the `data` config node) and move the three splits to `device`."""
    arrays = load_cifar100(data_cfg.root, data_cfg.download, data_cfg.verify_checksums)
    train_idx, val_idx = split_indices(len(arrays.train_labels), data_cfg.val_size, data_cfg.split_seed)
    train_images = arrays.train_images[train_idx]
    train_labels = arrays.train_labels[train_idx]
    key = f"{arrays.fingerprint}-n{len(arrays.train_labels)}-val{data_cfg.val_size}-seed{data_cfg.split_seed}"
    cache = arrays_cache_dir(data_cfg.root)
    mean, std = cached_channel_stats(cache, key, train_images)
    counts = torch.bincount(train_labels, minlength=len(arrays.classes))
    stats = {
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(arrays.test_labels)},
        "split_seed": int(data_cfg.split_seed),
        "mean": mean,
        "std": std,
        "class_names": arrays.classes,
        "class_counts": counts.tolist(),
        "class_proportions": (counts.double() / len(train_idx)).tolist(),
        "dataset_fingerprint": arrays.fingerprint,
    }

    def split(images: torch.Tensor, labels: torch.Tensor) -> Split:
        return Split(images.to(device), labels.to(device))

    return Splits(
        train=split(train_images, train_labels),
        val=split(arrays.train_images[val_idx], arrays.train_labels[val_idx]),
        test=split(arrays.test_images, arrays.test_labels),
        stats=stats,
    )


def arrays_cache_dir(root: str) -> Path:
    """Where cached statistics live: beside the dataset, so every run on it shares them."""
    return Path(root) / "cifar-100-python" / ".hw_hparams_cache"
