"""One training epoch and one evaluation pass over a split that lives on the device (the eager path).

The per-batch work is split into pure functions (`train_forward`, `eval_batch`) that the fast path
(steps.py) compiles unchanged, and epoch loops (`run_train_epoch`, `evaluate`) that take the step
to use for full batches; the epoch's last, smaller batch always runs eagerly.

Metrics accumulate on the device as float64 [2] = (sum of per-image losses, correct count) and are
read once per pass (no host synchronisation inside an epoch). Training figures are sample-weighted
means over the epoch's batches as trained (lambda-weighted accuracy under mixup); evaluation figures
are sample-weighted means over the whole split in eval mode. Losses are mean cross-entropy in nats,
accuracies fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .data import Normalize, Split, crop_flip
from .mixup import mix_with, mixup_correct, mixup_loss, sample_mix

EVAL_BATCH = 1000

# (uint8 images [B, 3, 32, 32], labels [B], lambda 0-dim tensor or None, permutation [B] or None)
# -> float64 [2] (loss sum, correct count) of the batch, after the optimizer step.
TrainStep = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]], torch.Tensor]


@dataclass
class EpochMetrics:
    loss: float
    acc: float
    images: int


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on `device` when asked, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _inputs(images: torch.Tensor, normalize: Normalize, channels_last: bool) -> torch.Tensor:
    x = normalize(images)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_forward(
    model: nn.Module, normalize: Normalize, use_crop_flip: bool, bf16: bool, channels_last: bool,
    images: torch.Tensor, labels: torch.Tensor, lam: Optional[torch.Tensor], perm: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment, (mix,) forward one training batch: (mean loss to backpropagate, float64 [2] stats).

    `lam`/`perm` (mixup's lambda and batch permutation, from `sample_mix`) are inputs, not drawn
    here, so that the function has no host-side randomness and compiles to one graph.
    """
    if use_crop_flip:
        images = crop_flip(images)
    x = _inputs(images, normalize, channels_last)
    with autocast(x.device, bf16):
        if perm is None:
            logits = model(x)
            loss = F.cross_entropy(logits.float(), labels)
            correct = (logits.argmax(dim=1) == labels).sum()
        else:
            logits = model(mix_with(x, lam, perm))
            loss = mixup_loss(logits.float(), labels, labels[perm], lam)
            correct = mixup_correct(logits, labels, labels[perm], lam)
    return loss, torch.stack([loss.detach().double() * len(labels), correct.double()])


def sgd_step(optimizer: torch.optim.Optimizer, forward: Callable, update: Optional[Callable[[], Any]] = None) -> TrainStep:
    """The training step: `forward` (eager or compiled), backward, then `update` (default `optimizer.step`)."""

    def step(images, labels, lam, perm):
        loss, stats = forward(images, labels, lam, perm)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if update is None:
            optimizer.step()  # looked up per call: a scheduler wraps optimizer.step after we are built
        else:
            update()
        return stats

    return step


def run_train_epoch(
    split: Split, batch_size: int, mixup_alpha: Optional[float], full_step: TrainStep,
    tail_step: Optional[TrainStep] = None, bar: Optional[Any] = None,
) -> EpochMetrics:
    """One pass over `split` in a fresh random order; full batches go to `full_step`, the last
    smaller one (if any) to `tail_step` (default `full_step`); `bar` (progress.EpochBar) is updated
    after each batch. The model must be in train mode."""
    device = split.images.device
    n = len(split)
    order = torch.randperm(n, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    starts = range(0, n, batch_size)
    for start in starts:
        idx = order[start : start + batch_size]
        lam, perm = sample_mix(len(idx), mixup_alpha, device) if mixup_alpha else (None, None)
        step = full_step if len(idx) == batch_size or tail_step is None else tail_step
        sums += step(split.images[idx], split.labels[idx], lam, perm)
        if bar is not None:
            bar.update(sums, start + len(idx))
    loss_sum, correct_sum = sums.tolist()
    return EpochMetrics(loss_sum / n, correct_sum / n, n)


def eval_batch(
    model: nn.Module, normalize: Normalize, bf16: bool, channels_last: bool, images: torch.Tensor, labels: torch.Tensor,
) -> torch.Tensor:
    """float64 [2] = (sum of cross-entropies, correct count) of one batch; images only normalised."""
    x = _inputs(images, normalize, channels_last)
    with autocast(x.device, bf16):
        logits = model(x).float()
    loss_sum = F.cross_entropy(logits, labels, reduction="sum")
    return torch.stack([loss_sum.double(), (logits.argmax(dim=1) == labels).sum().double()])


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, normalize: Normalize, bf16: bool = False, channels_last: bool = False,
    full_batch: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
) -> EpochMetrics:
    """Mean loss and accuracy of `model` in eval mode over the whole split in batches of EVAL_BATCH;
    `full_batch` (e.g. a compiled `eval_batch`) takes the full-size batches, the rest run eagerly."""
    model.eval()
    device = split.images.device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for start in range(0, len(split), EVAL_BATCH):
        images, labels = split.images[start : start + EVAL_BATCH], split.labels[start : start + EVAL_BATCH]
        if full_batch is not None and len(labels) == EVAL_BATCH:
            sums += full_batch(images, labels)
        else:
            sums += eval_batch(model, normalize, bf16, channels_last, images, labels)
    n = len(split)
    loss_sum, correct_sum = sums.tolist()
    return EpochMetrics(loss_sum / n, correct_sum / n, n)
