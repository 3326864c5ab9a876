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


def sample_mix(n: int, alpha: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup's randomness for a batch of `n`: (lambda as a float32 0-dim tensor on `device`, permutation [n]).

    Lambda comes from `sample_lambda` and is written with a fill (no host synchronisation), so a
    compiled step can take it as an input without recompiling for every value.
    """
    lam = torch.full((), sample_lambda(alpha), device=device)
    return lam, torch.randperm(n, device=device)


def mix_with(x: torch.Tensor, lam: torch.Tensor | float, perm: torch.Tensor) -> torch.Tensor:
    """lambda * x + (1 - lambda) * x[perm] for float images [B, C, H, W]."""
    return lam * x + (1.0 - lam) * x[perm]


def mixup_loss(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Mean over the batch of lambda * CE(y_a) + (1 - lambda) * CE(y_b)."""
    return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)


def mixup_correct(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Lambda-weighted count of correct predictions in the batch (a float tensor)."""
    pred = logits.argmax(dim=1)
    return lam * (pred == y_a).sum() + (1.0 - lam) * (pred == y_b).sum()
