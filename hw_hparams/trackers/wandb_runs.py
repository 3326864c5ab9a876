"""Weights & Biases: one W&B run per run folder, offline by default in <root>/wandb/; `wandb sync
<root>/wandb/offline-run-*` uploads them (the folders of one run id in the order they were made).

Config: the run's settings and tags; per epoch the METRICS and `epoch` at step = epoch; the summary
gets the status and, once finished, the best and test figures; group = experiment. The run id is
chosen here and kept in <run>/trackers.json before W&B starts, so every attempt of a run is the same
W&B run. Each attempt writes an offline folder of its own (W&B's way): a resumed run reads the
epochs its earlier folders hold (their transaction logs, `run-<id>.wandb`, read_history) and logs
only the others. Offline, W&B reaches no server; its console capture, system metrics, git and code
probes are off, and so are its crash reports unless WANDB_ERROR_REPORTING says otherwise.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # W&B's crash reports to its servers: before wandb is imported

import wandb  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

from hw_hparams.trackers import TrackedRun, final_figures, metrics_of, read_ids, write_ids  # noqa: E402

_HEADER = b":W&B\xe1\xbe\x00"  # a transaction log's first 7 bytes: ident, magic 0xBEE1, version 0
_BLOCK = 32768  # LevelDB's log format: 32 KiB blocks of chunks (crc32, length, type)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterator[bytes]:
    """The records of a transaction log, up to its first damaged or missing chunk (a killed writer's tail)."""
    data = path.read_bytes()
    if not data.startswith(_HEADER):
        return
    pos, parts = len(_HEADER), b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's last few bytes are padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, size, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + size]
        if len(chunk) < size or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos += 7 + size
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            parts = chunk
        elif kind == _MIDDLE:
            parts += chunk
        elif kind == _LAST:
            yield parts + chunk


def read_history(path: Path) -> list[dict]:
    """The history rows (dicts of logged values) in one transaction log, in order."""
    rows = []
    for raw in _records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def logs_of(folder: Path, run_id: str) -> list[Path]:
    """The transaction logs of W&B run `run_id` under `folder` (<root>/wandb), oldest first."""
    return sorted(folder.glob(f"*run-*-{run_id}/run-{run_id}.wandb"), key=lambda p: p.parent.name.split("run-", 1)[-1])


class WandbTracker:
    def __init__(self, run: TrackedRun, epochs_done: int):
        ids = read_ids(run.run_dir).get("wandb") or {}
        if "id" not in ids:
            ids = {"id": uuid.uuid4().hex[:16]}
            write_ids(run.run_dir, "wandb", ids)
        self.held = {
            row["epoch"]
            for log in logs_of(run.root / "wandb", ids["id"])
            for row in read_history(log)
            if "epoch" in row
        }
        run.root.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            console="off",
            silent=True,
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
            disable_git=True,
            save_code=False,
        )
        cfg = run.logger.wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            id=ids["id"],
            resume="allow",
            mode=cfg.mode,
            dir=str(run.root),
            name=run.name,
            group=run.tags["experiment"] or "adhoc",
            tags=[str(v) for v in run.tags.values() if v],
            config={**run.params, **{k: v for k, v in run.tags.items()}},
            reinit="create_new",
            settings=settings,
        )

    def epoch(self, row: dict) -> None:
        if row["epoch"] not in self.held:
            self.run.log({**metrics_of(row), "epoch": row["epoch"]}, step=row["epoch"], commit=True)
            self.held.add(row["epoch"])

    def set_status(self, summary: dict) -> None:
        self.run.summary.update({"status": summary["status"], **final_figures(summary)})

    def close(self, status) -> None:
        self.run.finish(exit_code=0 if status in ("completed", "pruned") else 1)  # a pruned run did not fail
