"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the model, optimizer and scheduler states, every RNG state (Python, NumPy,
torch CPU, torch CUDA), the completed epochs' history rows and the config it was made with.
It is written to a temporary file and renamed into place; the one before it is kept as
`checkpoint.prev.pt`, so a checkpoint damaged on disk falls back one epoch instead of to zero.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .run_files import atomic_write_bytes

log = logging.getLogger(__name__)

NAME = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` as the run's checkpoint, keeping the previous one."""
    buf = io.BytesIO()
    torch.save(state, buf)
    current = run_dir / NAME
    if current.exists():
        os.replace(current, run_dir / PREVIOUS)
    atomic_write_bytes(current, buf.getvalue())


def load(run_dir: Path, map_location: torch.device) -> dict[str, Any] | None:
    """The newest readable checkpoint of the run (current, else previous), or None if there is none.

    A damaged file is reported in one log line and skipped; it is never silently replaced by a fresh start
    when a readable one exists.
    """
    for name in (NAME, PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("not a hw_hparams checkpoint")
            return state
        except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
            log.warning("checkpoint %s is damaged (%s: %s); trying the previous one", path, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    return None
