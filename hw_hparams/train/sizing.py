"""How many runs of a group train as one network: as many as the CUDA device's memory holds.

The fused launcher groups a sweep's jobs by network shape, at most `max_fused` to a group
(hydra_plugins/hw_hparams_fused); `train_sized` then trains a group in parts:
- the first part is the whole group, unless a part of the same kind (device, model, batch size,
  precision setting) was measured earlier in this process: then as many runs as `fit`;
- a part that starts from released memory is measured: the peak memory the process reserved from
  the device while the part trained (capture, every epoch, evaluation), per run. Reserved, not
  allocated: the difference is the caching allocator's fragmentation and rounding, a margin
  measured, not guessed (logged with the figure);
- after each measured part the rest is sized again (`fit`: HEADROOM of the memory free for it, at
  the measured cost per run). Free memory is device-wide (`torch.cuda.mem_get_info`), so another
  process on the card lowers it, and HEADROOM leaves it 10% to grow. A next part of the size the
  last one had reuses that part's compiled graphs (engine/group.py) without releasing them;
- a CUDA out-of-memory while a part trains (capture or any epoch; anywhere in the exception chain)
  is dealt with once out of the except block, so nothing of the failed attempt is alive: compiled
  graphs and cached blocks are released, each run goes back to its last checkpoint (loaded to the
  CPU), and the part is tried again with half the runs, or fewer where the memory now free holds
  fewer at the measured cost (one warning line); down to one run; a single run that does not fit fails.
On the CPU nothing is measured and a group trains whole (an out-of-memory raised there is retried too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

import torch

from hw_hparams.engine import gpu
from hw_hparams.engine.compile_guard import one_line
from hw_hparams.runs import checkpoint
from hw_hparams.runs.format import DIVERGED, PRUNED

log = logging.getLogger("hw_hparams.train")

HEADROOM = 0.9  # share of the free memory a part may plan to use
_PER_RUN: dict[tuple, int] = {}  # (device, model, batch size, precision setting) -> bytes per run, measured
CPU = torch.device("cpu")


def fit(free_bytes: int, per_run_bytes: int, runs: int) -> int:
    """Runs (1..runs) that fit in `free_bytes` at `per_run_bytes` each, with HEADROOM."""
    return max(1, min(runs, int(free_bytes * HEADROOM) // max(1, per_run_bytes)))


def train_sized(members: list[Any], train: Callable[[list[Any]], None], device: torch.device) -> None:
    """Train `members` (loop.Member, same epoch and precision) with `train(part)`, in parts sized
    to the device (module docstring); sets each member's outcome as `train` does."""
    cfg = members[0].cfg
    kind = (str(device), cfg.model.name, int(cfg.batch_size), str(cfg.trainer.precision))
    card = gpu.for_device(device)
    pending, size = list(members), len(members)
    fresh = card is not None  # the next part starts from released memory, so its peak is its own
    if fresh:
        card.release()
        if kind in _PER_RUN:
            size = fit(card.free(), _PER_RUN[kind], len(pending))
    while pending:
        part = pending[: min(size, len(pending))]
        base = card.start_peak() if card is not None else (0, 0)
        failure: Optional[str] = None
        try:
            train(part)
        except Exception as err:  # noqa: BLE001 - out of memory is handled below, outside this block
            failure = _out_of_memory_line(err)  # a string: no reference to the failed attempt outlives this block
            if len(part) == 1 or failure is None:
                raise
        if failure is not None:  # the failed attempt's traceback, frames and tensors are gone now
            gpu.release(device)
            for m in part:
                _back_to_checkpoint(m)
            pending = [m for m in pending if not m.done]
            size = len(part) // 2
            if card is not None and kind in _PER_RUN:
                size = min(size, fit(card.free(), _PER_RUN[kind], len(pending)))
            log.warning(
                "out of memory training %d runs as one network (%s); retrying with %d at a time",
                len(part),
                failure[:160],
                size,
            )
            fresh = True
            continue
        pending = pending[len(part) :]
        if card is None:
            continue
        if fresh:
            _PER_RUN[kind] = _measured(card, base, len(part))
        reused = fit(card.free() + card.reserved() - base[1], _PER_RUN[kind], len(pending)) >= min(size, len(pending))
        fresh = bool(pending) and not reused
        if fresh:  # fewer fit now (another process took memory): release and size the rest again
            card.release()
            size = fit(card.free(), _PER_RUN[kind], len(pending))


def _out_of_memory_line(err: BaseException) -> Optional[str]:
    """The CUDA out-of-memory in `err`'s chain in one line, or None when there is none."""
    oom = gpu.out_of_memory(err)
    return None if oom is None else one_line(oom)


def _measured(card: gpu.Gpu, base: tuple[int, int], runs: int) -> int:
    """Bytes per run of the part that just trained from `base` (allocated, reserved), its peak reserved memory."""
    allocated, reserved = (max(0, peak - start) for peak, start in zip(card.peak(), base))
    per_run = max(reserved, allocated) // runs
    log.info(
        "measured %.0f MiB of GPU memory per run (peak reserved; %.0f MiB allocated, a fragmentation margin of %.0f%%)",
        per_run / 2**20,
        allocated / runs / 2**20,
        100 * (max(reserved, allocated) / max(1, allocated) - 1),
    )
    return per_run


def _back_to_checkpoint(m: Any) -> None:
    """A run whose part ran out of memory: back to its last checkpoint, loaded to the CPU (the group's
    build moves it to the device), so k checkpoints never land on a full GPU (a diverged or pruned run stays
    finished)."""
    if m.outcome is not None and m.outcome.summary is not None and m.outcome.summary["status"] in (DIVERGED, PRUNED):
        return
    m.outcome = None
    m.state = checkpoint.load(m.run_dir, CPU)
    m.rows, m.wall = checkpoint.progress(m.state)
