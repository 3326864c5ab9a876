"""What a run folder already holds, read so that nothing in it crashes a resume or is lost silently.

- `previous_summary`: summary.json, or None; an unreadable one is reported in one line and ignored
  (the checkpoint is the source of truth, and summary.json is rewritten from it).
- `restart_or_refuse`: a folder with trained epochs but no usable checkpoint is refused in one
  line, unless `trainer.restart=true` asks to train it again from epoch 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import checkpoint
from .config import ConfigError
from .run_files import read_json

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
HISTORY = "history.csv"
_SUMMARY_KEYS = {"status", "config", "epochs_completed"}


def previous_summary(run_dir: Path) -> dict | None:
    """The run's summary.json as a dict, or None when it is missing or unreadable (one warning line)."""
    path = run_dir / SUMMARY
    if not path.exists():
        return None
    try:
        s = read_json(path)
        if isinstance(s, dict) and _SUMMARY_KEYS <= s.keys() and isinstance(s["config"], dict):
            return s
        reason = "not a hw_hparams summary"
    except (OSError, ValueError) as err:
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    log.warning("%s is unreadable (%s); ignoring it", path, reason)
    return None


def _history_rows(run_dir: Path) -> int:
    try:
        with open(run_dir / HISTORY) as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def trained_epochs(run_dir: Path, previous: dict | None) -> int:
    """How many epochs the folder says were trained (summary.json, else history.csv; at least 1 if a checkpoint file exists)."""
    n = previous["epochs_completed"] if previous is not None else _history_rows(run_dir)
    has_checkpoint = any((run_dir / name).exists() for name in (checkpoint.NAME, checkpoint.PREVIOUS))
    return max(n, 1) if has_checkpoint else n


def restart_or_refuse(run_dir: Path, previous: dict | None, restart: bool) -> None:
    """Called when no checkpoint is usable: refuse (ConfigError) if epochs would be lost, unless `restart`.

    With `restart`, the run's checkpoints, history and summary are removed and it starts at epoch 1.
    """
    n = trained_epochs(run_dir, previous)
    if n == 0:
        return
    if not restart:
        raise ConfigError(
            f"{run_dir} has {n} trained epoch(s) but no usable checkpoint to resume from; re-run with "
            "trainer.restart=true to train it again from epoch 1 (its history is replaced), or move the folder away"
        )
    log.warning("trainer.restart=true: no usable checkpoint in %s; training it again from epoch 1 (%d epoch(s) of history replaced)", run_dir, n)
    for name in (checkpoint.NAME, checkpoint.PREVIOUS, HISTORY, SUMMARY):
        (run_dir / name).unlink(missing_ok=True)
