"""One training epoch and one evaluation pass of k runs fused in one network (eager building blocks).

The per-batch work is in pure functions (`train_forward`, `eval_batch`) that engine/group.py compiles
unchanged, and the epoch loops (`run_train_epoch`, `evaluate`) take the step to use for full
batches; the epoch's last, smaller batch always runs eagerly. A single run is k = 1.

Layout: run i's images go to channels [3i, 3i+3) of the fused network's input [B, 3k, 32, 32], its
logits come out as [B, k, classes]. Every draw (order, crops, flips, mixup, dropout masks) is an
input, from the run's own generator (draws.py), so a batch function has no randomness of its own.
Metrics accumulate on the device as float64 [k, 2] = (sum of per-image losses, correct count) and
are read once per pass. Training figures are sample-weighted means over the epoch's batches as
trained (lambda-weighted accuracy under mixup); evaluation figures are sample-weighted means over
the whole split in eval mode. Losses are mean cross-entropy in nats, accuracies fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from hw_hparams.data import Normalize, Split, crop_flip
from hw_hparams.engine.draws import GroupPlan
from hw_hparams.engine.mixup import mix_with, mixup_correct, mixup_loss

EVAL_BATCH = 1000

# (images uint8 [k, B, 3, 32, 32], labels [k, B], top, left [k, B], flip [k, B] (0/1), lambda [k],
#  permutation [k, B], dropout masks [k, B, width] or None) -> float64 [k, 2] after the optimizer step.
TrainStep = Callable[..., torch.Tensor]


@dataclass
class EpochMetrics:
    loss: float
    acc: float
    images: int


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}  # precision -> autocast dtype (fp32: none)


def autocast(device: torch.device, precision: str):
    """Autocast to `precision` (bf16, fp16) on `device`; fp32: a no-op context."""
    if precision not in AUTOCAST:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST[precision])


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_forward(
    model: nn.Module,
    normalize: Normalize,
    precision: str,
    channels_last: bool,
    images: torch.Tensor,
    labels: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    lam: torch.Tensor,
    perm: torch.Tensor,
    masks: Optional[torch.Tensor],
    loss_scale: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment, mix, forward one batch of k runs: (sum of the runs' mean losses, each times its
    `loss_scale` [k] if given (fp16), float64 [k, 2] stats); `flip` bool or 0/1."""
    k, b = labels.shape
    x = crop_flip(images.flatten(0, 1), top.flatten(), left.flatten(), flip.flatten().bool())
    x = mix_with(normalize(x).unflatten(0, (k, b)), lam, perm)
    x = _layout(x.transpose(0, 1).flatten(1, 2), channels_last)  # [B, 3k, H, W]
    mask = masks.transpose(0, 1).flatten(1) if masks is not None else None  # [B, k * width]
    with autocast(x.device, precision):
        logits = model(x, mask)
    logits = logits.float().unflatten(1, (k, -1)).transpose(0, 1)  # [k, B, classes]
    y_b = labels.gather(1, perm)
    losses = mixup_loss(logits, labels, y_b, lam)
    correct = mixup_correct(logits, labels, y_b, lam)
    scaled = losses if loss_scale is None else losses * loss_scale
    return scaled.sum(), torch.stack([losses.detach().double() * b, correct.double()], dim=1)


def sgd_step(optimizer: Any, forward: Callable, update: Optional[Callable[[], Any]] = None) -> TrainStep:
    """The training step: `forward` (eager or compiled), backward, then `update` (default `optimizer.step`)."""

    def step(*batch):
        loss, stats = forward(*batch)
        optimizer.zero_grad()
        loss.backward()
        (update or optimizer.step)()
        return stats

    return step


def run_train_epoch(
    split: Split,
    plan: GroupPlan,
    batch_size: int,
    full_step: TrainStep,
    tail_step: Optional[TrainStep] = None,
    dropout_masks: Optional[Callable[[int], torch.Tensor]] = None,
    bar: Optional[Any] = None,
) -> list[EpochMetrics]:
    """One pass over `split` for k runs in the orders of `plan`; full batches go to `full_step`, the
    last smaller one (if any) to `tail_step` (default `full_step`); `dropout_masks(b)` gives the
    runs' masks [k, b, width]; `bar` (progress.EpochBar) is updated after each batch. The model must
    be in train mode."""
    k, n = plan.lam.shape[1], sum(plan.sizes)
    sums = torch.zeros(k, 2, dtype=torch.float64, device=split.images.device)
    done = 0
    for j, size in enumerate(plan.sizes):
        step = full_step if size == batch_size or tail_step is None else tail_step
        masks = dropout_masks(size) if dropout_masks is not None else None
        sums += step(*batch_inputs(split, plan, j), masks)
        done += size
        if bar is not None:
            bar.update(sums, done)
    return [EpochMetrics(loss / n, correct / n, n) for loss, correct in sums.tolist()]


def batch_inputs(split: Split, plan: GroupPlan, j: int) -> tuple[torch.Tensor, ...]:
    """Batch j's step inputs (images, labels, top, left, flip, lambda, permutation; see TrainStep),
    laid out the same in every batch of every epoch and in a capture (draws.GroupPlan)."""
    order, top, left, flip, lam, perm = plan.batch(j)
    return split.images[order], split.labels[order], top, left, flip, lam, perm


def eval_batch(
    model: nn.Module,
    normalize: Normalize,
    precision: str,
    channels_last: bool,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """float64 [k, 2] = per run (sum of cross-entropies, correct count) of one batch; images only normalised."""
    k = model.k
    x = _layout(normalize(images).repeat(1, k, 1, 1), channels_last)  # every run sees the same images
    with autocast(x.device, precision):
        logits = model(x).float().unflatten(1, (k, -1))  # [N, k, classes]
    losses = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(k), reduction="none").view(-1, k).sum(0)
    correct = (logits.argmax(dim=2) == labels[:, None]).sum(0)
    return torch.stack([losses.double(), correct.double()], dim=1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    normalize: Normalize,
    precision: str = "fp32",
    channels_last: bool = False,
    full_batch: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
) -> list[EpochMetrics]:
    """Each run's mean loss and accuracy over the whole split, in eval mode, in batches of EVAL_BATCH;
    `full_batch` (e.g. a compiled `eval_batch`) takes the full-size batches, the rest run eagerly."""
    model.eval()
    sums = torch.zeros(model.k, 2, dtype=torch.float64, device=split.images.device)
    for start in range(0, len(split), EVAL_BATCH):
        images, labels = split.images[start : start + EVAL_BATCH], split.labels[start : start + EVAL_BATCH]
        if full_batch is not None and len(labels) == EVAL_BATCH:
            sums += full_batch(images, labels)
        else:
            sums += eval_batch(model, normalize, precision, channels_last, images, labels)
    n = len(split)
    return [EpochMetrics(loss / n, correct / n, n) for loss, correct in sums.tolist()]
