"""Mixup (Zhang et al., 2018): one lambda ~ Beta(alpha, alpha) per batch, mixed with a permutation of the batch.

Loss: lambda * CE(logits, y) + (1 - lambda) * CE(logits, y[perm]).
Training accuracy under mixup is lambda-weighted: lambda * [pred == y] + (1 - lambda) * [pred == y[perm]].
A run without mixup takes lambda = 1 and the identity permutation, which leaves images, loss and
accuracy exactly as they are. Every function takes any leading dimensions (e.g. k runs): images
[..., B, C, H, W], logits [..., B, classes], labels [..., B], lambda [...].
The draws themselves come from each run's own generator (draws.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _per_batch(lam: torch.Tensor | float, like: torch.Tensor, dims: int) -> torch.Tensor | float:
    """lambda shaped to broadcast over the last `dims` dimensions of `like`."""
    return lam.view(*lam.shape, *([1] * dims)) if isinstance(lam, torch.Tensor) and lam.dim() else lam


def mix_with(x: torch.Tensor, lam: torch.Tensor | float, perm: torch.Tensor) -> torch.Tensor:
    """lambda * x + (1 - lambda) * x[perm] for float images [..., B, C, H, W], perm [..., B]."""
    mixed = x.gather(perm.dim() - 1, perm.view(*perm.shape, 1, 1, 1).expand(x.shape))
    lam = _per_batch(lam, x, 4)
    return lam * x + (1.0 - lam) * mixed


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch dimension, one value per leading index."""
    per_image = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), reduction="none")
    return per_image.view(labels.shape).mean(-1)


def mixup_loss(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Mean over the batch of lambda * CE(y_a) + (1 - lambda) * CE(y_b), per leading index."""
    return lam * _cross_entropy(logits, y_a) + (1.0 - lam) * _cross_entropy(logits, y_b)


def mixup_correct(
    logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor | float
) -> torch.Tensor:
    """Lambda-weighted count of correct predictions in the batch (a float tensor), per leading index."""
    pred = logits.argmax(dim=-1)
    return lam * (pred == y_a).sum(-1) + (1.0 - lam) * (pred == y_b).sum(-1)
