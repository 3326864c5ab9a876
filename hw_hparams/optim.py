"""SGD with momentum and weight decay for k runs trained as one network, and the learning-rate schedules.

`FusedSGD` applies, to every parameter and for each run i with its own hyperparameters, exactly
torch.optim.SGD's update (dampening 0, no Nesterov; weight decay on every parameter, the
assignment's equation 3):

    d = grad + wd_i * w;   buf = momentum_i * buf + d;   w = w - lr_i * buf

The momentum buffer starts at zero, so the first step takes buf = d, as torch does; with momentum 0
it is d every step, as torch's SGD without momentum. Each parameter's first dimension holds the k
runs' copies one after another (fusion.py); lr, momentum and weight decay are device tensors [k],
so a new learning rate every epoch is an in-place write and never recompiles a compiled step.

Schedules step once per epoch: `constant` keeps optim.lr; `cosine` is
lr_e = lr / 2 * (1 + cos(pi * e / epochs)) for epoch index e = 0..epochs-1 (torch's
`CosineAnnealingLR(T_max=epochs, eta_min=0)`, reaching 0 after the last epoch).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


def lr_at(schedule: str, lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of epoch index `epoch` (0 = the first epoch) under `schedule.name`."""
    if schedule == "cosine":
        return lr / 2 * (1 + math.cos(math.pi * epoch / epochs))
    return lr


class FusedSGD(torch.optim.Optimizer):
    """SGD over a fused network's parameters, k runs with their own lr, momentum and weight decay.

    A torch Optimizer (one parameter group, whose lr, momentum and weight_decay are device tensors
    [k]; one momentum buffer per parameter in `state`), so optimizer hooks and torch.compile treat
    it as they treat torch's own."""

    def __init__(self, model: nn.Module, k: int, momentum: Iterable[float], weight_decay: Iterable[float]):
        named = list(model.named_parameters())
        device = named[0][1].device
        per_run = {
            "lr": torch.zeros(k, device=device),
            "momentum": torch.tensor(list(momentum), dtype=torch.float32, device=device),
            "weight_decay": torch.tensor(list(weight_decay), dtype=torch.float32, device=device),
        }
        super().__init__([p for _, p in named], per_run)
        self.k = k
        self.buffers = {}  # parameter name -> momentum buffer (zeros: the first step takes buf = d)
        for name, p in named:
            self.state[p]["momentum_buffer"] = self.buffers[name] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @property
    def lr(self) -> torch.Tensor:
        return self.param_groups[0]["lr"]

    def set_lr(self, values: Iterable[float]) -> None:
        """The runs' learning rates for the next steps (an in-place device write, no synchronisation)."""
        self.lr.copy_(torch.tensor(list(values), dtype=torch.float32), non_blocking=True)

    @torch.no_grad()
    def step(self, closure=None) -> None:
        group = self.param_groups[0]
        for p in group["params"]:
            w, g, buf = (t.unflatten(0, (self.k, -1)) for t in (p, p.grad, self.state[p]["momentum_buffer"]))
            per_run = (self.k,) + (1,) * (w.dim() - 1)
            d = g + group["weight_decay"].view(per_run) * w
            buf.mul_(group["momentum"].view(per_run)).add_(d)
            w.sub_(group["lr"].view(per_run) * buf)
