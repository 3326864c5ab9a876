"""How many runs of a group train as one network: as many as the CUDA device's free memory holds.

The fused launcher groups a sweep's jobs by network shape, at most `max_fused` to a group
(hydra_plugins/hw_hparams_fused); `train_sized` then trains a group in parts:
- the first part is the whole group (nothing measured yet); each capture measures the CUDA memory
  one run of its part needs (capture.prepare: peak allocated during capture / k, the memory of a
  training step), and every later part of the same kind holds as many runs as fit in the device's
  free memory with 10% headroom (`fit`), never more than the group;
- a CUDA out-of-memory while a part trains (capture or any epoch) retries that part with half the
  runs (one warning line), each run resuming from its last checkpoint (or from scratch before its
  first one), down to one run; a single run that does not fit fails as before.
On the CPU nothing is measured and a group trains whole (an out-of-memory raised there is retried too).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import torch

from hw_hparams.runs import checkpoint
from hw_hparams.runs.format import DIVERGED, PRUNED

log = logging.getLogger("hw_hparams.train")

HEADROOM = 0.9  # share of the free memory a part may plan to use
_PER_RUN: dict[tuple, int] = {}  # (device, model, batch size, precision setting) -> bytes per run, measured


def fit(free_bytes: int, per_run_bytes: int, runs: int) -> int:
    """Runs (1..runs) that fit in `free_bytes` at `per_run_bytes` each, with HEADROOM."""
    return max(1, min(runs, int(free_bytes * HEADROOM) // max(1, per_run_bytes)))


def free_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device once this process's idle cached blocks and old graphs are released."""
    release(device)
    return torch.cuda.mem_get_info(device)[0]


def release(device: torch.device) -> None:
    """Drop compiled graphs (their CUDA-graph memory pools) and cached blocks of a finished or failed part."""
    gc.collect()
    if device.type == "cuda":
        torch._dynamo.reset()
        torch.cuda.empty_cache()


def train_sized(members: list[Any], train: Callable[[list[Any]], None], device: torch.device) -> None:
    """Train `members` (loop.Member, same epoch and precision) with `train(part)`, in parts sized
    to the device (module docstring); sets each member's outcome as `train` does."""
    cfg = members[0].cfg
    kind = (str(device), cfg.model.name, int(cfg.batch_size), str(cfg.trainer.precision))
    pending, size = list(members), len(members)
    while pending:
        if device.type == "cuda" and kind in _PER_RUN:
            size = fit(free_bytes(device), _PER_RUN[kind], len(pending))
        part = pending[:size]
        try:
            train(part)
        except torch.cuda.OutOfMemoryError as err:
            if len(part) == 1:
                raise
            size = len(part) // 2
            log.warning(
                "out of memory training %d runs as one network (%s); retrying with %d at a time",
                len(part),
                " ".join(str(err).split())[:120],
                size,
            )
            del err
            release(device)
            for m in part:
                _back_to_checkpoint(m, device)
            pending = [m for m in pending if not m.done]
            continue
        record = part[0].compile
        if record is not None and record.per_run_bytes:
            _PER_RUN[kind] = record.per_run_bytes
        pending = pending[len(part) :]


def _back_to_checkpoint(m: Any, device: torch.device) -> None:
    """A run whose part ran out of memory: back to its last checkpoint (a diverged or pruned run stays finished)."""
    if m.outcome is not None and m.outcome.summary is not None and m.outcome.summary["status"] in (DIVERGED, PRUNED):
        return
    m.outcome = None
    m.state = checkpoint.load(m.run_dir, device)
    m.rows, m.wall = checkpoint.progress(m.state)
