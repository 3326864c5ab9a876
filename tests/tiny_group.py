"""A tiny fused group on the CPU, for the fast-path tests (tests/engine/): its data, its build, and
`train` = epochs under a cosine schedule, returning every run's (train loss, train acc, val loss, val acc)."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

import hw_hparams.engine.group as fastpath
from hw_hparams.data import Normalize, Split
from hw_hparams.engine.optim import lr_at

CPU = torch.device("cpu")
BATCH = 16
N_TRAIN = 2 * BATCH + 5  # two full batches and a partial one
NORM = Normalize([0.5, 0.45, 0.4], [0.25, 0.25, 0.27], CPU)


def data():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (N_TRAIN + 20, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 100, (N_TRAIN + 20,), generator=g)
    return Split(images[:N_TRAIN], labels[:N_TRAIN]), Split(images[N_TRAIN:], labels[N_TRAIN:])


def group(compile_: str, k: int = 1, precision: str = "fp32", mixup_alpha=None, **overrides) -> fastpath.Group:
    trainer = OmegaConf.create({"compile": compile_, "precision": precision})
    settings = fastpath.resolve_settings(trainer, CPU, "tiny", **overrides)
    runs = [fastpath.RunSpec(seed, 0.05, "constant", 0.9, 5e-4, True, mixup_alpha) for seed in range(k)]
    return fastpath.build_group("tiny", runs, CPU, NORM, settings, BATCH)


def train(g: fastpath.Group, train_split: Split, val_split: Split, epochs: int = 2) -> list:
    """`epochs` epochs under a cosine schedule: (train loss, train acc, val loss, val acc) per epoch and run."""
    out = []
    for e in range(epochs):
        g.optimizer.set_lr([lr_at("cosine", 0.05, e, epochs)] * g.k)
        t, v = fastpath.train_epoch(g, train_split), fastpath.evaluate(g, val_split)
        out.append([(a.loss, a.acc, b.loss, b.acc) for a, b in zip(t, v)])
    return out
