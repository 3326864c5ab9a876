"""The run folder's files and every rule about what a folder holds (its format: format.py).

Rules owned here: whether a folder holds this run ("same run?": roles.run_settings), whether it is
finished, whether it can resume, moving an earlier history aside. Every file is written atomically
(temporary file, fsync, rename). No Hydra and no torch at import: the study's selection and other
readers use this module cheaply.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import math
import os
import platform
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.roles import run_settings
from hw_hparams.runs.format import (
    CHECKPOINT,
    CHECKPOINT_PREV,
    DATA_STATS,
    FINISHED,
    HISTORY,
    HISTORY_COLUMNS,
    LOCK,
    OLD,
    STATUSES,
    SUMMARY,
)
from hw_hparams.slurm.requeue import job as slurm_job

log = logging.getLogger(__name__)

_TEMP = re.compile(r"^\..+\.tmp\d+$")  # atomic_write_bytes' temporary names
_SUMMARY_KEYS = {"status", "config", "epochs_completed"}


# --- writing and reading files ---------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes, before_replace: Callable[[], None] | None = None) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    `before_replace` runs once the new data is on disk, just before it takes the old file's place
    (checkpoint.save keeps the old file there); a failed write (e.g. a full disk) changes nothing.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files `atomic_write_bytes` leaves behind when its process is killed.

    Call it only while holding the folder (`lock.run_lock`): a live writer's file would go too.
    """
    stale = [p for p in folder.iterdir() if _TEMP.match(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_history(run_dir: Path, rows: Iterable[dict]) -> None:
    """The whole history as CSV, floats at full precision (repr); a file that already says so is left as it is."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    data, path = buf.getvalue().encode(), run_dir / HISTORY
    if not (path.exists() and path.read_bytes() == data):
        atomic_write_bytes(path, data)


def read_summary(run_dir: Path, warn: bool = True) -> dict | None:
    """summary.json as a dict; None when it is missing or unreadable (one warning line with `warn`)."""
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
    if warn:
        log.warning("%s is unreadable (%s); ignoring it", path, reason)
    return None


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json(run_dir / SUMMARY, summary)


# --- what a folder holds -----------------------------------------------------------------------


def is_finished(summary: dict | None, need_test: bool = False) -> bool:
    """Completed, diverged or pruned (and, with `need_test`, a completed run has its test split evaluated)."""
    if summary is None or summary["status"] not in FINISHED:
        return False
    return not need_test or summary["status"] != "completed" or summary["test"] is not None


def check_same_run(run_dir: Path, stored: dict, config: dict) -> None:
    """Refuse (ConfigError) to continue a folder whose run has another configuration."""
    old, new = run_settings(stored), run_settings(config)
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise ConfigError(
            f"{run_dir} holds a run with {k}={old.get(k)!r}, not {new.get(k)!r}: "
            "pick another folder (hydra.run.dir=...) or move that one away"
        )


def check_creatable(folder: Path, what: str, place_key: str) -> None:
    """ConfigError unless `folder` is a writable folder or can be made (its nearest existing folder takes
    a new folder: tried, and removed again, as file modes do not say so for root or /proc)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    writable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    if writable and existing != folder.absolute():
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".hw-probe-", dir=existing))
        except OSError:
            writable = False
    if not writable:
        raise ConfigError(
            f"cannot create {what} {folder}: {existing} is not a writable folder; "
            f"choose another place with {place_key}=..."
        )


def check_usable(run_dir: Path, config: dict, place_key: str = "hydra.run.dir") -> None:
    """The checks that need no data: the folder can be written and holds no run of another config.

    Writes nothing that stays; raises ConfigError with one line. (A live process holding it: `lock.check_free`.)
    """
    check_creatable(run_dir, "the run folder", place_key)
    summary = read_summary(run_dir, warn=False)
    if summary is not None:
        check_same_run(run_dir, summary["config"], config)


def check_same_data(run_dir: Path, stats: dict, data_root: str) -> None:
    """Refuse to continue a run on other data than it was trained on (split sizes, channel means)."""
    path = run_dir / DATA_STATS
    if path.exists():
        old = read_json(path)
        if (old["sizes"], old["mean"]) != (stats["sizes"], stats["mean"]):
            raise ConfigError(f"data.root={data_root!r} holds other data than the run in {run_dir} was trained on")


def _history_rows(run_dir: Path) -> int:
    try:
        with open(run_dir / HISTORY) as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def trained_epochs(run_dir: Path, summary: dict | None) -> int:
    """How many epochs the folder says were trained (summary.json, else history.csv; at least 1 if a checkpoint
    file exists)."""
    n = summary["epochs_completed"] if summary is not None else _history_rows(run_dir)
    has_checkpoint = any((run_dir / name).exists() for name in (CHECKPOINT, CHECKPOINT_PREV))
    return max(n, 1) if has_checkpoint else n


def restart_or_refuse(run_dir: Path, summary: dict | None, restart: str) -> bool:
    """Called when no checkpoint is usable: whether the run must start again at epoch 1 over trained epochs
    (then with `trainer.restart=true` or `force`: the caller moves its files aside); ConfigError when it
    would lose trained epochs without one."""
    n = trained_epochs(run_dir, summary)
    if n == 0:
        return False
    if restart == "false":
        raise ConfigError(
            f"{run_dir} has {n} trained epoch(s) but no usable checkpoint to resume from; re-run with "
            f"trainer.restart=true to train it again from epoch 1 (its files are then kept in {OLD}N/ inside it), "
            "or move the folder away"
        )
    return True


def move_aside(run_dir: Path) -> Path | None:
    """Move every file of the run folder but its lock (and earlier old-N folders) into a new `<run>/old-N/`,
    so a history trained again from epoch 1 never mixes with the earlier one; that folder, or None when there
    was nothing to move. Call it only while holding the folder (`lock.run_lock`)."""
    taken = [int(p.name[len(OLD) :]) for p in run_dir.glob(OLD + "*") if p.name[len(OLD) :].isdigit()]
    moving = [p for p in run_dir.iterdir() if p.name != LOCK and not (p.name.startswith(OLD) and p.is_dir())]
    if not moving:
        return None
    old = run_dir / f"{OLD}{max(taken, default=0) + 1}"
    old.mkdir()
    for p in moving:
        os.replace(p, old / p.name)
    return old


# --- summary.json --------------------------------------------------------------------------------


def best_epoch(rows: list[dict]) -> tuple[float | None, int | None]:
    """(best val_acc, its epoch) over rows with a finite val_acc; the earliest epoch wins ties."""
    finite = [r for r in rows if isinstance(r["val_acc"], float) and math.isfinite(r["val_acc"])]
    if not finite:
        return None, None
    best = max(finite, key=lambda r: (r["val_acc"], -r["epoch"]))
    return best["val_acc"], best["epoch"]


def _images_per_s(rows: list[dict], train_images: int) -> float | None:
    seconds = sum(r["epoch_time_s"] for r in rows)
    return train_images * len(rows) / seconds if seconds > 0 else None


def utc_now() -> str:
    """The time now, ISO 8601 in UTC to the millisecond: '2026-12-02T06:00:00.123+00:00'."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def versions() -> dict[str, str]:
    import hydra
    import omegaconf
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "hydra": hydra.__version__,
        "omegaconf": omegaconf.__version__,
        "cuda": torch.version.cuda or "none",
    }


def summary(
    status: str,
    rows: list[dict],
    epochs: int,
    config: dict,
    device: str,
    wall_time_s: float,
    train_images: int,
    test: dict | None = None,
    message: str | None = None,
    compile: dict | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
) -> dict:
    """The content of summary.json. `images_per_s`: training images per second of epoch time (train + val);
    `compile`: the compiled step's record (compile_guard.CompileRecord: precision, graphs, recompiles, fallback, ...);
    `started_at` / `finished_at`: when a job first took the run up (before loading its data) and when it
    completed or diverged (utc_now())."""
    assert status in STATUSES, status
    best_acc, best_ep = best_epoch(rows)
    final = {k: v for k, v in rows[-1].items() if k != "epoch_time_s"} if rows else None
    return {
        "status": status,
        "epochs": epochs,
        "epochs_completed": len(rows),
        "final": final,
        "best_val_acc": best_acc,
        "best_epoch": best_ep,
        "test": test,
        "wall_time_s": wall_time_s,
        "started_at": started_at,
        "finished_at": finished_at,
        "images_per_s": _images_per_s(rows, train_images),
        "device": device,
        "compile": compile,
        "message": message,
        "config": config,
        "versions": versions(),
        "slurm": slurm_job(),  # {"job_id", "attempt"} under SLURM, else None
    }
