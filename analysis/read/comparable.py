"""May the selected runs be ranked together? Checked before anything is written (AnalysisError, one line).

Refused, each with the --where options (or the folder) that choose runs that can be compared:
- runs of different data (runs.data_identity of their data_stats.json: split sizes and seed, and the
  images themselves through their class proportions and channel statistics): their accuracies are
  measured on different images, and the noise rule needs the one validation size n of the runs it
  compares. A run without data_stats.json (it stopped before loading its data) is not checked;
- a metric defined differently among the runs: under mixup the training loss and accuracy are
  lambda-weighted over two labels (docs/runs.md, "What a run does"), so `train_loss` and `train_acc` of runs
  with and without mixup are different quantities (validation and test metrics are the same for all);
- a metric with no finite value in any run (e.g. `test_acc` where no run evaluated the test split).

Copies of one run (the same setting and seed in two folders, which only keys that never change a run tell
apart: experiment_name, logger.*, paths; hw_hparams/roles.py) compute the same thing: one sample, not two
seeds. `distinct` counts each once, from its most complete copy, and says so in one warning line.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from analysis.read.labels import hashable, is_missing
from analysis.read.runs import AnalysisError, data_identity, read_data_stats
from analysis.read.sweep import Selection, is_setting, kept, sort_key, value_text

#: Keys tried first when naming the --where that chooses a group of runs (then every other key, sorted).
PREFERRED = ("data.val_size", "data.split_seed", "data.root", "augmentation.mixup_alpha", "experiment_name")
MIXUP = "augmentation.mixup_alpha"
#: Metrics that mean another thing under mixup.
MIXUP_METRICS = ("train_loss", "train_acc")


def check(sel: Selection) -> dict | None:
    """Raise AnalysisError when `sel`'s runs cannot be ranked together; else return their data_stats.json
    (the first run's that has one; None when none has)."""
    stats = [read_data_stats(d) for d in sel.runs["run_dir"]]
    same_data(sel, stats)
    same_definition(sel)
    some_value(sel)
    return next((s for s in stats if s is not None), None)


def same_data(sel: Selection, stats: list[dict | None]) -> None:
    ids = [data_identity(s) for s in stats]
    kinds = list(dict.fromkeys(i for i in ids if i is not None))
    if len(kinds) < 2:
        return
    label = np.array([kinds.index(i) if i is not None else -1 for i in ids])
    facts = [data_facts(stats[int(np.flatnonzero(label == k)[0])]) for k in range(len(kinds))]
    differ = []
    for words in facts[0]:
        values = sorted({f[words] for f in facts}, key=sort_key)
        if len(values) > 1:
            differ.append(f"{words}: {', '.join(map(value_text, values))}")
    if len({tuple(f.values()) for f in facts}) < len(kinds):  # data sets that only their images tell apart
        differ.append("the images: channel statistics or class proportions")
    what = "; ".join(differ)
    choices = "; ".join(choose(sel, label == k, (label >= 0) & (label != k)) for k in range(len(kinds)))
    raise AnalysisError(
        f"these runs were trained on {len(kinds)} different data sets, which cannot be ranked together ({what}); "
        f"choose one: {choices}"
    )


def data_facts(stats: dict) -> dict[str, Any]:
    """The facts of a data_stats.json that a user can tell apart, in words (named when runs differ in them)."""
    sizes = stats.get("sizes") if isinstance(stats.get("sizes"), dict) else {}
    train, val = sizes.get("train"), sizes.get("val")
    return {
        "validation images": val,
        "images in the training file": train + val if isinstance(train, int) and isinstance(val, int) else None,
        "test images": sizes.get("test"),
        "split seed": stats.get("split_seed"),
    }


def same_definition(sel: Selection) -> None:
    cfg = sel.config
    if sel.metric not in MIXUP_METRICS or MIXUP not in cfg.columns:
        return
    mixup = ~cfg[MIXUP].map(is_missing).to_numpy(dtype=bool)
    if mixup.all() or not mixup.any():
        return
    raise AnalysisError(
        f"--metric {sel.metric} is lambda-weighted over two labels under mixup, plain without it, and these runs "
        f"hold both ({mixup.sum()} with mixup, {(~mixup).sum()} without); choose: {choose(sel, ~mixup, mixup)}; "
        f"{choose(sel, mixup, ~mixup)}; or rank by --metric {sel.metric.replace('train', 'val')}"
    )


def some_value(sel: Selection) -> None:
    values = pd.to_numeric(sel.runs[sel.metric], errors="coerce").to_numpy(dtype=float)
    if np.isfinite(values).any():
        return
    if sel.metric.startswith("test_"):
        why = "the test split is evaluated only by runs trained with eval_test=true"
        then = "; rank by another metric, e.g. --metric val_acc"
    else:
        why, then = ", ".join(f"{n} {s}" for s, n in sel.runs["status"].astype(str).value_counts().items()), ""
    raise AnalysisError(f"--metric {sel.metric}: none of these {len(values)} runs has a finite value ({why}){then}")


def choose(sel: Selection, group: np.ndarray, others: np.ndarray) -> str:
    """The --where options that keep runs of `group` and none of `others` (the values of the group's first
    run; the fewest keys found, PREFERRED first), with how many runs they keep:
    '--where data.val_size=60 (2 runs)'. Without such options: the folder that holds the group's runs."""
    cfg, first = sel.config, int(np.flatnonzero(group)[0])
    keys = [k for k in dict.fromkeys([*PREFERRED, *sorted(cfg.columns)]) if k in cfg.columns]
    items: dict[str, np.ndarray] = {}  # 'key=value' -> the runs it keeps
    for key in keys:
        hit = _all(items.values(), len(cfg))
        if not (hit & others).any():
            break
        text = value_text(cfg.at[first, key])
        h = kept(cfg, key, text)
        if h[first] and (hit & h & others).sum() < (hit & others).sum():
            items[f"{key}={text}"] = h
    if (_all(items.values(), len(cfg)) & others).any():  # the same config, other data: only folders tell them apart
        dirs = [os.path.abspath(d) for d in sel.runs["run_dir"]]
        folder = os.path.commonpath([d for d, g in zip(dirs, group) if g])
        if any(d.startswith(folder + os.sep) for d, o in zip(dirs, others) if o):
            folder = os.path.dirname(dirs[first])
        return f"point at {folder_text(folder)}"
    for item in list(items):  # drop an option the others make redundant
        if not (_all([h for i, h in items.items() if i != item], len(cfg)) & others).any():
            del items[item]
    n, size = int((_all(items.values(), len(cfg)) & group).sum()), int(group.sum())
    count = f"{n} run" if size == 1 else f"{n} runs" if n == size else f"{n} of {size} runs"
    return " ".join(f"--where {shlex.quote(i)}" for i in items) + f" ({count})"


def _all(masks, n: int) -> np.ndarray:
    """The rows that every one of `masks` keeps (all n rows without masks)."""
    return np.logical_and.reduce([np.ones(n, dtype=bool), *masks])


def distinct(sel: Selection) -> Selection:
    """`sel` with each run counted once: of runs with equal values of every key that changes what a run
    computes (sweep.is_setting; the seed among them) and of every --by key (`--by trainer.compile` compares
    the same run compiled and eager), the most complete copy is kept (completed, then the
    most epochs, then one that evaluated the test split, then the first folder in sorted order). One warning
    line names the folders of the copies left out and of those kept. Run after `check`: copies on other
    data were refused there."""
    cfg, runs = sel.config, sel.runs
    keys = [k for k in cfg.columns if is_setting(k) or k in sel.by]  # copies in two groups are never pooled
    identity = [tuple(hashable(v) for v in row) for row in cfg[keys].itertuples(index=False)]
    test = pd.to_numeric(runs["test_acc"], errors="coerce").notna()
    done = pd.to_numeric(runs["epochs_completed"], errors="coerce").fillna(0)
    order = sorted(
        range(len(runs)),
        key=lambda i: (runs.at[i, "status"] != "completed", -done[i], not test[i], str(runs.at[i, "run_dir"])),
    )
    first: dict[tuple, int] = {}
    copies = Counter()  # (folder of the copy left out, folder of the copy kept) -> runs
    for i in order:
        j = first.setdefault(identity[i], i)
        if j != i:
            copies[(_folder(runs.at[i, "run_dir"]), _folder(runs.at[j, "run_dir"]))] += 1
    if not copies:
        return sel
    pairs = "; ".join(
        f"{n} run{'s' if n > 1 else ''} in {a} left out for {'their copies' if n > 1 else 'its copy'} in {b}"
        for (a, b), n in copies.items()
    )
    warnings.warn(
        "the same run trained twice counts once (equal in every key that changes a run, seed included; "
        f"the most complete copy kept): {pairs}",
        stacklevel=2,
    )
    keep = np.zeros(len(runs), dtype=bool)
    keep[list(first.values())] = True
    runs = runs[keep].reset_index(drop=True)
    hist = sel.hist[sel.hist["run_dir"].isin(set(runs["run_dir"]))].reset_index(drop=True)
    return dataclasses.replace(sel, runs=runs, hist=hist, config=cfg[keep].reset_index(drop=True))


def _folder(run_dir: str) -> str:
    return folder_text(os.path.dirname(os.path.abspath(run_dir)))


def folder_text(folder: str) -> str:
    """A folder as a user names it: relative to the working directory, absolute when outside it."""
    shown = os.path.relpath(folder)
    return folder if shown.startswith("..") else shown
