"""CIFAR-100 as the study uses it: torchvision loading, the 40k/10k split, pixel statistics.

Images stay uint8 [N, 3, 32, 32] (RGB planes) until the training device normalises them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

import numpy as np
import torch

from hw_hparams.config.errors import ConfigError

log = logging.getLogger(__name__)


class DataError(ConfigError):
    """A dataset problem the user can fix; the message says what to do."""


ARCHIVE = "cifar-100-python.tar.gz"  # what torchvision downloads into data.root (its CIFAR100.filename)


@functools.cache
def _dataset_class(verify_checksums: bool) -> type:
    """torchvision's CIFAR100, or (verify_checksums false) its parsing with the md5 checks off (files must
    still exist). Imported when data is read: torchvision's import costs every command ~1.4 s, one that
    stops at a config error too."""
    from torchvision.datasets import CIFAR100

    if verify_checksums:
        return CIFAR100

    class UncheckedCIFAR100(CIFAR100):
        train_list = [["train", None]]
        test_list = [["test", None]]
        meta = {"filename": "meta", "key": "fine_label_names", "md5": None}

    return UncheckedCIFAR100


@dataclass
class CifarArrays:
    """Both official splits: images uint8 [N, 3, 32, 32], labels int64 [N], the 100 class names."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    fingerprint: str


def _fingerprint(folder: Path) -> str:
    """Cheap identity of the files on disk: names, sizes and modification times."""
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(folder.glob("*")) if p.is_file()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _to_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(ds.targets, dtype=torch.int64)


FILES = ("train", "test", "meta")


def _missing(root: str, folder: Path, absent: list[str], download: bool) -> DataError | None:
    """The error for absent files (None when all are there, or when a download will fetch them)."""
    if not absent or (download and len(absent) == len(FILES)):
        return None
    if len(absent) == len(FILES):
        what, hint = (
            "missing",
            "set data.download=true to fetch it, or point data.root at the folder that holds cifar-100-python/",
        )
    else:
        what, hint = (
            f"incomplete (no {', '.join(absent)})",
            f"delete {folder} and fetch it again with data.download=true, or regenerate it",
        )
    return DataError(f"data.root={root!r}: CIFAR-100 in {folder} is {what}; {hint}")


def check_val_size(val_size: int, n: int) -> None:
    """Refuse (DataError) a validation split that leaves no training image of `n`."""
    if not 1 <= val_size < n:
        raise DataError(
            f"data.val_size={val_size} is not allowed: must be in [1, {n - 1}] for a training set of {n} images"
        )


@functools.lru_cache(maxsize=8)
def _train_size(path: str, mtime_ns: int) -> int:
    with open(path, "rb") as f:
        return len(pickle.load(f, encoding="latin1")["fine_labels"])


def check_dataset(root: str, download: bool, val_size: int) -> None:
    """What can be checked before a run starts (DataError, one line): the files are there (or will be
    downloaded) and `val_size` leaves training images. Reads only; a damaged file is left to the run."""
    folder = Path(root) / "cifar-100-python"
    error = _missing(root, folder, [n for n in FILES if not (folder / n).is_file()], download)
    if error is not None:
        raise error
    train = folder / "train"
    if train.is_file():
        try:
            n = _train_size(str(train), train.stat().st_mtime_ns)
        except Exception:  # noqa: BLE001 - unreadable: the run reports it in its own words
            return
        check_val_size(val_size, n)


def load_cifar100(root: str, download: bool, verify_checksums: bool) -> CifarArrays:
    """Read (and with `download`, fetch and md5-check) CIFAR-100 under `root/cifar-100-python`.

    A failed download leaves nothing behind: a `root` it created goes again, as does a partial archive.
    """
    cls = _dataset_class(verify_checksums)
    folder = Path(root) / "cifar-100-python"
    created = [p for p in (Path(root), Path(root) / ARCHIVE) if not p.exists()]
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
        train_images, train_labels = _to_tensors(train)
        test_images, test_labels = _to_tensors(test)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted..." (md5 checks, missing files)
        _remove_created(created)
        absent = [n for n in FILES if not (folder / n).is_file()]
        error = _missing(root, folder, absent, download=False) or DataError(
            f"data.root={root!r}: CIFAR-100 in {folder} is not the official CIFAR-100 (its md5 checksums differ); "
            f"delete {folder} and fetch it again with data.download=true, "
            "or set data.verify_checksums=false for a generated dataset"
        )
        raise error from None
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as err:
        raise DataError(
            f"data.root={root!r}: {folder} is damaged or not in CIFAR-100's format "
            f"({type(err).__name__}: {err}); delete it and download again, or regenerate it"
        ) from None
    except (OSError, HTTPException) as err:  # includes failed and broken downloads
        _remove_created(created)
        archive = Path(root) / ARCHIVE
        damaged = f" (the {archive.name} there is incomplete or damaged)" if download and archive.exists() else ""
        hint = (
            f"check the network, or put the official {archive.name} or its extracted cifar-100-python/ folder in {root}"
            if download
            else "check that the folder and its files are readable"
        )
        text = " ".join(str(err).split())
        raise DataError(
            f"data.root={root!r}: cannot read or fetch CIFAR-100{damaged} ({type(err).__name__}: {text}); {hint}"
        ) from None
    for name, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if images.dtype != torch.uint8 or len(images) != len(labels) or len(images) == 0:
            raise DataError(
                f"data.root={root!r}: {folder / name} holds {len(images)} {images.dtype} images "
                f"for {len(labels)} labels, not CIFAR-100's uint8 3x32x32 images with one label each; "
                "delete it and download again, or regenerate it"
            )
    labels = torch.cat([train_labels, test_labels])
    if len(train.classes) != 100 or int(labels.min()) < 0 or int(labels.max()) >= 100:
        raise DataError(
            f"data.root={root!r}: {folder} does not hold 100 classes with labels in [0, 100); "
            "delete it and download again, or regenerate it"
        )
    if not verify_checksums:  # said once the files are read (a warning before an error would only confuse)
        log.warning("data.verify_checksums=false: read %s without checking it is the official CIFAR-100", folder)
    return CifarArrays(train_images, train_labels, test_images, test_labels, list(train.classes), _fingerprint(folder))


def _remove_created(paths: list[Path]) -> None:
    """Remove what a failed download created: the partial archive, then `root` if it is empty."""
    for p in reversed(paths):
        with contextlib.suppress(OSError):
            p.rmdir() if p.is_dir() else p.unlink()


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into the 50k training set, exactly torch's `random_split` with `seed`."""
    check_val_size(val_size, n)
    train, val = torch.utils.data.random_split(
        range(n), [n - val_size, val_size], generator=torch.Generator().manual_seed(seed)
    )
    return torch.as_tensor(train.indices), torch.as_tensor(val.indices)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Pixel-level mean and (population) std per channel of uint8 [N, 3, H, W] images, in [0, 1] units.

    Every pixel of every image counts once: not an average of per-image stds, no padding.
    """
    x = images.permute(1, 0, 2, 3).reshape(3, -1).to(torch.float64) / 255.0
    mean = x.mean(dim=1)
    std = ((x - mean[:, None]) ** 2).mean(dim=1).sqrt()
    return mean.tolist(), std.tolist()


def cached_channel_stats(cache_dir: Path, key: str, images: torch.Tensor) -> tuple[list[float], list[float]]:
    """`channel_stats`, remembered in `cache_dir/stats-<key>.json` so runs do not recompute it."""
    path = cache_dir / f"stats-{key}.json"
    try:
        cached = json.loads(path.read_text())
        return cached["mean"], cached["std"]
    except (OSError, ValueError, KeyError):
        pass
    mean, std = channel_stats(images)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{id(images)}")
        tmp.write_text(json.dumps({"mean": mean, "std": std}))
        tmp.replace(path)
    except OSError as err:  # a read-only dataset folder only costs the recomputation
        log.warning("could not cache channel statistics in %s: %s", cache_dir, err)
    return mean, std
