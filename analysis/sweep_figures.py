"""Figures of a sweep by the keys it swept, legible with many runs (PNG + PDF, figures.py's style).

- curves_by: validation loss and accuracy per epoch (epochs from 1; loss in nats, accuracy in %),
  one mean line per group with a ±1 sample-std band over its runs; beyond MAX_COLORED groups the
  TOP_N first of the ranking are coloured and named, the rest drawn thin and grey (the title says
  how many of those tie with the last coloured one). Legend lines and titles are broken at their
  measured width (figures.fill), so none runs past the column.
- grid_<metric>: the --pivot grid as a heatmap, each cell's mean ± std (n) written in it; one panel
  per combination of the other --by keys (at most MAX_PANELS; the title says when some are left
  out). A search's pivot (numeric keys whose grid would be mostly empty) is a scatter of its
  settings instead, coloured by the metric.
- parallel_<metric>: with 3+ --by keys, one line per group across an axis per key (a grid's few
  values evenly spaced in order; a search's many numbers to scale, log-spaced when positive and
  spanning 10x or more) and a last axis for the metric, coloured by the metric; axes named by short
  keys, a value too long for the space between two axes cut with an ellipsis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from .curves import curve_stats
from .document import Figure
from .figures import MARKER_MAX_EPOCHS, clip_diverging, colors, fill, new_figure, save, shorten, styled
from .grid import HEADERS, grid_slices, grid_values, group_values, kind, levels, other_keys, ranking
from .labels import hashable
from .noise import equal_as_shown
from .sweep import Selection, group_label, sort_key, value_text
from .tables import MISSING, spread_kind

MAX_COLORED = 8  # groups drawn each in its own colour; beyond this only the TOP_N best are
TOP_N = 5
MAX_PANELS = 6
TICK_BOX = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7}  # a parallel axis's value labels
PARALLEL_IN = (6.8, 2.6)  # a figure across both columns
MAX_LEVELS = 12  # a parallel-coordinates axis with at most this many values spaces them evenly
CURVES = (("val_loss", "validation loss", 1.0), ("val_acc", "validation accuracy (%)", 100.0))
#: What a group's line and band are, by tables.spread_kind of the groups' run counts (no band for one run).
#: Widths (in) a legend line and the legend's title may take in a figure one column (3.3 in) wide.
LABEL_IN, TITLE_IN = 2.7, 3.05
BAND = {"several": "line: mean over runs; band: ±1 std", "mixed": "line: mean over runs; band (2+ runs): ±1 std"}


def _scale(metric: str) -> float:
    """Accuracies drawn in %, losses as they are."""
    return 100.0 if kind(metric) == "pct" else 1.0


def _cmap(metric: str):
    return colormaps["viridis" if kind(metric) == "pct" else "viridis_r"]  # brighter is better


def _number(x: float, metric: str) -> str:
    """A drawn value (already scaled): 45.1 for an accuracy in %, 1.234 for a loss."""
    return f"{x:.1f}" if kind(metric) == "pct" else f"{x:.3f}"


@styled
def draw_curves_by(sel: Selection, order: pd.DataFrame):
    """Validation loss (top) and accuracy (bottom) per epoch, one line per group (see the module doc);
    `order`: the ranking (grid.ranking), best first."""
    hist = sel.hist.assign(group=sel.hist["run_dir"].map(sel.runs.set_index("run_dir")["group"]))
    stats = curve_stats(hist, ["val_loss", "val_acc"], "group", ("mean", "std"))
    drawn = set(stats["group"])
    labels = [group_label(sel.by, r[sel.by]) for _, r in order.iterrows()]  # the `group` of sel.runs
    mean = {g: m for g, m in zip(labels, order["mean"]) if g in drawn}
    groups = list(mean)
    many = len(groups) > MAX_COLORED
    shown = groups[:TOP_N] if many else groups
    palette = dict(zip(shown, colors(len(shown))))
    n_runs = sel.runs.groupby("group").size()
    by = ", ".join(short_key(k, sel.by) for k in sel.by) or "all runs"
    title = f"Validation curves by {by}"
    if many:  # the coloured ones are the best only where no grey one ties with them
        last = mean[shown[-1]]
        tie = sum(1 for g in groups[TOP_N:] if np.isfinite(last) and equal_as_shown(sel.metric, mean[g], last))
        title += (
            f" (in colour: the first {TOP_N} of {len(groups)} groups; {tie} others tie with the {TOP_N}th)"
            if tie
            else f" (the {TOP_N} best of {len(groups)} groups in colour)"
        )
    handles = [
        Line2D([], [], color=palette[g], lw=2, label=fill(f"{_short(g, sel)} (n={n_runs.get(g, 0)})", LABEL_IN, 6))
        for g in shown
    ]
    if many:
        handles.append(Line2D([], [], color="0.6", lw=1, label=f"{len(groups) - len(shown)} other groups"))
    title = fill(title, TITLE_IN, 8.5)
    lines = sum(h.get_label().count("\n") + 1 for h in handles) + title.count("\n") + 1
    fig, axes = new_figure((3.3, 3.6 + 0.12 * lines), nrows=2, sharex=True)
    for ax, (col, ylabel, scale) in zip(axes, CURVES):
        for g in reversed(groups):  # the best drawn last, on top
            s = stats[stats["group"] == g]
            ep = s["epoch"].to_numpy(float)
            mean, std = s[f"{col}_mean"].to_numpy(float) * scale, s[f"{col}_std"].to_numpy(float) * scale
            if g in palette:
                ax.plot(ep, mean, color=palette[g], lw=1.3, marker="o" if len(ep) <= MARKER_MAX_EPOCHS else None, ms=3)
                if np.isfinite(std).any():
                    ax.fill_between(ep, mean - std, mean + std, color=palette[g], alpha=0.18, lw=0)
            else:
                ax.plot(ep, mean, color="0.6", lw=0.6, alpha=0.6)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    clip_diverging(axes[0], stats["val_loss_mean"])
    axes[1].set_xlabel("epoch")
    # above the panels, as the curves of a section (curves.py): never over a curve, clear of the demo mark below
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=1,
        fontsize=6,
        frameon=False,
        title=title,
        title_fontsize=8.5,
        alignment="left",
    )
    band = BAND.get(spread_kind(n_runs))
    if band:
        axes[0].text(0.99, 0.97, band, transform=axes[0].transAxes, ha="right", va="top", fontsize=6)
    return fig


def short_key(key: str, keys: list[str]) -> str:
    """A key's short name among `keys`: its last part ('optim.lr' -> 'lr'), the part before a last
    'name' ('schedule.name' -> 'schedule'), the whole key when the short name would be ambiguous."""

    def short(k: str) -> str:
        parts = k.split(".")
        return parts[-2] if len(parts) > 1 and parts[-1] == "name" else parts[-1]

    return short(key) if [short(k) for k in keys].count(short(key)) == 1 else key


def key_lines(key: str, width_in: float, fontsize: float) -> str:
    """A dotted key broken after its dots into lines at most `width_in` inches wide (figures.fill)."""
    return fill(key.replace(".", ". "), width_in, fontsize).replace(". ", ".")


def _short(group: str, sel: Selection) -> str:
    """A group's words with short key names ('optim.lr=0.1, schedule.name=cosine' -> 'lr=0.1, schedule=cosine')."""
    for k in sorted(sel.by, key=len, reverse=True):
        group = group.replace(f"{k}=", f"{short_key(k, sel.by)}=")
    return group


def _cell_text(r, metric: str) -> str:
    if not r["n"]:
        return r["status"] if r["status"] != "completed" else MISSING
    text = _number(r["mean"] * _scale(metric), metric)
    if r["n"] > 1:
        text += f"\n±{_number(r['std'] * _scale(metric), metric)} ({int(r['n'])})"
    return text


@styled
def draw_grid(sel: Selection, values: pd.DataFrame):
    """The --pivot grid as heatmap panels (rows: pivot[0] values, columns: pivot[1] values)."""
    row, col = sel.pivot
    every = grid_slices(values, sel)
    slices = every[:MAX_PANELS]
    rows_v, cols_v = levels(values[row]), levels(values[col])
    scale, cmap = _scale(sel.metric), _cmap(sel.metric)
    finite = values["mean"].to_numpy(float) * scale
    finite = finite[np.isfinite(finite)]
    norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0, 1))
    w = min(6.8, max(3.3, 1.0 + 0.75 * len(cols_v) * len(slices)))
    panel = (w - 0.8) / len(slices)  # inches per panel: the width less the colorbar and the row labels
    others = other_keys(sel)
    h = 0.9 + 0.42 * len(rows_v) + 0.1 * len(others)  # a line of panel title per other key
    fig, axes = new_figure((w, h), ncols=len(slices), squeeze=False)
    for ax, (_, part) in zip(axes[0], slices):
        grid = np.full((len(rows_v), len(cols_v)), np.nan)
        for _, r in part.iterrows():
            i, j = rows_v.index(hashable(r[row])), cols_v.index(hashable(r[col]))
            grid[i, j] = r["mean"] * scale
            color = "white"
            if np.isfinite(grid[i, j]):
                rgb = cmap(norm(grid[i, j]))[:3]
                color = "black" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.5 else "white"
            ax.text(j, i, _cell_text(r, sel.metric), ha="center", va="center", fontsize=6, color=color)
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        ax.set_facecolor("0.55")
        ax.set_xticks(range(len(cols_v)), [value_text(v) for v in cols_v])
        ax.set_yticks(range(len(rows_v)), [value_text(v) for v in rows_v])
        if others:  # the other --by keys' values, one a line, a long one cut to the panel's width
            first = part.iloc[0]
            items = [f"{short_key(k, sel.by)}={value_text(first[k])}" for k in others]
            ax.set_title("\n".join(shorten(item, 0.85 * panel, 6) for item in items), fontsize=6)
    axes[0][0].set_ylabel(key_lines(row, h - 0.8, 8))  # the same rows in every panel; along the panel's height
    fig.supxlabel(col, fontsize=8)
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes[0].tolist(), label=HEADERS[sel.metric], shrink=0.9)
    spread = {"one": "one run per cell", "several": "mean ± std (n) over seeds", "mixed": "mean ± std (n) of 2+ runs"}
    title = f"{HEADERS[sel.metric]}: {spread[spread_kind(values['n'])]}"
    if len(every) > len(slices):
        title += f"; the first {len(slices)} of {len(every)} panels (all in tables/grid_{sel.metric})"
    fig.suptitle(fill(title, w - 0.2, 8.5), fontsize=8.5)
    return fig


def _numeric(vals) -> bool:
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in vals)


def is_sparse(values: pd.DataFrame, row: str, col: str) -> bool:
    """A search's pivot: numeric keys whose grid would be mostly empty (each trial its own row and column)."""
    r, c = set(values[row].map(hashable)), set(values[col].map(hashable))
    return len(r) * len(c) > 4 and len(values) < 0.5 * len(r) * len(c) and _numeric(r) and _numeric(c)


@styled
def draw_scatter(sel: Selection, values: pd.DataFrame):
    """The --pivot of a search: one point per setting at (column key, row key), coloured by the metric,
    its value written beside it; log axes for positive keys that span 10x or more."""
    row, col = sel.pivot
    values = values[values["n"] > 0]
    x, y = values[col].to_numpy(float), values[row].to_numpy(float)
    m = values["mean"].to_numpy(float) * _scale(sel.metric)
    fig, ax = new_figure((3.3, 2.8))
    points = ax.scatter(x, y, c=m, cmap=_cmap(sel.metric), s=28, edgecolors="k", linewidths=0.4, zorder=3)
    for xi, yi, mi in zip(x, y, m):
        ax.annotate(_number(mi, sel.metric), (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=5.5)
    for axis, scale_of, v in ((ax.xaxis, ax.set_xscale, x), (ax.yaxis, ax.set_yscale, y)):
        if v.size and v.min() > 0 and v.max() / v.min() >= 10:
            scale_of("log")
            axis.set_minor_formatter(NullFormatter())
    best = int(np.argmax(m) if kind(sel.metric) == "pct" else np.argmin(m)) if m.size else None
    if best is not None:
        ax.scatter(
            [x[best]], [y[best]], s=110, facecolors="none", edgecolors="tab:red", linewidths=1.2, zorder=4, label="best"
        )
        ax.legend(loc="best", fontsize=6)
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    ax.grid(alpha=0.3)
    fig.colorbar(points, ax=ax, label=HEADERS[sel.metric])
    ax.set_title(f"{HEADERS[sel.metric]} of {len(values)} settings (a search: no grid)")
    return fig


def _axis(values: pd.Series):
    """(positions in [0, 1], tick positions, tick labels) of one key's values: up to MAX_LEVELS
    distinct values (a grid's) evenly spaced in order; more numbers (a search's) on a linear axis,
    log-spaced when they are positive and span 10x or more."""
    vals = [hashable(v) for v in values]
    uniq = sorted(set(vals), key=sort_key)
    if len(uniq) > MAX_LEVELS and _numeric(vals):
        x = np.asarray(vals, dtype=float)
        log = x.min() > 0 and x.max() / x.min() >= 10
        t = np.log10(x) if log else x
        lo, hi = t.min(), t.max()
        ticks = np.arange(math.ceil(lo), math.floor(hi) + 1) if log else MaxNLocator(5).tick_values(lo, hi)
        ticks = [v for v in ticks if lo <= v <= hi] or [lo, hi]
        labels = [value_text(float(10.0**v) if log else float(v)) for v in ticks]
        return (t - lo) / (hi - lo), [(v - lo) / (hi - lo) for v in ticks], labels
    index = {u: i for i, u in enumerate(uniq)}
    n = max(len(uniq) - 1, 1)
    return np.array([index[v] / n for v in vals]), [i / n for i in range(len(uniq))], [value_text(u) for u in uniq]


@styled
def draw_parallel(sel: Selection, values: pd.DataFrame):
    """One line per group across the --by keys and the metric, coloured by the metric."""
    values = values[values["n"] > 0].reset_index(drop=True)
    metric = values["mean"].to_numpy(float) * _scale(sel.metric)
    axes_data = [_axis(values[k]) for k in sel.by]
    lo, hi = float(metric.min()), float(metric.max())
    span = hi - lo if hi > lo else 1.0
    mpos = (metric - lo) / span
    mticks = list(np.linspace(lo, hi, 5)) if hi > lo else [lo]
    axes_data.append((mpos, [(t - lo) / span for t in mticks], [_number(t, sel.metric) for t in mticks]))
    slot = (PARALLEL_IN[0] - 1.1) / (len(sel.by) + 0.5)  # inches between two axes: the width less colorbar, margins
    # short names, broken at dots, and values cut to fit: a long one never overlaps the next axis or squeezes the panel
    keys = [key_lines(short_key(k, sel.by), 0.95 * slot, 7) for k in sel.by]
    names = [*keys, HEADERS[sel.metric]]
    fig, ax = new_figure(PARALLEL_IN)
    cmap = _cmap(sel.metric)
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    xs = np.arange(len(names))
    order = np.argsort(metric if kind(sel.metric) == "pct" else -metric)  # the best drawn last, on top
    for i in order:
        ys = [a[0][i] for a in axes_data]
        ax.plot(xs, ys, color=cmap(norm(metric[i])), lw=1.0, alpha=0.85)
    for x, (_, ticks, labels) in zip(xs, axes_data):
        ax.axvline(x, color="k", lw=0.8)
        for t, lab in zip(ticks, labels):
            ax.text(x + 0.03, t, shorten(lab, 0.85 * slot, 6), fontsize=6, va="center", ha="left", bbox=TICK_BOX)
    ax.set_xticks(xs, names)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(names) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=HEADERS[sel.metric], pad=0.01)
    header = HEADERS[sel.metric]
    over = "one run each" if spread_kind(values["n"]) == "one" else "mean over seeds"
    ax.set_title(f"Parallel coordinates: {len(values)} settings ({over}), coloured by {header.lower()}")
    return fig


def figures(sel: Selection, sizes: dict | None) -> list[Figure]:
    """Figure blocks: curves_by; with --pivot grid_<metric>; with 3+ --by keys parallel_<metric>."""
    order = ranking(sel, sizes)
    by = ", ".join(sel.by) or "nothing"
    out = []
    if len(sel.hist):
        band = BAND.get(spread_kind(sel.runs.groupby("group").size()), "one run per group")
        caption = f"Validation loss and accuracy per epoch, grouped by {by}: {band.replace('std', 'sample std')}."
        out.append(Figure("curves_by", (caption,), lambda: draw_curves_by(sel, order)))
    if sel.pivot:
        cells = grid_values(sel)
        draw = draw_scatter if not other_keys(sel) and is_sparse(cells, *sel.pivot) else draw_grid
        caption = f"{HEADERS[sel.metric]} by {sel.pivot[0]} and {sel.pivot[1]}."
        out.append(Figure(f"grid_{sel.metric}", (caption,), lambda: draw(sel, cells)))
    if len(sel.by) >= 3:
        groups = group_values(sel.runs, sel.by, sel.metric)
        if (groups["n"] > 0).sum() >= 2:
            caption = f"Parallel coordinates of the settings by {by}."
            out.append(Figure(f"parallel_{sel.metric}", (caption,), lambda: draw_parallel(sel, groups)))
    return out


def write_figures(sel: Selection, out_dir: Path, sizes: dict | None, *, demo: bool = False) -> list[Path]:
    """figures/<stem>.{png,pdf} of each of `figures(sel, sizes)`."""
    written: list[Path] = []
    for f in figures(sel, sizes):
        written += save(f.draw(), Path(out_dir) / "figures" / f.stem, demo=demo)
    return written
