"""The files of a run folder, each written atomically (temporary file, fsync, rename).

- `history.csv`: one row per completed epoch, HISTORY_COLUMNS; accuracies are fractions.
- `summary.json`: status, progress, final and best metrics, test result, timing, config, versions, SLURM job and attempt.
- `data_stats.json`: split sizes and seed, channel mean/std in [0, 1] units, class proportions.
- `checkpoint.pt` (+ `checkpoint.prev.pt`): everything needed to resume; see checkpoint.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from .slurm.requeue import job as slurm_job

HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"]
STATUSES = ("running", "completed", "diverged", "failed", "interrupted", "requeued")  # requeued: by SLURM, waiting to resume
_TEMP = re.compile(r"^\..+\.tmp\d+$")  # atomic_write_bytes' temporary names


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


def write_history(path: Path, rows: Iterable[dict]) -> None:
    """The whole history as CSV, floats at full precision (repr)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


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
) -> dict:
    """The content of summary.json. `images_per_s`: training images per second of epoch time (train + val)."""
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
        "images_per_s": _images_per_s(rows, train_images),
        "device": device,
        "message": message,
        "config": config,
        "versions": versions(),
        "slurm": slurm_job(),  # {"job_id", "attempt"} under SLURM, else None
    }
