"""Any sweep by the config keys that were swept: which keys vary, and --where / --by / --metric / --pivot.

A run's keys are its flattened config (dotted names, as in its .hydra/config.yaml or summary.json).
A key varies when the runs hold more than one value of it (a missing key counts as a value). Keys
that never change what a run computes (hw_hparams/config/roles.py's `run_invariant`, the keys that never name
a run folder: where the data lies, the device, trackers, the sweep's name, the objective a job returns
to a search) never count. Seeds are pooled: `seed` is never a default grouping key, so a setting's runs
over seeds give mean ± std (n).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.read.labels import fmt_num, hashable, is_missing
from analysis.read.runs import AnalysisError
from hw_hparams.config.roles import run_invariant  # standard library only: no training code
from hw_hparams.config.suggest import did_you_mean  # dependency-free: the one "did you mean" rule of every command

#: --metric choices: runs.csv's final-epoch columns, and history columns read at the last epoch.
RUN_METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "best_val_acc", "test_acc", "test_loss")
LAST_ROW_METRICS = ("lr", "epoch_time_s")
METRICS = RUN_METRICS + LAST_ROW_METRICS
SEED = "seed"
TRIALS_CSV = "trials.csv"  # written by hydra/sweeper=search beside the run folders: trial number per folder


@dataclass
class Selection:
    """The runs analysed (after --where), the keys to group them by, and the metric.

    `runs` has one column per config key in `varying`, `by` and `pivot` (dotted names), a `group`
    column naming each run's group in words, and `trial` when a search's trials.csv names the run;
    `config` has every config key of the same runs (config_frame), row by row.
    """

    runs: pd.DataFrame
    hist: pd.DataFrame
    varying: list[str]
    by: list[str]
    metric: str
    pivot: tuple[str, str] | None
    config: pd.DataFrame


def is_setting(key: str) -> bool:
    """Whether `key` changes what a run computes (a key no longer in the schema does)."""
    return not run_invariant(key)


def _scalar(v: Any) -> Any:
    return str(v) if isinstance(v, (list, tuple, dict)) else v


def config_frame(configs: Sequence[dict]) -> pd.DataFrame:
    """One row per run, one column per dotted config key (object dtype; lists as text)."""
    frame = pd.DataFrame.from_records([{k: _scalar(v) for k, v in c.items()} for c in configs])
    return frame.astype(object) if len(frame.columns) else pd.DataFrame(index=range(len(configs)))


def varying_keys(cfg: pd.DataFrame) -> list[str]:
    """The setting keys with more than one value among the rows of `cfg`, sorted."""
    return sorted(k for k in cfg.columns if is_setting(k) and len(set(cfg[k].map(hashable))) > 1)


def parse_value(text: str) -> Any:
    """A --where value: an int, a float, true/false, null, else the text itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def matches(value: Any, wanted: Any) -> bool:
    """Config `value` equals the --where value `wanted` (numbers by value: 5e-4 == 0.0005)."""
    if wanted is None:
        return is_missing(value)
    if is_missing(value):
        return False
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float, np.number)):
        return math.isclose(float(value), float(wanted), rel_tol=1e-12, abs_tol=0.0)
    return str(value) == str(wanted)


def kept(cfg: pd.DataFrame, key: str, text: str) -> np.ndarray:
    """Which rows of `cfg` (config_frame) `--where key=text` keeps (bool per row)."""
    wanted = parse_value(text.strip())
    return cfg[key].map(lambda v: matches(v, wanted)).to_numpy(dtype=bool)


def value_text(v: Any) -> str:
    """A key's value in a label or a table cell: 0.0005 -> '5e-4', None -> 'null'."""
    if is_missing(v):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return fmt_num(v) if isinstance(v, (int, float, np.number)) else str(v)


def group_label(keys: Sequence[str], values: Iterable[Any], empty: str = "all runs") -> str:
    """'optim.lr=0.1, schedule.name=cosine': a group's values of `keys` (`empty` without keys)."""
    return ", ".join(f"{k}={value_text(v)}" for k, v in zip(keys, values)) or empty


def sort_key(v: Any) -> tuple:
    """Numbers before text, numbers by value; missing last."""
    if is_missing(v):
        return (2, 0.0, "")
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def split_keys(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",")]
    if not all(keys):
        raise AnalysisError(
            f"{option} {text!r}: give config keys separated by commas, e.g. optim.lr,optim.weight_decay"
        )
    return keys


def _unknown(option: str, key: str, known: Iterable[str], varying: Sequence[str]) -> AnalysisError:
    hint = did_you_mean(key, known)
    return AnalysisError(
        f"{option} {key}: not a config key of these runs{hint}; keys that vary: {', '.join(varying) or 'none'}"
    )


def trial_numbers(run_dirs: Sequence[str]) -> pd.Series:
    """Each run's trial number from a trials.csv beside it (a search's sweep folder), else NaN."""
    tables: dict[Path, dict[str, int]] = {}
    out = []
    for d in run_dirs:
        parent, name = Path(d).parent, Path(d).name
        if parent not in tables:
            tables[parent] = {}
            path = parent / TRIALS_CSV
            if path.is_file():
                with open(path, newline="", encoding="utf-8") as f:
                    for r in csv.DictReader(f):
                        if r.get("run_dir") and str(r.get("trial", "")).isdigit():
                            tables[parent].setdefault(r["run_dir"], int(r["trial"]))
        out.append(tables[parent].get(name, np.nan))
    return pd.Series(out, dtype="Float64").astype("Int64") if out else pd.Series([], dtype="Int64")


def select(
    runs: pd.DataFrame,
    hist: pd.DataFrame,
    configs: Sequence[dict],
    *,
    by: str | None = None,
    metric: str = "val_acc",
    pivot: str | None = None,
    where: Sequence[str] = (),
) -> Selection:
    """The Selection for the CLI's options (text as typed); AnalysisError (one line) for an unknown
    key or metric, a malformed option, or a --where that leaves no run."""
    if metric not in METRICS:
        raise AnalysisError(
            f"--metric {metric}: not a metric; one of {', '.join(METRICS)}{did_you_mean(metric, METRICS)}"
        )
    cfg = config_frame(configs)
    known = set(cfg.columns)
    mask = np.ones(len(runs), dtype=bool)
    for item in where:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise AnalysisError(f"--where {item!r}: write KEY=VALUE, e.g. --where optim.weight_decay=5e-4")
        key = key.strip()
        if key not in known:
            raise _unknown("--where", key, known, varying_keys(cfg))
        hit = kept(cfg, key, text)
        if not (mask & hit).any():
            values = sorted({hashable(v) for v in cfg[key][mask]}, key=sort_key)
            raise AnalysisError(f"--where {item}: no run matches; {key} takes {', '.join(map(value_text, values))}")
        mask &= hit
    runs = runs[mask].reset_index(drop=True)
    cfg = cfg[mask].reset_index(drop=True)
    hist = hist[hist["run_dir"].isin(set(runs["run_dir"]))].reset_index(drop=True)
    varying = varying_keys(cfg)
    keys = split_keys(by, "--by")
    keys = [k for k in varying if k != SEED] if keys is None else keys
    pair = split_keys(pivot, "--pivot")
    if pair is not None and (len(pair) != 2 or pair[0] == pair[1]):
        raise AnalysisError(f"--pivot {pivot}: give two different keys, ROW_KEY,COL_KEY")
    for option, ks in (("--by", keys), ("--pivot", pair or [])):
        for k in ks:
            if k not in known:
                raise _unknown(option, k, known, varying)
    if pair is not None:
        keys = list(dict.fromkeys([*pair, *keys]))
    for k in dict.fromkeys([*varying, *keys]):
        if k not in runs.columns:
            runs[k] = _whole(cfg[k].map(hashable))
    if metric in LAST_ROW_METRICS:
        last = hist.groupby("run_dir", sort=False)[metric].last() if len(hist) else pd.Series(dtype=float)
        runs[metric] = runs["run_dir"].map(last).to_numpy(dtype=float)
    runs["group"] = [group_label(keys, row) for row in runs[keys].itertuples(index=False)] if keys else "all runs"
    trials = trial_numbers(runs["run_dir"].tolist())
    if trials.notna().any():
        runs["trial"] = trials.to_numpy()
    return Selection(runs, hist, varying, keys, metric, tuple(pair) if pair else None, cfg)


def _whole(col: pd.Series) -> pd.Series:
    """Whole-number floats as ints (a YAML 128 stays 128, not 128.0 in runs.csv); others unchanged."""
    nums = [v for v in col if v is not None]
    if nums and all(isinstance(v, float) and v.is_integer() for v in nums):
        return col.map(lambda v: None if v is None else int(v))
    return col
