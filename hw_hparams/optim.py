"""SGD with momentum and the learning-rate schedules of the study.

Weight decay is SGD's own `weight_decay` on every parameter (the assignment's equation 3).
Schedules step once per epoch: `constant` keeps optim.lr; `cosine` is
lr_e = lr / 2 * (1 + cos(pi * e / epochs)) for epoch index e = 0..epochs-1, i.e. torch's
`CosineAnnealingLR(T_max=epochs, eta_min=0)`, reaching 0 after the last epoch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler


def build_optimizer(model: nn.Module, optim_cfg, fused: bool = False) -> torch.optim.SGD:
    """SGD over all parameters; `fused` picks torch's fused CUDA kernel, else the foreach one."""
    return torch.optim.SGD(
        model.parameters(),
        lr=optim_cfg.lr,
        momentum=optim_cfg.momentum,
        weight_decay=optim_cfg.weight_decay,
        fused=fused or None,
        foreach=None if fused else True,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, schedule_name: str, epochs: int) -> LRScheduler:
    """The per-epoch schedule named by `schedule.name`."""
    if schedule_name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
    return ConstantLR(optimizer, factor=1.0, total_iters=0)
