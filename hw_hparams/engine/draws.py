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
exactly where it stopped (on another device type the torch generator, dropout only, starts a fresh
stream: `load_state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from hw_hparams.data.augment import PAD


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
        self.seed = seed
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
        return {
            "numpy": self.numpy.bit_generator.state,
            "torch": self.torch.get_state(),
            "torch_device": self.torch.device.type,
        }

    def load_state(self, state: dict[str, Any]) -> bool:
        """Continue from `state`; True when it is exact. The numpy draws always continue exactly; a
        torch state saved on another device type (CPU: Mersenne Twister, CUDA: Philox, not
        convertible) is replaced by a fresh stream seeded from the run's seed and the numpy state,
        so the dropout masks from there on are other draws (same distribution, same on every resume)."""
        self.numpy.bit_generator.state = state["numpy"]
        saved = state["torch"].to("cpu")
        if state.get("torch_device", "cpu" if saved.numel() > 16 else "cuda") == self.torch.device.type:
            self.torch.set_state(saved)
            return True
        self.torch.manual_seed((self.seed * 1_000_003 + state["numpy"]["state"]["state"]) % 2**63)
        return False


ROWS = ("order", "top", "left", "flip", "perm")  # the int64 rows of a batch's block


@dataclass
class GroupPlan:
    """The epoch plans of k runs on the device: one buffer, copied once, read per batch as views.

    Batch j's draws are one block [5, k, size] int64 (rows ROWS: image indices, crop offsets, flips
    as 0/1, the mixup permutation), so each row `block[r]` is a [k, size] tensor with the strides of
    a fresh one ((size, 1)) whatever j or k; `lam` is [batches, k] float32, so `lam[j]` is [k] with
    stride (1,). A compiled step sees exactly these layouts in every batch and in its capture.
    """

    blocks: list[torch.Tensor]
    lam: torch.Tensor

    def batch(self, j: int) -> tuple[torch.Tensor, ...]:
        """Batch j's (order, top, left, flip, lam, perm): [k, size] x 4 int64, [k] float32, [k, size] int64."""
        order, top, left, flip, perm = self.blocks[j]
        return order, top, left, flip, self.lam[j], perm

    @property
    def sizes(self) -> list[int]:
        return [b.shape[2] for b in self.blocks]


def stack_plans(plans: list[Plan], device: torch.device) -> GroupPlan:
    """k runs' plans as one host buffer copied to `device` in one transfer (pinned, asynchronous on
    CUDA), then cut into per-batch views."""
    n, k = len(plans[0].order), len(plans)
    sizes = [len(perm) for perm in plans[0].perms]
    starts = np.cumsum([0] + sizes[:-1])
    blocks = [
        np.stack(
            [
                np.stack([p.order[s : s + m], p.top[s : s + m], p.left[s : s + m], p.flip[s : s + m], p.perms[j]])
                for p in plans
            ],
            axis=1,
        )
        .astype(np.int64)
        .ravel()
        for j, (s, m) in enumerate(zip(starts, sizes))
    ]
    lam = np.stack([p.lam for p in plans], axis=1).astype(np.float64)  # [batches, k], carried as int64 bits
    host = torch.from_numpy(np.concatenate([*blocks, lam.ravel().view(np.int64)]))
    if device.type == "cuda":
        host = host.pin_memory()
    buf = host.to(device, non_blocking=True)
    views, offset = [], 0
    for m in sizes:
        views.append(buf[offset : offset + len(ROWS) * k * m].view(len(ROWS), k, m))
        offset += len(ROWS) * k * m
    assert offset == len(ROWS) * k * n
    return GroupPlan(views, buf[offset:].view(torch.float64).view(len(sizes), k).float())


def neutral_plan(n: int, batch_size: int) -> Plan:
    """A plan that changes nothing: images in order, no crop, no flip, no mixup (for a capture)."""
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    return Plan(
        np.arange(n),
        np.full(n, PAD),
        np.full(n, PAD),
        np.zeros(n, dtype=bool),
        np.ones(len(sizes)),
        [np.arange(m) for m in sizes],
    )
