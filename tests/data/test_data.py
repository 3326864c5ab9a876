"""The data protocol against independent references: torch's random_split, numpy statistics,
torchvision's CIFAR100 parser, RandomCrop/RandomHorizontalFlip and Normalize."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchvision import transforms

from hw_hparams.data import Normalize, crop_flip, load_splits, split_indices
from hw_hparams.data.cifar import DataError
from hw_hparams.engine.draws import RunRandom


def _data_cfg(root, val_size=100, seed=0):
    return OmegaConf.create(
        {"root": str(root), "download": False, "verify_checksums": False, "val_size": val_size, "split_seed": seed}
    )


def test_generated_dataset_has_the_official_on_disk_format(fake_root):
    folder = fake_root / "cifar-100-python"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["meta", "test", "train"]
    with open(folder / "train", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert {"data", "fine_labels", "coarse_labels", "filenames"} <= set(batch)
    assert batch["data"].dtype == np.uint8 and batch["data"].shape == (600, 3072)
    assert sorted(set(batch["fine_labels"])) == list(range(100))
    with open(folder / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert len(meta["fine_label_names"]) == 100 and len(meta["coarse_label_names"]) == 20


def test_official_checksums_reject_a_generated_dataset(fake_root):
    with pytest.raises(DataError, match="data.root"):
        load_splits(OmegaConf.merge(_data_cfg(fake_root), {"verify_checksums": True}), torch.device("cpu"))


def test_split_is_torch_random_split_of_the_training_set(fake_root):
    data = load_splits(_data_cfg(fake_root, val_size=100, seed=0), torch.device("cpu"))
    ds = _torchvision_train(fake_root)  # torchvision's own parser, as the public solutions used it
    train, val = torch.utils.data.random_split(ds, [500, 100], generator=torch.Generator().manual_seed(0))
    expect_train = np.stack([np.asarray(ds.data[i]).transpose(2, 0, 1) for i in train.indices])
    expect_val = np.stack([np.asarray(ds.data[i]).transpose(2, 0, 1) for i in val.indices])
    assert np.array_equal(data.train.images.numpy(), expect_train)
    assert np.array_equal(data.val.images.numpy(), expect_val)
    assert data.train.labels.tolist() == [ds.targets[i] for i in train.indices]
    assert data.stats["sizes"] == {"train": 500, "val": 100, "test": 100}


def test_split_indices_on_the_real_sizes_match_random_split_40k_10k():
    train, val = split_indices(50000, 10000, 0)
    ref_train, ref_val = torch.utils.data.random_split(
        range(50000), [40000, 10000], generator=torch.Generator().manual_seed(0)
    )
    assert train.tolist() == list(ref_train.indices) and val.tolist() == list(ref_val.indices)
    assert len(set(train.tolist()) | set(val.tolist())) == 50000


def _torchvision_train(root):
    from hw_hparams.data.cifar import _dataset_class

    return _dataset_class(False)(str(root), train=True, download=False)


def test_channel_stats_are_pixel_level_over_the_training_split_only(fake_root):
    data = load_splits(_data_cfg(fake_root), torch.device("cpu"))
    ds = _torchvision_train(fake_root)
    train, _ = torch.utils.data.random_split(range(600), [500, 100], generator=torch.Generator().manual_seed(0))
    pixels = ds.data[np.asarray(train.indices)].astype(np.float64) / 255.0  # N, H, W, C
    assert data.stats["mean"] == pytest.approx(pixels.mean(axis=(0, 1, 2)).tolist(), abs=1e-12)
    assert data.stats["std"] == pytest.approx(pixels.std(axis=(0, 1, 2)).tolist(), abs=1e-12)
    per_image_std = pixels.std(axis=(1, 2)).mean(axis=0)  # the common mistake differs
    assert not np.allclose(per_image_std, data.stats["std"], atol=1e-3)
    counts = np.bincount(np.asarray(ds.targets)[train.indices], minlength=100)
    assert data.stats["class_proportions"] == pytest.approx((counts / 500).tolist())


def test_channel_stats_are_cached_and_reused(fake_root, monkeypatch):
    load_splits(_data_cfg(fake_root, seed=5), torch.device("cpu"))
    import hw_hparams.data.cifar as cifar

    monkeypatch.setattr(cifar, "channel_stats", lambda images: pytest.fail("recomputed despite the cache"))
    load_splits(_data_cfg(fake_root, seed=5), torch.device("cpu"))


def _padded(img):
    return torch.nn.functional.pad(img, (4, 4, 4, 4))


def _windows(img):
    """Every 32x32 window of the zero-padded image, unflipped and flipped: {(top, left, flip): tensor}."""
    p = _padded(img)
    return {
        (t, l, f): (p[:, t : t + 32, l : l + 32].flip(-1) if f else p[:, t : t + 32, l : l + 32])
        for t in range(9)
        for l in range(9)
        for f in (0, 1)
    }


def _augmented(img: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n copies of one image, each cropped and flipped by a run's own draws (as a training epoch does)."""
    plan = RunRandom(seed, torch.device("cpu")).epoch_plan(n, 128, crop_flip=True, mixup_alpha=None)
    top, left, flip = (torch.as_tensor(a) for a in (plan.top, plan.left, plan.flip))
    return crop_flip(img.expand(n, -1, -1, -1).contiguous(), top, left, flip)


def test_crop_flip_outputs_are_exact_windows_and_cover_all_offsets_and_flips():
    torch.manual_seed(0)
    img = torch.randint(1, 256, (1, 3, 32, 32), dtype=torch.uint8)  # no zeros: every window distinct
    windows = _windows(img[0])
    seen = []
    out = _augmented(img, 4000, seed=0)
    for o in out:
        match = [k for k, w in windows.items() if torch.equal(w, o)]
        assert len(match) == 1
        seen.append(match[0])
    assert {(t, l) for t, l, _ in seen} == {(t, l) for t in range(9) for l in range(9)}
    flips = np.mean([f for _, _, f in seen])
    assert abs(flips - 0.5) < 4 * np.sqrt(0.25 / 4000)


def test_crop_flip_is_independent_per_image():
    torch.manual_seed(1)
    img = torch.randint(1, 256, (1, 3, 32, 32), dtype=torch.uint8)
    out = _augmented(img, 128, seed=1)
    distinct = {o.numpy().tobytes() for o in out}
    assert len(distinct) > 64  # one crop shared by the batch would give 1


def test_crop_flip_distribution_matches_torchvision():
    """Offset and flip frequencies of ours vs torchvision's RandomCrop(32, 4) + RandomHorizontalFlip(0.5)."""
    torch.manual_seed(2)
    img = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)
    windows = _windows(img)
    tv = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(0.5)])
    n = 3000

    def key(o):
        return next(k for k, w in windows.items() if torch.equal(w, o))

    ours = [key(o) for o in _augmented(img[None], n, seed=2)]
    theirs = [key(tv(img)) for _ in range(n)]
    for pos in (0, 1, 2):
        a = np.bincount([k[pos] for k in ours], minlength=9) / n
        b = np.bincount([k[pos] for k in theirs], minlength=9) / n
        assert np.abs(a - b).max() < 0.04


def test_normalize_equals_torchvision_totensor_normalize():
    img = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean, std = [0.5068, 0.4861, 0.4403], [0.2671, 0.2563, 0.2759]
    ours = Normalize(mean, std, torch.device("cpu"))(img)
    tv = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    theirs = torch.stack([tv(im.permute(1, 2, 0).numpy()) for im in img])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_validation_and_test_images_are_never_augmented(fake_root, monkeypatch):
    """evaluate() must see the stored images, only normalised."""
    import hw_hparams.engine.step as engine

    monkeypatch.setattr(engine, "crop_flip", lambda *a: pytest.fail("augmentation in evaluation"))
    data = load_splits(_data_cfg(fake_root), torch.device("cpu"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 100))
    model.k = 1  # one run, as engine.evaluate expects of a fused network
    norm = Normalize(data.stats["mean"], data.stats["std"], torch.device("cpu"))
    (m,) = engine.evaluate(model, data.val, norm)
    with torch.no_grad():
        logits = model(norm(data.val.images))
    expect = torch.nn.functional.cross_entropy(logits, data.val.labels).item()
    assert m.loss == pytest.approx(expect, rel=1e-5)
    assert m.acc == pytest.approx((logits.argmax(1) == data.val.labels).float().mean().item())


def test_missing_dataset_without_download_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data.download=true"):
        load_splits(
            OmegaConf.create(
                {"root": str(tmp_path), "download": False, "verify_checksums": True, "val_size": 10, "split_seed": 0}
            ),
            torch.device("cpu"),
        )
