"""One training epoch and one evaluation pass over a split that lives on the device.

Metrics accumulate on the device and are read once per pass (no host synchronisation inside an
epoch). Training figures are sample-weighted means over the epoch's batches as trained (lambda-
weighted accuracy under mixup); evaluation figures are sample-weighted means over the whole split
in eval mode. Losses are mean cross-entropy in nats, accuracies fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .data import Normalize, Split, crop_flip
from .mixup import mix, mixup_correct, mixup_loss

EVAL_BATCH = 1000


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


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: Split,
    normalize: Normalize,
    batch_size: int,
    use_crop_flip: bool,
    mixup_alpha: Optional[float],
    bf16: bool = False,
    progress: Optional[Callable] = None,
) -> EpochMetrics:
    """One pass over `split` in a fresh random order (the last batch may be smaller)."""
    model.train()
    device = split.images.device
    n = len(split)
    order = torch.randperm(n, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct_sum = torch.zeros((), dtype=torch.float64, device=device)
    starts = range(0, n, batch_size)
    for start in progress(starts) if progress else starts:
        idx = order[start : start + batch_size]
        images, y = split.images[idx], split.labels[idx]
        if use_crop_flip:
            images = crop_flip(images)
        x = normalize(images)
        with autocast(device, bf16):
            if mixup_alpha:
                x, y_a, y_b, lam = mix(x, y, mixup_alpha)
                logits = model(x)
                loss = mixup_loss(logits.float(), y_a, y_b, lam)
                correct = mixup_correct(logits, y_a, y_b, lam)
            else:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                correct = (logits.argmax(dim=1) == y).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().double() * len(y)
        correct_sum += correct.double()
    return EpochMetrics(loss_sum.item() / n, correct_sum.item() / n, n)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, normalize: Normalize, bf16: bool = False) -> EpochMetrics:
    """Mean loss and accuracy of `model` in eval mode over the whole split (images only normalised)."""
    model.eval()
    device = split.images.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct_sum = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(split), EVAL_BATCH):
        x = normalize(split.images[start : start + EVAL_BATCH])
        y = split.labels[start : start + EVAL_BATCH]
        with autocast(device, bf16):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct_sum += (logits.argmax(dim=1) == y).sum().double()
    n = len(split)
    return EpochMetrics(loss_sum.item() / n, correct_sum.item() / n, n)
