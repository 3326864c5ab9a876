"""Find run folders and load them into two tables (one row per run; one row per run-epoch).

Units: accuracies are fractions in [0, 1] (tables convert to %), losses are nats per example,
`lr` is the learning rate used in that epoch, times are seconds.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.read.labels import is_missing, setting_label
from hw_hparams.runs.format import DATA_STATS, HISTORY, HISTORY_COLUMNS, SUMMARY

#: Columns of history.csv that are kept (unknown extra columns are ignored).
#: Final-epoch metrics taken from the last history row.
FINAL_COLS = ["train_loss", "train_acc", "val_loss", "val_acc"]
#: Hyperparameter column -> dotted config key.
HPARAM_KEYS = {
    "lr": "optim.lr",
    "schedule": "schedule.name",
    "weight_decay": "optim.weight_decay",
    "crop_flip": "augmentation.crop_flip",
    "mixup_alpha": "augmentation.mixup_alpha",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "seed": "seed",
    "model": "model.name",
    "momentum": "optim.momentum",
}
HPARAMS = list(HPARAM_KEYS)
#: Runs sharing a section and all of these values are seeds of one setting.
GROUP_COLS = [c for c in HPARAMS if c != "seed"]
#: Columns appended to a setting's words when they vary inside a section.
EXTRA_LABEL_COLS = ("epochs", "batch_size", "momentum")
META_COLS = ["run_dir", "section", "setting"] + HPARAMS
#: Per run, after its META_COLS: how it ended, its final and best metrics, its test result, and how it ran.
RESULT_COLS = ["status", "epochs_completed", *FINAL_COLS, "best_val_acc", "best_epoch", "test_loss", "test_acc"]
RUN_COLS = META_COLS + RESULT_COLS + ["wall_time_s", "images_per_s", "device", "compile", "message"]
RUN_MARKERS = (HISTORY, SUMMARY)
#: A folder holding this file is analysis output (runs.csv beside an aggregated history.csv), never a run.
REPORT_MARKER = "runs.csv"
#: Columns only an aggregated history.csv has; a run's own history.csv never does.
AGGREGATE_COLS = ("run_dir", "section", "setting")
# pandas < 3 parses floats approximately by default; pandas 3 round-trips (and deprecates the flag).
_READ_KW = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


class AnalysisError(Exception):
    """A problem the user can fix (bad path, no run folders); reported as one line."""


def is_run_dir(path: Path) -> bool:
    """A run folder holds summary.json or its own history.csv; a report folder (runs.csv, or a
    history.csv whose header names run_dir/section/setting: an aggregated table) never counts."""
    path, hist = Path(path), Path(path) / HISTORY
    if (path / REPORT_MARKER).is_file():
        return False
    if (path / SUMMARY).is_file():
        return True
    if not hist.is_file():
        return False
    try:
        with open(hist, encoding="utf-8") as f:
            header = f.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return True  # unreadable: a run's own (read_history warns about it)
    return not any(c in header for c in AGGREGATE_COLS)


def find_run_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run folders among `paths` and below them (recursive; `.hydra` and report folders skipped),
    in sorted order."""
    found: dict[str, Path] = {}
    paths = list(paths)
    if not paths:
        raise AnalysisError("no paths given")
    for p in paths:
        root = Path(p)
        if not root.exists():
            raise AnalysisError(f"path does not exist: {root}")
        if not root.is_dir():
            raise AnalysisError(f"not a folder: {root}")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != ".hydra")
            if REPORT_MARKER in filenames:
                dirnames[:] = []  # a report folder and its tables/figures hold no runs
                continue
            if any(m in filenames for m in RUN_MARKERS) and is_run_dir(Path(dirpath)):
                found.setdefault(os.path.normpath(dirpath), Path(dirpath))
                dirnames[:] = []  # a run folder's subfolders are not runs
    if not found:
        raise AnalysisError(
            "no run folders (with history.csv or summary.json) found under: " + ", ".join(str(p) for p in paths)
        )
    return [found[k] for k in sorted(found)]


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        warnings.warn(f"unreadable {path}: {e}", stacklevel=3)
        return None


def _read_yaml(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        import yaml  # PyYAML (a dependency of omegaconf)

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except Exception as e:  # noqa: BLE001 - a broken file must not stop the analysis
        warnings.warn(f"unreadable {path}: {e}", stacklevel=3)
        return None
    return data if isinstance(data, dict) else None


def load_config(run_dir: Path, summary: dict | None = None) -> dict[str, Any]:
    """The run's flattened config: summary.json['config'], else .hydra/config.yaml, else {}."""
    cfg = (summary or {}).get("config")
    if not isinstance(cfg, dict):
        cfg = _read_yaml(Path(run_dir) / ".hydra" / "config.yaml") or {}
    return flatten(cfg)


def read_history(run_dir: Path) -> pd.DataFrame:
    """history.csv restricted to HISTORY_COLUMNS (missing columns NaN); empty frame if absent/empty."""
    path = Path(run_dir) / HISTORY
    try:
        df = pd.read_csv(path, **_READ_KW)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        df = pd.DataFrame()
    except (OSError, ValueError, pd.errors.ParserError) as e:
        warnings.warn(f"unreadable {path}: {e}", stacklevel=2)
        df = pd.DataFrame()
    df = df.reindex(columns=list(HISTORY_COLUMNS))
    for c in HISTORY_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _num(x: Any) -> float:
    try:
        return float(x) if x is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def _run_record(run_dir: Path, summary: dict | None, n_hist: int, cfg: dict[str, Any]) -> dict[str, Any]:
    s = summary or {}
    rec: dict[str, Any] = {"run_dir": str(run_dir), "section": Path(os.path.abspath(run_dir)).parent.name}
    for col, key in HPARAM_KEYS.items():
        v = cfg.get(key)
        rec[col] = np.nan if v is None else v
    if is_missing(rec["epochs"]) and s.get("epochs") is not None:
        rec["epochs"] = s["epochs"]
    rec["status"] = s.get("status") or "unknown"
    rec["epochs_completed"] = n_hist if n_hist else (s.get("epochs_completed") or 0)
    final = s.get("final") if isinstance(s.get("final"), dict) else {}
    for c in FINAL_COLS:
        rec[c] = _num(final.get(c))  # replaced by the last history row when there is one
    for c in ("best_val_acc", "best_epoch", "wall_time_s", "images_per_s"):
        rec[c] = _num(s.get(c))
    test = s.get("test") if isinstance(s.get("test"), dict) else {}
    rec["test_loss"], rec["test_acc"] = _num(test.get("loss")), _num(test.get("acc"))
    rec["device"] = s.get("device")
    rec["compile"] = compile_words(s.get("compile"))
    rec["message"] = s.get("message")
    return rec


def compile_words(record: Any) -> str | None:
    """summary.json's `compile` record in words: 'compiled, bf16: 3 graphs, 0 recompiles, ...' or
    'eager, fp32 (fallback: ...)'."""
    if not isinstance(record, dict):
        return None
    precision = record.get("precision", "?")
    if record.get("compiled"):
        counts = ", ".join(
            f"{record.get(k, '?')} {k.replace('_', ' ')}"
            for k in ("graphs", "recompiles", "graph_breaks", "cudagraph_skips")
        )
        return f"compiled, {precision}: {counts}, {_num(record.get('compile_s')):.0f} s to compile"
    fallback = record.get("fallback")
    return f"eager, {precision}" + (f" (fallback: {fallback})" if fallback else "")


def _as_int(s: pd.Series) -> pd.Series:
    """Whole numbers as nullable Int64 (written without '.0'); other columns unchanged."""
    num = pd.to_numeric(s, errors="coerce")
    whole = num.dropna()
    if num.notna().sum() == s.notna().sum() and (whole == whole.round()).all():
        return num.round().astype("Int64")
    return s


def add_setting_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill `setting` with words; EXTRA_LABEL_COLS are named where they vary within a section."""
    runs = runs.copy()
    if runs.empty:
        runs["setting"] = pd.Series(dtype=object)
        return runs
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, idx in runs.groupby("section", sort=False, dropna=False).groups.items():
        part = runs.loc[idx]
        extra = tuple(c for c in EXTRA_LABEL_COLS if part[c].nunique(dropna=False) > 1)
        labels.loc[idx] = [setting_label(r, extra) for r in part.to_dict("records")]
    runs["setting"] = labels
    return runs


def collect(paths: Iterable[str | os.PathLike], configs: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load every run under `paths`.

    Returns (runs, history): `runs` has one row per run (columns RUN_COLS; final metrics are the
    last history.csv row, else summary.json's `final`, else NaN; epochs_completed = number of
    history rows (summary's value when there is no history); best_* from summary.json, else from
    history; test_* NaN where the test set was not evaluated; status 'unknown' without summary);
    `history` has one row per run per logged epoch (META_COLS + HISTORY_COLUMNS).
    `configs`, when given, is filled with each run's flattened config (load_config), in row order.
    Raises AnalysisError for a missing path or when no run folder is found.
    """
    dirs = find_run_dirs(paths)
    records, frames = [], []
    for d in dirs:
        summary = _read_json(d / SUMMARY)
        hist = read_history(d)
        cfg = load_config(d, summary)
        if configs is not None:
            configs.append(cfg)
        records.append(_run_record(d, summary, len(hist), cfg))
        frames.append(hist)
    runs = pd.DataFrame.from_records(records)
    lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
    nonempty = [f for f in frames if len(f)]
    hist = (
        pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=list(HISTORY_COLUMNS), dtype=float)
    )
    run_idx = np.repeat(np.arange(len(runs)), lengths)

    if len(hist):  # final metrics = last history row; best from history where summary lacks it
        last = np.cumsum(lengths)[lengths > 0] - 1
        has = lengths > 0
        for c in FINAL_COLS:
            col = runs[c].to_numpy(dtype=float, copy=True)
            col[has] = hist[c].to_numpy(dtype=float)[last]
            runs[c] = col
        need = np.flatnonzero(runs["best_val_acc"].isna().to_numpy() & has)
        if len(need):  # only runs without a usable summary: a short loop over slices
            va, ep = hist["val_acc"].to_numpy(dtype=float), hist["epoch"].to_numpy(dtype=float)
            starts = np.cumsum(lengths) - lengths
            best = runs["best_val_acc"].to_numpy(dtype=float, copy=True)
            best_ep = runs["best_epoch"].to_numpy(dtype=float, copy=True)
            for i in need:
                seg = va[starts[i] : starts[i] + lengths[i]]
                if np.isfinite(seg).any():
                    j = int(np.nanargmax(seg))
                    best[i], best_ep[i] = seg[j], ep[starts[i] + j]
            runs["best_val_acc"], runs["best_epoch"] = best, best_ep

    runs = add_setting_labels(runs).reindex(columns=RUN_COLS)
    for c in ("lr", "weight_decay", "mixup_alpha", "momentum"):
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    for c in ("epochs", "batch_size", "seed", "epochs_completed", "best_epoch"):
        runs[c] = _as_int(runs[c])
    meta = runs[META_COLS]
    long = pd.DataFrame({c: meta[c].to_numpy()[run_idx] for c in META_COLS})
    for c in HISTORY_COLUMNS:
        long[c] = hist[c].to_numpy() if len(hist) else np.array([], dtype=float)
    return runs, long


#: Decimals of the channel statistics and class proportions that data_identity compares (float sums of the
#: same images may differ in their last bits from machine to machine).
DATA_DECIMALS = 9


def read_data_stats(run_dir: str | os.PathLike) -> dict | None:
    """The run's data_stats.json (split sizes, split seed, channel statistics, class counts), else None."""
    return _read_json(Path(run_dir) / DATA_STATS)


def data_identity(stats: dict | None) -> tuple | None:
    """What makes two runs' data the same, from their data_stats.json (None without one): the split sizes
    (train, val, test), the split seed, and the training split's class proportions and channel mean and std
    (to DATA_DECIMALS). Not `dataset_fingerprint`: it holds the files' times, so copies of one dataset differ."""
    if not isinstance(stats, dict):
        return None
    sizes = stats.get("sizes") if isinstance(stats.get("sizes"), dict) else {}

    def rounded(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(rounded(x) for x in v)
        return round(v, DATA_DECIMALS) if isinstance(v, float) else v

    split = (sizes.get("train"), sizes.get("val"), sizes.get("test"), stats.get("split_seed"))
    return split + tuple(rounded(stats.get(k)) for k in ("class_proportions", "mean", "std"))


def load_data_stats(run_dirs: Iterable[str | os.PathLike]) -> dict | None:
    """The first data_stats.json among `run_dirs`; warns when another run's data differ (data_identity)."""
    first, first_dir, differs = None, None, []
    for d in run_dirs:
        stats = read_data_stats(d)
        if stats is None:
            continue
        if first is None:
            first, first_dir = stats, d
        elif data_identity(stats) != data_identity(first):
            differs.append(str(d))
    if differs:
        warnings.warn(
            f"data_stats.json differs from {first_dir} in {len(differs)} run(s) (e.g. {differs[0]}); using {first_dir}",
            stacklevel=2,
        )
    return first
