"""Every random draw of a run, from that run's own generators: its numbers do not depend on how it
was launched (alone, in a sweep, or fused with other runs) nor on any stream shared with other runs.

- initial weights: the global torch generator seeded with `seed`, inside `torch.random.fork_rng`
  (`init_weights`), so building a run's network neither reads nor moves anyone else's stream;
- each epoch's plan, drawn up front from the run's numpy generator (PCG64 seeded with `seed`):
  the order of the training images, the crop offsets and flips of every image, and under mixup
  one lambda ~ Beta(alpha, alpha) and one permutation per batch (`epoch_plan`);
- dropout masks, one per step, from the run's torch generator on the training device (seeded with
  `seed`), drawn eagerly outside any compiled or CUDA-graph step and passed in as a tensor.
A checkpoint stores both generators' states (`state` / `load_state`), so a resumed run draws on
exactly where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from .data.augment import PAD


def init_weights(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build()` under the global torch generator seeded with `seed`, leaving that generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@dataclass
class Plan:
    """One run's draws for one epoch of n images in batches of B (numpy arrays).

    order [n]; top, left [n] (crop offsets in 0..2*PAD; PAD, PAD = no crop); flip [n] (bool);
    lam [batches] (1.0 = no mixup); perms: one permutation per batch (identity = no mixup).
    """

    order: np.ndarray
    top: np.ndarray
    left: np.ndarray
    flip: np.ndarray
    lam: np.ndarray
    perms: list[np.ndarray]


class RunRandom:
    """The generators of one run (seeded from its `seed`)."""

    def __init__(self, seed: int, device: torch.device):
        self.numpy = np.random.Generator(np.random.PCG64(seed))
        self.torch = torch.Generator(device=device)
        self.torch.manual_seed(seed)

    def epoch_plan(self, n: int, batch_size: int, crop_flip: bool, mixup_alpha: Optional[float]) -> Plan:
        """The epoch's order, crops, flips and mixup draws, in this order (each only when used)."""
        rng = self.numpy
        order = rng.permutation(n)
        if crop_flip:
            top, left = rng.integers(0, 2 * PAD + 1, size=n), rng.integers(0, 2 * PAD + 1, size=n)
            flip = rng.random(n) < 0.5
        else:
            top = left = np.full(n, PAD)
            flip = np.zeros(n, dtype=bool)
        sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
        if mixup_alpha:
            lam = rng.beta(mixup_alpha, mixup_alpha, size=len(sizes))
            perms = [rng.permutation(size) for size in sizes]
        else:
            lam = np.ones(len(sizes))
            perms = [np.arange(size) for size in sizes]
        return Plan(order, top, left, flip, lam, perms)

    def dropout_mask(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """A dropout mask (kept units 1 / (1 - p), dropped 0) of `shape`, on the generator's device."""
        keep = torch.rand(shape, generator=self.torch, device=self.torch.device) >= p
        return keep.float() / (1.0 - p)

    def state(self) -> dict[str, Any]:
        return {"numpy": self.numpy.bit_generator.state, "torch": self.torch.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.numpy.bit_generator.state = state["numpy"]
        self.torch.set_state(state["torch"].to("cpu"))


@dataclass
class GroupPlan:
    """The epoch plans of k runs on the device, ready to slice per batch.

    order, top, left [k, n] int64; flip [k, n] bool; lam [k, batches] float32; perms: per batch [k, size] int64.
    """

    order: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor
    lam: torch.Tensor
    perms: list[torch.Tensor]


def stack_plans(plans: list[Plan], device: torch.device) -> GroupPlan:
    """k runs' plans as device tensors (one copy each, once per epoch)."""
    def put(arrays, dtype):
        return torch.as_tensor(np.stack(arrays)).to(device=device, dtype=dtype)

    return GroupPlan(
        order=put([p.order for p in plans], torch.int64),
        top=put([p.top for p in plans], torch.int64),
        left=put([p.left for p in plans], torch.int64),
        flip=put([p.flip for p in plans], torch.bool),
        lam=put([p.lam for p in plans], torch.float32),
        perms=[put([p.perms[j] for p in plans], torch.int64) for j in range(len(plans[0].perms))],
    )
