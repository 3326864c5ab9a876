"""Mixup (Zhang et al., 2018): lambda ~ Beta(alpha, alpha) once per batch, mixed with a permutation of the batch.

Loss: lambda * CE(logits, y) + (1 - lambda) * CE(logits, y[perm]).
Training accuracy under mixup is lambda-weighted: lambda * [pred == y] + (1 - lambda) * [pred == y[perm]].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_lambda(alpha: float) -> float:
    """One draw of Beta(alpha, alpha), from torch's CPU generator (so a checkpoint's RNG state replays it)."""
    concentration = torch.tensor([alpha], dtype=torch.float64)
    return float(torch.distributions.Beta(concentration, concentration).sample())


def mix(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix float images [B, C, H, W] with a random permutation of the batch: (x_mixed, y_a, y_b, lambda)."""
    lam = sample_lambda(alpha)
    perm = torch.randperm(len(y), device=y.device)
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def mixup_loss(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """Mean over the batch of lambda * CE(y_a) + (1 - lambda) * CE(y_b)."""
    return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)


def mixup_correct(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """Lambda-weighted count of correct predictions in the batch (a float tensor)."""
    pred = logits.argmax(dim=1)
    return lam * (pred == y_a).sum() + (1.0 - lam) * (pred == y_b).sum()
