"""Writes synthetic run folders in the run-folder format with csv/json/yaml (never with analysis)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]

HIST_HEADER = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"]
CLASS_NAMES = [f"class_{i}" for i in range(100)]


def make_config(
    lr=0.05,
    schedule="constant",
    wd=0.0,
    crop_flip=True,
    mixup=None,
    epochs=6,
    seed=0,
    model="mobilenetv2",
    eval_test=False,
    batch_size=128,
    val_size=10000,
    data_root="data",
):
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "eval_test": eval_test,
        "optim": {"lr": lr, "momentum": 0.9, "weight_decay": wd},
        "schedule": {"name": schedule},
        "augmentation": {"crop_flip": crop_flip, "mixup_alpha": mixup},
        "model": {"name": model},
        "data": {"val_size": val_size, "split_seed": 0, "root": data_root},
    }


def make_data_stats(val=10000, train=40000, test=10000, split_seed=0, mean=(0.5071, 0.4865, 0.4409), fingerprint=None):
    """data_stats.json as a run writes it (sizes, split seed, channel statistics, class proportions)."""
    stats = {
        "sizes": {"train": train, "val": val, "test": test},
        "split_seed": split_seed,
        "mean": list(mean),
        "std": [0.2673, 0.2564, 0.2762],
        "class_names": CLASS_NAMES,
        "class_proportions": np.full(100, 0.01).tolist(),
    }
    return stats if fingerprint is None else {**stats, "dataset_fingerprint": fingerprint}


def make_history(cfg, rng, n_epochs=None, diverge_at=None):
    """Rows of history.csv as lists; accuracies are fractions; NaN losses after divergence."""
    epochs = cfg["epochs"]
    n = epochs if n_epochs is None else n_epochs
    rows = []
    for e in range(1, n + 1):
        base = cfg["optim"]["lr"]
        lr = base if cfg["schedule"]["name"] == "constant" else 0.5 * base * (1 + math.cos(math.pi * (e - 1) / epochs))
        tl = 4.6 * math.exp(-0.2 * e) + rng.uniform(0, 0.1)
        vl = tl + rng.uniform(0, 0.3)
        ta = min(0.99, 0.05 + 0.08 * e + rng.uniform(0, 0.03))
        va = ta - rng.uniform(0, 0.05)
        if diverge_at is not None and e >= diverge_at:
            tl, vl, ta, va = float("nan"), float("nan"), 0.01, 0.01
        rows.append([e, lr, tl, ta, vl, va, rng.uniform(5, 6)])
    return rows


def write_run(run_dir: Path, cfg, rows, status="completed", test=None, summary=True, data_stats=True, overrides=()):
    """A run folder; `data_stats`: True (make_data_stats() of the config's val_size), a dict to write, or False."""
    run_dir.mkdir(parents=True, exist_ok=True)
    hydra = run_dir / ".hydra"
    hydra.mkdir(exist_ok=True)
    (hydra / "config.yaml").write_text(yaml.safe_dump(cfg))
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "MULTIRUN"}}))
    if rows is not None:
        with open(run_dir / "history.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HIST_HEADER + ["extra_col"])  # an unknown column must be ignored
            for r in rows:
                w.writerow([repr(v) if isinstance(v, float) else v for v in r] + ["x"])
    if summary:
        last = rows[-1] if rows else None
        vals = [r[5] for r in rows or []]
        best = int(np.nanargmax(vals)) if vals else None
        s = {
            "status": status,
            "epochs": cfg["epochs"],
            "epochs_completed": len(rows or []),
            "final": None if last is None else dict(zip(HIST_HEADER[:6], last[:6])),
            "best_val_acc": None if best is None else vals[best],
            "best_epoch": None if best is None else rows[best][0],
            "test": test,
            "wall_time_s": 12.5,
            "images_per_s": 3200.0,
            "device": "cpu",
            "config": cfg,
            "versions": {"torch": "2.x"},
            "message": None,
        }
        (run_dir / "summary.json").write_text(json.dumps(s))
    if data_stats:
        val = cfg.get("data", {}).get("val_size", 10000)
        ds = data_stats if isinstance(data_stats, dict) else make_data_stats(val=val, train=50000 - val)
        (run_dir / "data_stats.json").write_text(json.dumps(ds))
    (run_dir / "checkpoint.pt").write_bytes(b"\0")


def read_csv_dicts(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fnum(s: str) -> float:
    return float("nan") if s in ("", "nan", "NaN") else float(s)


HOSTILE = "cls_50%&#\\{x"  # a class name with every LaTeX special the paper must escape


def write_study(
    root: Path,
    schedule_name: str = "cosine",
    class_name: str | None = None,
    command: str = "python -m hw_hparams.homework demo=true",
) -> Path:
    """A finished study folder: four sections of run folders and the choices.json homework writes."""
    rng = np.random.default_rng(11)
    sections: dict[str, list[str]] = {}

    def run(section, name, cfg, **kw):
        write_run(root / section / name, cfg, make_history(cfg, rng), **kw)
        sections.setdefault(section, []).append(f"{section}/{name}")

    for v in (0.5, 0.05, 0.01):
        run("lr_sweep", f"optim.lr={v}", make_config(lr=v, epochs=3))
    for s in ("constant", schedule_name):
        run("schedule_sweep", f"schedule={s}", make_config(schedule=s, epochs=5))
    for v in (5e-4, 1e-4):
        run("wd_sweep", f"wd={v}", make_config(schedule=schedule_name, wd=v, epochs=5))
    run(
        "mixup",
        "mixup",
        make_config(schedule=schedule_name, wd=5e-4, mixup=0.2, epochs=5),
        test={"loss": 1.25, "acc": 0.6543},
    )
    if class_name is not None:
        for p in root.glob("*/*/data_stats.json"):
            stats = json.loads(p.read_text())
            stats["class_names"][7] = class_name
            stats["class_proportions"][7] = 0.005  # the smallest share: named in the text
            p.write_text(json.dumps(stats))
    contract = {
        "schema": 1,
        "command": command,
        "sections": sections,
        "final_section": "mixup",
        "choices": {
            "lr": {"key": "optim.lr", "value": 0.05, "metric": "val_acc", "section": "lr_sweep"},
            "weight_decay": {"key": "optim.weight_decay", "value": 5e-4, "metric": "val_acc", "section": "wd_sweep"},
        },
        "code": {
            "split": {"source": "train, val = random_split(range(n), [n - k, k])", "origin": "cifar.py"},
            "augmentation": {"source": "def crop_flip(x):\n    return x  # 100% {ok}", "origin": "augment.py"},
        },
        "demo": {"epoch_scale": 0.04, "train": 2000, "val": 400, "test": 1000},
    }
    (root / "choices.json").write_text(json.dumps(contract))
    return root
