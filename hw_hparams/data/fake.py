"""Write a small dataset in the exact on-disk format of torchvision's `cifar-100-python/`.

Official layout: `cifar-100-python/{train,test,meta}`, pickles (protocol 2, bytes keys would be
py2; torchvision reads them with `encoding="latin1"`, so str keys work the same) holding
`data` (N x 3072 uint8: 1024 R, then 1024 G, then 1024 B values, row-major 32x32),
`fine_labels`, `coarse_labels` (lists of int), `filenames`, `batch_label`; `meta` holds
`fine_label_names` and `coarse_label_names`.

The images are learnable: each class has its own smooth colour template (an 8x8x3 random pattern
upsampled to 32x32), and every image is that template, shifted by up to 2 pixels, with a random
brightness and pixel noise.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

NUM_CLASSES = 100
NUM_COARSE = 20
FOLDER = "cifar-100-python"


def _templates(rng: np.random.Generator) -> np.ndarray:
    """Class templates, float32 [100, 32, 32, 3] in [0, 255]."""
    low = rng.uniform(0, 255, size=(NUM_CLASSES, 8, 8, 3)).astype(np.float32)
    return low.repeat(4, axis=1).repeat(4, axis=2)


def make_images(labels: np.ndarray, rng: np.random.Generator, templates: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images for integer `labels` [N]."""
    n = len(labels)
    images = templates[labels]
    shifts = rng.integers(-2, 3, size=(n, 2))
    for i, (dy, dx) in enumerate(shifts):  # per-image shift; n is small for fake data
        images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
    images = images * rng.uniform(0.7, 1.3, size=(n, 1, 1, 1)) + rng.normal(0, 60, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def _batch(name: str, images: np.ndarray, labels: np.ndarray) -> dict:
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R plane, G plane, B plane
    return {
        "filenames": [f"fake_{name}_{i:05d}.png" for i in range(len(images))],
        "batch_label": f"{name} batch (fake)",
        "fine_labels": labels.tolist(),
        "coarse_labels": (labels // (NUM_CLASSES // NUM_COARSE)).tolist(),
        "data": np.ascontiguousarray(flat, dtype=np.uint8),
    }


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    return labels.astype(np.int64)


def write_fake_cifar100(root: str | Path, train: int = 5000, test: int = 1000, seed: int = 0) -> Path:
    """Write `root/cifar-100-python/{train,test,meta}`; returns that folder."""
    if train < 1 or test < 1:
        raise ValueError(f"--train and --test must be >= 1 (got {train}, {test})")
    rng = np.random.default_rng(seed)
    templates = _templates(rng)
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        labels = _balanced_labels(n, rng)
        with open(folder / name, "wb") as f:
            pickle.dump(_batch(name, make_images(labels, rng, templates), labels), f, protocol=2)
    meta = {
        "fine_label_names": [f"class_{i:02d}" for i in range(NUM_CLASSES)],
        "coarse_label_names": [f"superclass_{i:02d}" for i in range(NUM_COARSE)],
    }
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder
