"""Tables (document.Table blocks) of final metrics per setting, and of data statistics.

Accuracies are shown in percent (100 x fraction, 2 decimals), losses with 4 decimals; sections
follow the assignment's order (lr_sweep, schedule_sweep, wd_sweep, mixup, then any others).
Settings with several seeds show `mean ± std (n=k)`: sample std (ddof=1) over the k runs whose
value is finite; a setting of one run shows its value, and the caption says which (spread_note).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.read.labels import fmt_loss, fmt_num, fmt_pct, is_missing, section_rank
from analysis.read.runs import FINAL_COLS, GROUP_COLS
from analysis.render.document import Table

#: (runs column, header, kind) of the metric columns; kind 'pct' or 'loss'.
METRICS = [
    ("train_loss", "Train loss", "loss"),
    ("train_acc", "Train acc (%)", "pct"),
    ("val_loss", "Val loss", "loss"),
    ("val_acc", "Val acc (%)", "pct"),
    ("best_val_acc", "Best val acc (%)", "pct"),
    ("test_loss", "Test loss", "loss"),
    ("test_acc", "Test acc (%)", "pct"),
]
#: The report's compact columns: final training and validation metrics (its caption says "in %").
REPORT_METRICS = [(c, h.removesuffix(" (%)"), k) for c, h, k in METRICS if c in FINAL_COLS]
MISSING = "—"
NOTE = (
    "Metrics of the last completed epoch; accuracies in %, losses are cross-entropy. "
    "Best val acc is the maximum over epochs; the test set is evaluated once, at the end."
)  # metrics_table adds what its cells hold (spread_note)
SORT_COLS = ["section", "lr", "schedule", "weight_decay", "mixup_alpha", "epochs", "seed"]


def in_section_order(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` sorted by section (the assignment's order), then lr, schedule, wd, mixup, epochs, seed."""
    cols = [c for c in SORT_COLS if c in runs]
    return runs.sort_values(
        cols, kind="stable", na_position="last", key=lambda s: s.map(section_rank) if s.name == "section" else s
    )


def sections(runs: pd.DataFrame) -> list:
    """The section names of `runs` in the assignment's order."""
    return sorted(runs["section"].drop_duplicates(), key=section_rank)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (section, setting): n runs, statuses, and mean/std (ddof=1)/count per metric.

    Accuracies stay fractions here. Columns: section, setting, n_runs, status, epochs,
    epochs_done_min, epochs_done_max, <metric>_mean, <metric>_std, <metric>_n.
    """
    by = ["section", "setting"] + [c for c in GROUP_COLS if c in runs]
    g = in_section_order(runs).groupby(by, sort=False, dropna=False)
    out = g.size().rename("n_runs").reset_index()[["section", "setting", "n_runs"]]
    out["status"] = g["status"].agg(_status_words).to_numpy()
    out["epochs"] = g["epochs"].first().to_numpy()
    out["epochs_done_min"] = g["epochs_completed"].min().to_numpy()
    out["epochs_done_max"] = g["epochs_completed"].max().to_numpy()
    for col, _, _ in METRICS:
        vals = g[col]
        out[f"{col}_mean"] = vals.mean().to_numpy()
        out[f"{col}_std"] = vals.std(ddof=1).to_numpy()
        out[f"{col}_n"] = vals.count().to_numpy()
    return out


def _status_words(s: pd.Series) -> str:
    vc = s.fillna("unknown").astype(str).value_counts(sort=False)
    return str(vc.index[0]) if len(vc) == 1 else ", ".join(f"{n} {k}" for k, n in vc.items())


def cell(mean: Any, std: Any, n: int, kind: str, with_n: bool = True) -> str:
    """One metric cell: '45.10', or '45.10 ± 0.52 (n=3)' over several runs ('45.10 ± 0.52'
    without `with_n`); MISSING without a value."""
    if n == 0 or is_missing(mean):
        return MISSING
    fmt = fmt_pct if kind == "pct" else fmt_loss
    if n == 1:
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(std)}" + (f" (n={n})" if with_n else "")


def spread_kind(counts: Sequence[int]) -> str:
    """'one' (every cell of one run, or none), 'several' (every cell of 2+) or 'mixed', over the
    cells of `counts` runs that have a value (0: none)."""
    ns = [int(n) for n in counts if n > 0]
    return "one" if not ns or max(ns) == 1 else "several" if min(ns) > 1 else "mixed"


def spread_note(counts: Sequence[int], noun: str = "setting") -> str:
    """What cells of `counts` runs each hold (`cell`'s rule), in one sentence: a cell of one run
    shows its value and no standard deviation, so no caption may promise one."""
    spread = "mean ± sample standard deviation (ddof=1) over the n runs with a finite value"
    return {
        "one": f"One run per {noun}: no standard deviation.",
        "several": f"Per {noun}: {spread}.",
        "mixed": f"A {noun} of several runs: {spread}; of one run: its value.",
    }[spread_kind(counts)]


def _epochs_cell(r: pd.Series) -> str:
    lo, hi, planned = r["epochs_done_min"], r["epochs_done_max"], r["epochs"]
    done = fmt_num(lo) if lo == hi else f"{fmt_num(lo)}–{fmt_num(hi)}"
    if not is_missing(planned) and (lo != planned or hi != planned):
        return f"{done}/{fmt_num(planned)}"
    return done


def metrics_table(
    runs: pd.DataFrame,
    name: str,
    caption: tuple,
    *,
    metrics=METRICS,
    labels=None,
    with_section: bool = False,
    counts: str = "epochs",
    with_n: bool = True,
    title: str = "",
    file: str = "",
) -> Table:
    """The final-metrics table of `runs`, one row per setting (summarize), accuracies in %.

    Columns: Section (`with_section`), Setting (renamed by `labels`), Status when not every run
    completed, Epochs (`counts='epochs'`) or Runs when a setting has several (`counts='runs'`),
    then `metrics`, test columns only when a run has them; cells as `cell` (`with_n`: '(n=k)').
    """
    summ = summarize(runs)
    status = bool((runs["status"] != "completed").any())
    seeds = counts == "runs" and bool((summ["n_runs"] > 1).any())
    metrics = [m for m in metrics if not (m[0].startswith("test_") and runs[m[0]].isna().all())]
    header = ["Section"] * with_section + ["Setting"] + ["Status"] * status
    header += (["Epochs"] if counts == "epochs" else ["Runs"] * seeds) + [h for _, h, _ in metrics]
    rows = []
    for _, r in summ.iterrows():  # one iteration per setting, not per run
        row = [str(r["section"])] * with_section + [(labels or {}).get(r["setting"], str(r["setting"]))]
        row += [r["status"]] * status + ([_epochs_cell(r)] if counts == "epochs" else [str(r["n_runs"])] * seeds)
        row += [cell(r[f"{c}_mean"], r[f"{c}_std"], int(r[f"{c}_n"]), k, with_n) for c, _, k in metrics]
        rows.append(row)
    counts = summ[[f"{c}_n" for c, _, _ in metrics]].to_numpy().ravel()
    caption = (*caption, (" " if caption else "") + spread_note(counts))
    return Table(header, rows, caption, name, n_text=with_section + 1 + status, title=title, file=file)


_LATEX_SPECIAL = {
    **{c: "\\" + c for c in "&%$#_{}"},  # escaped by a backslash
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
    "×": r"$\times$",
    "α": r"$\alpha$",
    "λ": r"$\lambda$",
    "η": r"$\eta$",
    "→": r"$\to$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "∞": r"$\infty$",
    "≈": r"$\approx$",
    "·": r"$\cdot$",
    "∼": r"$\sim$",
    "−": "--",
    "’": "'",
    "“": "``",
    "”": "''",
    "\n": " ",
}
_LATEX_RE = re.compile("(" + "|".join(re.escape(k) for k in _LATEX_SPECIAL) + ")")


def ascii_only(text: str) -> str:
    """Accents dropped (é -> e), any other non-ASCII character -> '?' (pdflatex has no glyph)."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 128 else ("" if unicodedata.combining(c) else "?") for c in text)


def latex_escape(text: Any) -> str:
    """Plain text for LaTeX: specials (& % $ # _ { } ~ ^ \\ < > |) escaped, ± – — × α λ η → ≤ ≥ ∞
    mapped to LaTeX, any other non-ASCII character transliterated or replaced by '?'."""
    parts = _LATEX_RE.split(str(text))  # plain text at even positions, a special at odd ones
    return "".join(_LATEX_SPECIAL[p] if i % 2 else ascii_only(p) for i, p in enumerate(parts))


def safe_label(label: str) -> str:
    """A \\label/\\ref key: letters, digits and : . _ - only (names can come from folders)."""
    return re.sub(r"[^A-Za-z0-9:._-]", "-", label)


def safe_name(name: str) -> str:
    """A file-name-safe version of a section name."""
    s = re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(name)).strip("._") or "section"
    return f"section_{s}" if s in ("all", "data_stats") else s


def split_table(stats: dict) -> Table:
    """tables/data_stats: the images per split, the split seed and the number of classes."""
    rows = [[f"{k} images", str(v)] for k, v in (stats.get("sizes") or {}).items()]
    if stats.get("split_seed") is not None:
        rows.append(["split seed", str(stats["split_seed"])])
    if stats.get("class_names"):
        rows.append(["classes", str(len(stats["class_names"]))])
    return Table(
        ["Quantity", "Value"], rows, (), "data_splits", title="Data splits (images per split)", file="data_stats"
    )


def channel_table(stats: dict, caption: tuple, names: Sequence[str] = ("R", "G", "B"), title: str = "") -> Table:
    """tables/data_stats: per-channel mean and std of the training split ([0, 1] pixel units), the
    rows named by `names` when there are that many channels."""
    mean, std = list(stats.get("mean") or []), list(stats.get("std") or [])
    n = max(len(mean), len(std))
    names = list(names) if n == len(names) else [str(i) for i in range(n)]
    f = lambda v, i: MISSING if i >= len(v) or v[i] is None else f"{float(v[i]):.4f}"  # noqa: E731
    rows = [[names[i], f(mean, i), f(std, i)] for i in range(n)]
    return Table(["Channel", "Mean", "Std"], rows, caption, "channel_stats", title=title, file="data_stats")
