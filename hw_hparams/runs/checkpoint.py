"""Checkpoints: everything a run needs to continue exactly where it stopped, one file per run.

A checkpoint (format FORMAT; its layout is built by `make`, checked by `load` and read by
`restore` / `progress` / `precision`, all here: no other module names its keys) holds the run's
network in the plain (unfused) network's names and shapes, its SGD momentum buffers by parameter
name, the states of its own generators (draws.py), its fp16 loss scale, the precision it trains in,
the completed epochs' history rows and the config it was made with; the learning rate follows from
the epoch. So a run trained fused with others resumes alone, and the other way round. Tensors are
stored on the CPU and generator states with their device type, so a run resumes on any device (draws.py).
It is written to a temporary file and renamed into place; the one before it is kept as
`checkpoint.prev.pt`, so a checkpoint damaged on disk falls back one epoch instead of to zero
(`load`), and one made by another run or not a checkpoint at all is skipped the same way.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hw_hparams.engine.fusion import copy_state, load_copy, part_of
from hw_hparams.runs.folder import atomic_write_bytes
from hw_hparams.runs.format import CHECKPOINT as NAME
from hw_hparams.runs.format import CHECKPOINT_PREV as PREVIOUS

log = logging.getLogger(__name__)


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` as the run's checkpoint, keeping the previous one.

    The old checkpoint becomes checkpoint.prev.pt only once the new one is fully on disk, so a
    failed write (full disk, unwritable folder) leaves both as they were.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    current = run_dir / NAME

    def keep_previous() -> None:
        if current.exists():
            os.replace(current, run_dir / PREVIOUS)

    atomic_write_bytes(current, buf.getvalue(), before_replace=keep_previous)


FORMAT = 3  # 1: before fused runs (torch optimizer and scheduler states); 2: no precision or loss scale
READABLE = (2, 3)  # format 2 resumes in the precision its setting gives, with a fresh loss scale
REQUIRED = ("format", "epoch", "model", "momentum", "random", "history", "config", "wall_time_s")
DAMAGED_SUFFIX = ".damaged"


def make(group: Any, i: int, history: list[dict], config: dict, wall_time_s: float) -> dict[str, Any]:
    """Run i of `group` (group.Group) as a checkpoint: its own network, momentum, generators and loss
    scale, in the plain network's names and shapes, on the CPU."""
    model, optimizer = group.model, group.optimizer
    return {
        "format": FORMAT,
        "epoch": len(history),
        "model": _cpu(copy_state(model, i)),
        "momentum": {n: part_of(model, n, b, i).detach().cpu().clone() for n, b in optimizer.buffers.items()},
        "random": group.randoms[i].state(),
        "history": history,
        "config": config,
        "wall_time_s": wall_time_s,
        "precision": group.settings.precision,
        "loss_scale": optimizer.scaler.state(i) if optimizer.scaler is not None else None,
    }


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t.cpu() for n, t in state.items()}


def restore(group: Any, i: int, state: dict[str, Any]) -> bool:
    """Load checkpoint `state` into run i of `group`; False when its dropout generator could not
    continue exactly (saved on another device type: draws.RunRandom.load_state)."""
    device = next(group.model.parameters()).device
    load_copy(group.model, i, {n: t.to(device) for n, t in state["model"].items()})
    with torch.no_grad():
        for name, buf in group.optimizer.buffers.items():
            part_of(group.model, name, buf, i).copy_(state["momentum"][name])
    if group.optimizer.scaler is not None and state.get("loss_scale") is not None:
        group.optimizer.scaler.load_state(i, state["loss_scale"])
    return group.randoms[i].load_state(state["random"])


def progress(state: dict[str, Any] | None) -> tuple[list[dict], float]:
    """(the completed epochs' history rows, wall seconds so far) of a checkpoint; ([], 0.0) for none."""
    return ([], 0.0) if state is None else (list(state["history"]), state["wall_time_s"])


def precision(state: dict[str, Any] | None) -> str | None:
    """The precision the run started with (None: no checkpoint, or one from before it was recorded)."""
    return None if state is None else state.get("precision")


def _read(path: Path, map_location: torch.device, check: Callable[[dict], None] | None) -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(state, dict) and "scheduler" in state and "format" not in state:
        raise ValueError("made by an earlier version of hw_hparams, which this one cannot resume")
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED) or state["format"] not in READABLE:
        raise ValueError("not a hw_hparams checkpoint")
    if len(state["history"]) != state["epoch"]:
        raise ValueError(f"it holds {len(state['history'])} history rows for {state['epoch']} epochs")
    if check is not None:
        check(state["config"])
    return state


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def load(
    run_dir: Path, map_location: torch.device, check: Callable[[dict], None] | None = None
) -> dict[str, Any] | None:
    """The newest usable checkpoint of the run (current, else previous), or None if there is none.

    A file that cannot be read (truncated, not a checkpoint, not ours), or whose config (the one it
    was made with, as `make` was given it) `check` rejects by raising, is reported in one log line and skipped. When the
    previous checkpoint is used, the skipped current one is renamed `checkpoint.pt.damaged`, so the
    next `save` does not rotate it over the good one. Nothing is renamed when none is usable.
    """
    skipped = []
    for name in (NAME, PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            state = _read(path, map_location, check)
        except Exception as err:  # noqa: BLE001 - whatever fails to load is unusable, never a traceback
            then = (
                f"falling back to {PREVIOUS}"
                if name == NAME and (run_dir / PREVIOUS).exists()
                else "no checkpoint left to resume from"
            )
            log.warning("%s is damaged or not this run's (%s); %s", path, _reason(err), then)
            skipped.append(path)
            continue
        for bad in skipped:
            os.replace(bad, bad.with_name(bad.name + DAMAGED_SUFFIX))
        return state
    return None
