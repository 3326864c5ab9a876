"""Tables of a sweep by the keys it swept (analysis/read/sweep.py's Selection): a ranking and a pivot grid.

A group (one value of each --by key) is summarized over its completed runs with a finite metric:
mean, sample standard deviation (ddof=1) and their number n, seeds pooled. The ranking sorts the
groups by the metric (best first) and says for each whether it is behind the best beyond the noise,
by the report's rule (noise.py). The grid puts one key on the rows and another on the columns, one
grid per combination of the other --by keys. Accuracies are fractions in the CSVs and percent in
the Markdown and LaTeX tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import noise
from analysis.read.labels import hashable
from analysis.read.sweep import Selection, group_label, sort_key, value_text
from analysis.render.document import Table
from analysis.render.tables import METRICS as TABLE_METRICS
from analysis.render.tables import MISSING, cell, safe_name, spread_note

HEADERS = {m: h for m, h, _ in TABLE_METRICS} | {"lr": "Final lr", "epoch_time_s": "Epoch time (s)"}
NOTE = "Completed runs with a finite value only, seeds pooled; accuracies in %."  # then tables.spread_note


def kind(metric: str) -> str:
    return "pct" if metric.endswith("_acc") else "loss"


def group_values(runs: pd.DataFrame, keys: Sequence[str], metric: str) -> pd.DataFrame:
    """One row per group of `keys` (sorted by value): the keys, mean, std, n (completed runs with a
    finite value), runs (all runs of the group) and status ('completed', or e.g. '1 diverged')."""
    vals = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float)
    ok = (runs["status"].to_numpy() == "completed") & np.isfinite(vals)
    data = runs[list(keys)].copy() if keys else pd.DataFrame(index=runs.index)
    data["_v"] = np.where(ok, vals, np.nan)
    data["_bad"] = np.where(runs["status"].to_numpy() == "completed", "", runs["status"].astype(str).to_numpy())
    if not keys:
        data["_all"] = 0
    g = data.groupby(list(keys) or ["_all"], sort=False, dropna=False)
    out = g["_v"].agg(["mean", "std", "count", "size"]).reset_index()
    out = out.rename(columns={"count": "n", "size": "runs"})
    out["std"] = out["std"].where(out["n"] > 1)
    out["status"] = g["_bad"].agg(_status).to_numpy()
    if keys:
        order = sorted(range(len(out)), key=lambda i: tuple(sort_key(out.at[i, k]) for k in keys))
        out = out.iloc[order].reset_index(drop=True)
    return out.drop(columns=["_all"], errors="ignore")


def _status(bad: pd.Series) -> str:
    vc = bad[bad != ""].value_counts()
    return ", ".join(f"{n} {s}" for s, n in vc.items()) or "completed"


def _cell(r, metric: str) -> str:
    text = cell(r["mean"], r["std"], int(r["n"]), kind(metric))
    if r["status"] != "completed":
        text = r["status"] if text == MISSING else f"{text}, {r['status']}"
    return text


def ranking(sel: Selection, sizes: dict | None) -> pd.DataFrame:
    """The groups best first (noise.estimates' order) with, per group: mean, std, n, behind (best -
    group, signed so that positive is worse), se, basis, beyond_noise (bool, None when untested: the best
    itself, a group of one run without a binomial error, a standard error of 0)."""
    runs = sel.runs.assign(setting=sel.runs["group"])
    ests = noise.estimates(runs, sel.metric)
    values = group_values(sel.runs, sel.by, sel.metric)
    label = {group_label(sel.by, r[sel.by]): i for i, r in values.iterrows()}
    untested = noise.Gap(math.nan, math.nan, "")  # the best itself, or a group without a finite value
    rows = []
    for rank, e in enumerate(ests, 1):
        r = values.loc[label[e.setting]]
        g = noise.gap(ests[0], e, sel.metric, sizes) if rank > 1 and e.k and ests[0].k else untested
        row = {
            "rank": rank,
            **{k: r[k] for k in sel.by},
            "mean": r["mean"],
            "std": r["std"],
            "n": int(r["n"]),
            "runs": int(r["runs"]),
            "status": r["status"],
            "behind": g.diff,
            "se": g.se,
            "basis": g.basis,
            "beyond_noise": _beyond(g, rank > 1 and noise.tied(ests[0], e, sel.metric)),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _beyond(g: noise.Gap, tie: bool) -> bool | None:
    """The ranking's beyond_noise: True, False (within noise, or tied with the best), None (untested)."""
    if g.beyond_noise:
        return True
    return False if g.within_noise or tie else None


def _verdict(r, top: int, metric: str) -> str:
    """The 'vs best' cell of ranking row `r`; `top`: how many groups tie for best (1: no tie)."""
    if not r["n"]:
        return r["status"] if r["status"] != "completed" else "no finite value"
    if r["rank"] <= top:
        return "best" if top == 1 else "tied for best"
    g = noise.Gap(r["behind"], r["se"], r["basis"])
    if not math.isfinite(g.se):
        return "untested (a group of one run)"
    if not g.tested:
        return f"untested: no measurable noise (standard error 0, {g.basis})"
    z = g.z_text().replace("standard errors", "SE")
    return f"{'beyond' if g.beyond_noise else 'within'} noise ({z}, {g.basis})"


def ranking_cells(table: pd.DataFrame, sel: Selection) -> tuple[list[str], list[list[str]]]:
    header = ["Rank", *sel.by, HEADERS[sel.metric], "Behind best", "vs best"]
    best = table.iloc[0]
    top = sum(
        1
        for _, r in table.iterrows()
        if best["n"] and r["n"] and noise.equal_as_shown(sel.metric, r["mean"], best["mean"])
    )
    rows = []
    for _, r in table.iterrows():
        behind = "" if not math.isfinite(r["behind"]) else noise.diff_text(sel.metric, r["behind"])
        if behind and r["behind"] < 0:
            behind = "-" + behind
        rows.append(
            [
                str(r["rank"]),
                *[value_text(r[k]) for k in sel.by],
                _cell(r, sel.metric),
                behind,
                _verdict(r, top, sel.metric),
            ]
        )
    return header, rows


def other_keys(sel: Selection) -> list[str]:
    """The --by keys besides the two of --pivot: one grid per combination of their values."""
    return [k for k in sel.by if k not in sel.pivot]


def grid_values(sel: Selection) -> pd.DataFrame:
    """Tidy grid: the other --by keys, the row key, the column key, mean, std, n, runs, status."""
    return group_values(sel.runs, [*other_keys(sel), *sel.pivot], sel.metric)


def grid_slices(values: pd.DataFrame, sel: Selection) -> list[tuple[str, pd.DataFrame]]:
    """(words naming the other --by keys' values, '' without them; that slice of `values`) per grid."""
    others = other_keys(sel)
    groups = values.groupby(others, sort=False, dropna=False) if others else [((), values)]
    return [(group_label(others, key if isinstance(key, tuple) else (key,), ""), part) for key, part in groups]


def levels(values: pd.Series) -> list:
    """The distinct values of a grid's key, in order (missing as None, last)."""
    return sorted(set(values.map(hashable)), key=sort_key)


def grid_cells(values: pd.DataFrame, sel: Selection) -> list[tuple[str, list[str], list[list[str]]]]:
    """(slice words, header, rows) per combination of the other --by keys."""
    row, col = sel.pivot
    cols = levels(values[col])
    out = []
    for words, part in grid_slices(values, sel):
        header = [f"{row} \\ {col}", *[value_text(c) for c in cols]]
        rows = []
        for rv in levels(part[row]):
            line = [value_text(rv)]
            for cv in cols:
                hit = part[(part[row].map(hashable) == rv) & (part[col].map(hashable) == cv)]
                line.append(_cell(hit.iloc[0], sel.metric) if len(hit) else MISSING)
            rows.append(line)
        out.append((words, header, rows))
    return out


def tables(sel: Selection, sizes: dict | None) -> tuple[list[Table], dict[str, pd.DataFrame]]:
    """The ranking (file ranking_<metric>) and, with --pivot, the grids (file grid_<metric>) as Table
    blocks; and their values as tidy frames for tables/<file>.csv (accuracies as fractions)."""
    m = sel.metric
    table = ranking(sel, sizes)
    header, rows = ranking_cells(table, sel)
    note = (
        f"{spread_note(table['n'], 'group')} {NOTE} Behind best: the best group's lead over this one "
        f"({'points' if kind(m) == 'pct' else 'units'}); beyond noise when it exceeds {noise.Z:g} standard errors "
        "(spread over seeds when both groups have 2+ runs, else binomial on the split's images; a standard error of 0 "
        "tests nothing); tied: equal as shown."
    )
    title = f"Ranking by {HEADERS[m]}, grouped by {', '.join(sel.by) or 'nothing (all runs)'}"
    blocks = [Table(header, rows, (note,), f"ranking-{m}", n_text=0, title=title, file=f"ranking_{m}")]
    frames = {f"ranking_{m}": table}
    if sel.pivot:
        values = grid_values(sel)
        for i, (words, header, rows) in enumerate(grid_cells(values, sel)):
            title = f"{HEADERS[m]}: {sel.pivot[0]} (rows) x {sel.pivot[1]} (columns)" + (f", {words}" if words else "")
            note = f"{spread_note(values['n'], 'cell')} {NOTE}"
            blocks.append(Table(header, rows, (note,), f"grid-{m}-{i}", n_text=1, title=title, file=f"grid_{m}"))
        frames[f"grid_{m}"] = values
    return blocks, frames


def write_csvs(frames: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """tables/<name>.csv of each frame."""
    (Path(out_dir) / "tables").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in frames.items():
        paths.append(Path(out_dir) / "tables" / f"{safe_name(name)}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths
