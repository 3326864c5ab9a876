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
from collections.abc import Iterable
from typing import Optional

import torch
from torch import nn


def lr_at(schedule: str, lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of epoch index `epoch` (0 = the first epoch) under `schedule.name`."""
    if schedule == "cosine":
        return lr / 2 * (1 + math.cos(math.pi * epoch / epochs))
    return lr


def sgd_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: list[torch.Tensor],
    lr: torch.Tensor,
    momentum: torch.Tensor,
    weight_decay: torch.Tensor,
    scaler: Optional[LossScale] = None,
) -> None:
    """One SGD step of k runs in place (the module docstring's update), as `torch._foreach_*` ops over
    the parameters, each viewed [k, ...] (run i's slice first) with the runs' hyperparameters [k]
    broadcast as [k, 1, ...]: one op per parameter list whatever k, so a compiled optimizer graph does
    not grow with k, and no host synchronisation or recompilation when a hyperparameter changes. A
    pure function of its tensors: it is the eager update and, compiled, the optimizer graph. `scaler`
    (fp16): grads are divided by each run's loss scale, a run whose gradients are not all finite skips
    the step (weights and momentum unchanged), and the scales are updated (LossScale.update)."""
    k = lr.shape[0]
    w, g, buf = ([t.unflatten(0, (k, -1)) for t in ts] for ts in (params, grads, buffers))

    def per_run(x: torch.Tensor) -> list[torch.Tensor]:  # [k] -> one [k, 1, ...] view per parameter
        return [x.view(k, *[1] * (t.dim() - 1)) for t in w]

    d = torch._foreach_mul(w, per_run(weight_decay))
    if scaler is None:
        torch._foreach_add_(d, g)
        mom, step = per_run(momentum), per_run(lr)
    else:  # a skipped run: d = 0, momentum 1, lr 0 leave its buffers and weights as they are
        ok = scaler.finite(g)
        inv, keep = per_run(1.0 / scaler.scale), per_run(ok)
        d = [torch.where(okj, gj * invj + dj, 0.0) for okj, gj, invj, dj in zip(keep, g, inv, d)]
        mom, step = per_run(torch.where(ok, momentum, 1.0)), per_run(torch.where(ok, lr, 0.0))
    torch._foreach_mul_(buf, mom)
    torch._foreach_add_(buf, d)
    torch._foreach_add_(w, torch._foreach_mul(buf, step), alpha=-1)
    if scaler is not None:
        scaler.update(ok)


class LossScale:
    """Dynamic fp16 loss scaling with one scale per run (torch.amp.GradScaler's rule and defaults,
    applied to each run alone, so a run's overflow never skips another run's step): the loss of run i
    is multiplied by scale[i]; after a step whose gradients are all finite its counter grows, and
    after GROWTH_INTERVAL such steps in a row the scale doubles; a step with a non-finite gradient is
    skipped and halves the scale. scale [k] float32, growth [k] int64 on the device."""

    INIT, GROWTH, BACKOFF, GROWTH_INTERVAL = 2.0**16, 2.0, 0.5, 2000

    def __init__(self, k: int, device: torch.device):
        self.scale = torch.full((k,), self.INIT, device=device)
        self.growth = torch.zeros(k, dtype=torch.int64, device=device)

    def finite(self, runs: list[torch.Tensor]) -> torch.Tensor:
        """[k] bool: whether all of run i's gradients (each [k, ...]) are finite."""
        return torch.stack([g.flatten(1).isfinite().all(1) for g in runs]).all(0)

    def update(self, ok: torch.Tensor) -> None:
        grown = torch.where(ok, self.growth + 1, 0)
        double = grown >= self.GROWTH_INTERVAL
        self.scale.copy_(
            torch.where(ok, torch.where(double, self.scale * self.GROWTH, self.scale), self.scale * self.BACKOFF)
        )
        self.growth.copy_(torch.where(double, 0, grown))

    def state(self, i: int) -> dict[str, float]:
        return {"scale": float(self.scale[i]), "growth": int(self.growth[i])}

    def load_state(self, i: int, state: dict[str, float]) -> None:
        self.scale[i], self.growth[i] = state["scale"], state["growth"]


class FusedSGD(torch.optim.Optimizer):
    """SGD over a fused network's parameters, k runs with their own lr, momentum and weight decay.

    A torch Optimizer (one parameter group, whose lr, momentum and weight_decay are device tensors
    [k]; one momentum buffer per parameter in `state`), so optimizer hooks treat it as torch's own;
    `step` is `sgd_update`, and `update_args` are that function's tensors for a compiled step.
    `scaler`: a LossScale (fp16) or None."""

    def __init__(
        self,
        model: nn.Module,
        k: int,
        momentum: Iterable[float],
        weight_decay: Iterable[float],
        scaler: Optional[LossScale] = None,
    ):
        named = list(model.named_parameters())
        device = named[0][1].device
        per_run = {
            "lr": torch.zeros(k, device=device),
            "momentum": torch.tensor(list(momentum), dtype=torch.float32, device=device),
            "weight_decay": torch.tensor(list(weight_decay), dtype=torch.float32, device=device),
        }
        super().__init__([p for _, p in named], per_run)
        self.k, self.scaler = k, scaler
        self.buffers = {}  # parameter name -> momentum buffer (zeros: the first step takes buf = d)
        for name, p in named:
            self.state[p]["momentum_buffer"] = self.buffers[name] = torch.zeros_like(
                p, memory_format=torch.preserve_format
            )

    @property
    def lr(self) -> torch.Tensor:
        return self.param_groups[0]["lr"]

    def set_lr(self, values: Iterable[float]) -> None:
        """The runs' learning rates for the next steps (an in-place device write, no synchronisation)."""
        self.lr.copy_(torch.tensor(list(values), dtype=torch.float32), non_blocking=True)

    def static_tensors(self) -> list[torch.Tensor]:
        """Every tensor the step mutates or reads as state (for torch._dynamo.mark_static_address)."""
        group = self.param_groups[0]
        scaler = [self.scaler.scale, self.scaler.growth] if self.scaler is not None else []
        return [
            *group["params"],
            *self.buffers.values(),
            group["lr"],
            group["momentum"],
            group["weight_decay"],
            *scaler,
        ]

    def update_args(self) -> tuple:
        """sgd_update's arguments now (the gradients are read at the call)."""
        group = self.param_groups[0]
        params = group["params"]
        return (
            params,
            [p.grad for p in params],
            list(self.buffers.values()),
            group["lr"],
            group["momentum"],
            group["weight_decay"],
            self.scaler,
        )

    @torch.no_grad()
    def step(self, closure=None) -> None:
        sgd_update(*self.update_args())
