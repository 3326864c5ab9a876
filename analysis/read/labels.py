"""Number formatting and human-readable setting labels (pure functions, no I/O)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Model assumed by the study; other models are named in setting labels.
DEFAULT_MODEL = "mobilenetv2"
#: The assignment's sections in its order; other sections follow, alphabetically.
SECTION_ORDER = ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup")
#: Section names in words (figure titles, headings).
SECTION_TITLES = {
    "lr_sweep": "Learning rate",
    "schedule_sweep": "Learning-rate schedule",
    "wd_sweep": "Weight decay",
    "mixup": "Mixup",
}
#: Decimals of every loss in tables and text (one precision for a whole column).
LOSS_DECIMALS = 4


def section_title(section: Any) -> str:
    """'lr_sweep' -> 'Learning rate'; other names as they are."""
    return SECTION_TITLES.get(str(section), str(section))


def section_rank(section: Any) -> tuple[int, str]:
    """Sort key putting the assignment's sections first, in its order."""
    name = "" if is_missing(section) else str(section)
    return (SECTION_ORDER.index(name) if name in SECTION_ORDER else len(SECTION_ORDER), name)


def is_missing(x: Any) -> bool:
    """True for None, NaN and pandas NA/NaT."""
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # list-likes are not missing values
        return False


def hashable(v: Any) -> Any:
    """A value as a grouping key: missing values are one value, None."""
    return None if is_missing(v) else v


def fmt_num(x: Any) -> str:
    """Compact float: 0.05 -> '0.05', 5e-4 -> '5e-4', 300.0 -> '300'; missing -> ''."""
    if is_missing(x):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    if abs(v) < 1e-2 or abs(v) >= 1e5:
        mant, exp = f"{v:.6e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}"
    return f"{v:.6g}"


def _truthy(x: Any, default: bool) -> bool:
    if is_missing(x):
        return default
    if isinstance(x, str):
        return x.strip().lower() in {"1", "true", "yes", "on"}
    return bool(x)


def augmentation_label(crop_flip: Any, mixup_alpha: Any) -> str:
    """'' for crop+flip (the default), 'no aug', 'mixup 0.2', or 'mixup 0.2, no crop/flip'."""
    cf = _truthy(crop_flip, default=True)
    mix = None if is_missing(mixup_alpha) or float(mixup_alpha) <= 0 else float(mixup_alpha)
    if mix is None:
        return "" if cf else "no aug"
    return f"mixup {fmt_num(mix)}" + ("" if cf else ", no crop/flip")


def hparam_word(col: str, value: Any) -> str:
    """Words for one hyperparameter value, e.g. ('lr', 0.05) -> 'lr 0.05', ('weight_decay', 0) ->
    'no wd', ('mixup_alpha', None) -> 'no mixup', ('crop_flip', False) -> 'no crop/flip'."""
    if col == "mixup_alpha":
        return "no mixup" if is_missing(value) or float(value) <= 0 else f"mixup α={fmt_num(value)}"
    if col == "crop_flip":
        return "crop+flip" if _truthy(value, default=True) else "no crop/flip"
    if is_missing(value):
        return f"{col.replace('_', ' ')} unset"
    if col == "weight_decay":
        return "no wd" if float(value) == 0 else f"wd {fmt_num(value)}"
    if col in ("schedule", "model"):
        return str(value)
    short = {"lr": "lr ", "epochs": "", "batch_size": "batch "}
    unit = {"epochs": " epoch" if float(value) == 1 else " epochs"}
    name = short.get(col, col.replace("_", " ") + " ")
    return f"{name}{fmt_num(value)}{unit.get(col, '')}"


def setting_label(row: Mapping[str, Any], extra: tuple[str, ...] = ()) -> str:
    """Words for a run's hyperparameters, e.g. 'lr 0.05, cosine, wd 5e-4, mixup 0.2'.

    `row` maps hyperparameter column names (lr, schedule, weight_decay, crop_flip,
    mixup_alpha, model, epochs, ...) to values; missing keys are skipped. `extra`
    names further columns to append (e.g. ('epochs',) when they vary in a section).
    """
    g = row.get if hasattr(row, "get") else (lambda k, d=None: row[k] if k in row else d)
    parts = [hparam_word(c, g(c, None)) for c in ("lr", "schedule", "weight_decay") if not is_missing(g(c, None))]
    aug = augmentation_label(g("crop_flip", None), g("mixup_alpha", None))
    if aug:
        parts.append(aug)
    model = g("model", None)
    if not is_missing(model) and str(model) != DEFAULT_MODEL:
        parts.append(str(model))
    parts += [re.sub(r" epochs?$", " ep", hparam_word(c, g(c, None))) for c in extra if not is_missing(g(c, None))]
    return ", ".join(parts) if parts else "default"


def differing_words(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> tuple[list[str], list[str]]:
    """(one label per row naming only the columns that differ between rows, words for the shared ones).

    [{'lr': 0.5, 'epochs': 15}, {'lr': 0.05, 'epochs': 15}] -> (['lr 0.5', 'lr 0.05'], ['15 epochs']).
    """
    varying = [c for c in cols if len({hashable(r.get(c)) for r in rows}) > 1]
    shared = [
        hparam_word(c, rows[0].get(c))
        for c in cols
        if c not in varying and rows and not (is_missing(rows[0].get(c)) and c != "mixup_alpha")
    ]
    labels = [", ".join(hparam_word(c, r.get(c)) for c in varying) or "all runs" for r in rows]
    return labels, shared


def words_list(items: Sequence[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'; [] -> ''."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def fmt_pct(frac: Any, digits: int = 2) -> str:
    """Fraction in [0,1] -> percentage string with `digits` decimals ('' if missing)."""
    if is_missing(frac):
        return ""
    return f"{100.0 * float(frac):.{digits}f}"


def fmt_loss(x: Any, decimals: int = LOSS_DECIMALS) -> str:
    """Loss with a fixed number of decimals: 0.98 -> '0.9800', 4.6 -> '4.6000' ('' if missing)."""
    return "" if is_missing(x) else f"{float(x):.{decimals}f}"  # inf -> 'inf', as str(inf)


def has_mixup(runs: pd.DataFrame) -> bool:
    """Whether any of `runs` trained under mixup (mixup_alpha > 0)."""
    return bool((pd.to_numeric(runs["mixup_alpha"], errors="coerce") > 0).any())
