"""Checkpoints: everything a run needs to continue exactly where it stopped, one file per run.

A checkpoint (format FORMAT) holds the run's network in the plain (unfused) network's names and
shapes, its SGD momentum buffers by parameter name, the states of its own generators (draws.py),
the completed epochs' history rows and the config it was made with; the learning rate follows from
the epoch. So a run trained fused with others resumes alone, and the other way round.
It is written to a temporary file and renamed into place; the one before it is kept as
`checkpoint.prev.pt`, so a checkpoint damaged on disk falls back one epoch instead of to zero
(`load`), and one made by another run or not a checkpoint at all is skipped the same way.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from .run_folder import CHECKPOINT as NAME, CHECKPOINT_PREV as PREVIOUS, atomic_write_bytes

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


FORMAT = 2  # 1: hw_hparams before fused runs (torch optimizer and scheduler states, global RNG states)
REQUIRED = ("format", "epoch", "model", "momentum", "random", "history", "config", "wall_time_s")
DAMAGED_SUFFIX = ".damaged"


def _read(path: Path, map_location: torch.device, check: Callable[[dict], None] | None) -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(state, dict) and "scheduler" in state and "format" not in state:
        raise ValueError("made by an earlier version of hw_hparams, which this one cannot resume")
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED) or state["format"] != FORMAT:
        raise ValueError("not a hw_hparams checkpoint")
    if len(state["history"]) != state["epoch"]:
        raise ValueError(f"it holds {len(state['history'])} history rows for {state['epoch']} epochs")
    if check is not None:
        check(state)
    return state


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def load(run_dir: Path, map_location: torch.device, check: Callable[[dict], None] | None = None) -> dict[str, Any] | None:
    """The newest usable checkpoint of the run (current, else previous), or None if there is none.

    A file that cannot be read (truncated, not a checkpoint, not ours), or that `check` rejects by
    raising (e.g. one made with another config), is reported in one log line and skipped. When the
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
            then = f"falling back to {PREVIOUS}" if name == NAME and (run_dir / PREVIOUS).exists() else "no checkpoint left to resume from"
            log.warning("%s is damaged or not this run's (%s); %s", path, _reason(err), then)
            skipped.append(path)
            continue
        for bad in skipped:
            os.replace(bad, bad.with_name(bad.name + DAMAGED_SUFFIX))
        return state
    return None
