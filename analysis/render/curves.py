"""Learning curves: one figure per section, loss (top) and accuracy (bottom) per epoch.

Loss in nats per example, accuracy in % (100 x fraction), x axis in epochs (from 1). Colours are
settings (named only by what differs between them); the split is the line style and marker fill
(training solid and filled, validation dashed and hollow). One legend above the panels, so it never
hides a curve, shows both as drawn: curves of few epochs carry markers, so a one-epoch run is a
visible point, and a figure of such points has a legend of points, not of lines. Several seeds:
mean, band = min-max.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.read.labels import differing_words, has_mixup, section_title
from analysis.read.runs import GROUP_COLS
from analysis.render.document import Figure
from analysis.render.figures import MARKER_MAX_EPOCHS, clip_diverging, colors, new_figure, styled
from analysis.render.tables import safe_name

PANELS_SIZE = (3.3, 3.9)  # inches: one AAAI column, two panels, without the legend above them
KEY_ROW_IN = 0.15  # inches per row of that legend
LAMBDA_NOTE = "training (λ-weighted under mixup)"
MIXED = (
    "Under mixup the training loss and accuracy are measured on the mixed batches, and the training "
    "accuracy is λ-weighted"
)  # said in the caption and in the text of a section with mixup


def curve_stats(
    hist: pd.DataFrame, cols: Sequence[str], by: str = "setting", stats: Sequence[str] = ("mean", "min", "max", "count")
) -> pd.DataFrame:
    """Per (`by`, epoch): `stats` over runs (seeds) of `cols`, columns <col>_<stat> (inf treated as NaN)."""
    data = hist[[by, "epoch", *cols]].copy()
    data[list(cols)] = data[list(cols)].replace([np.inf, -np.inf], np.nan)
    agg = data.groupby([by, "epoch"], sort=True).agg(list(stats))
    agg.columns = [f"{c}_{s}" for c, s in agg.columns]
    return agg.reset_index()


def setting_words(runs: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """({setting: words naming only what differs between the settings of `runs`}, shared words)."""
    firsts = runs.drop_duplicates("setting")
    rows = firsts[[c for c in GROUP_COLS if c in firsts]].to_dict("records")
    labels, shared = differing_words(rows, [c for c in GROUP_COLS if c in firsts])
    return dict(zip(firsts["setting"], labels)), shared


def _note(n: int, status: str) -> str:
    notes = ([f"{n} seeds"] if n > 1 else []) + ([status] if status not in ("", "completed") else [])
    return f" ({', '.join(notes)})" if notes else ""


SPLITS = (("train", "-"), ("val", "--"))  # (split, line style); training markers filled, validation hollow


def _look(n_epochs: int) -> tuple[bool, str | None]:
    """(draw lines, marker) of a curve of `n_epochs` points: one point has no line to draw."""
    return n_epochs > 1, "o" if n_epochs <= MARKER_MAX_EPOCHS else None


def _handle(color, style: str, look: tuple[bool, str | None], label: str, fill=None) -> Line2D:
    """A legend entry drawn as the curves are: a line only where they have lines, a marker where they have."""
    lines, marker = look
    return Line2D(
        [],
        [],
        color=color,
        ls=style if lines else "none",
        lw=1.2,
        marker=marker,
        ms=3.5,
        mfc=fill or color,
        label=label,
    )


def _panel(ax, stats, settings, cols, n_seeds, kind: str) -> np.ndarray:
    scale = 100.0 if kind == "acc" else 1.0
    shown = []
    for color, setting in zip(cols, settings):
        s = stats[stats["setting"] == setting]
        ep = s["epoch"].to_numpy(dtype=float)
        lines, marker = _look(len(ep))
        for split, style in SPLITS:
            c = f"{split}_{kind}"
            mean = s[f"{c}_mean"].to_numpy(dtype=float) * scale
            ax.plot(
                ep,
                mean,
                ls=style if lines else "none",
                color=color,
                lw=1.2,
                marker=marker,
                ms=3.5,
                mfc=color if split == "train" else "white",
            )
            shown.append(mean[np.isfinite(mean)])
            if n_seeds.get(setting, 1) > 1:
                lo, hi = (s[f"{c}_{q}"].to_numpy(dtype=float) * scale for q in ("min", "max"))
                ax.fill_between(ep, lo, hi, color=color, alpha=0.18, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return np.concatenate(shown) if shown else np.array([])


@styled
def draw_section(hist: pd.DataFrame, runs: pd.DataFrame, title: str):
    """The figure of one section (or of any group of runs): loss and accuracy panels."""
    stats = curve_stats(hist, ["train_loss", "val_loss", "train_acc", "val_acc"])
    settings = [s for s in dict.fromkeys(runs["setting"]) if s in set(stats["setting"])]
    words, _ = setting_words(runs[runs["setting"].isin(settings)])
    n_seeds = runs.groupby("setting").size().to_dict()
    statuses = runs.groupby("setting")["status"].agg(lambda s: "/".join(sorted(set(s.fillna("unknown").astype(str)))))
    mixup = has_mixup(runs)
    cols = colors(len(settings))
    notes = {s: _note(n_seeds.get(s, 1), statuses.get(s, "")) for s in settings}
    look = _look(int(stats.groupby("setting")["epoch"].count().max()) if len(stats) else 0)
    named = len(settings) > 1 or any(notes.values())
    colours = [_handle(c, "-", look, words[s] + notes[s]) for c, s in zip(cols, settings)] if named else []
    train = _handle("k", "-", look, LAMBDA_NOTE if mixup else "training")
    handles, ncols = _key(colours, [train, _handle("k", "--", look, "validation", fill="white")])
    rows = -(-len(handles) // ncols)
    fig, (top, bottom) = new_figure((PANELS_SIZE[0], PANELS_SIZE[1] + KEY_ROW_IN * rows), nrows=2, sharex=True)
    loss = _panel(top, stats, settings, cols, n_seeds, "loss")
    _panel(bottom, stats, settings, cols, n_seeds, "acc")
    clip_diverging(top, loss)
    last = int(np.nanmax(stats["epoch"])) if len(stats) else 0
    if 0 < last <= 10:  # few epochs: a tick at each (and room around a single one)
        bottom.set_xticks(range(1, last + 1))
        bottom.set_xlim(0.5, last + 0.5)
    top.set(title=f"{title}: loss per epoch", ylabel="cross-entropy loss")
    bottom.set(title=f"{title}: accuracy per epoch", ylabel="accuracy (%)", xlabel="epoch")
    # above the panels: it never covers a curve
    fig.legend(handles=handles, loc="outside upper center", ncols=ncols, frameon=False, handlelength=2.2)
    return fig


def _key(colours: list, splits: list) -> tuple[list, int]:
    """The legend's entries and its number of columns: the settings' colours in rows, then the
    splits' styles in a row of their own; as many columns as one AAAI column's width holds."""
    width = 58  # characters at 7 pt across one AAAI column, each entry counting its handle as 6

    def fits(n: int) -> bool:
        rows = [colours[i : i + n] for i in range(0, len(colours), n)] + [splits]
        return sum(max((len(r[i].get_label()) + 6 for r in rows if i < len(r)), default=0) for i in range(n)) <= width

    ncols = next((n for n in range(max(len(colours), len(splits)), 1, -1) if fits(n)), 1)
    blank = Line2D([], [], ls="none", label="")
    grid = [colours[i : i + ncols] for i in range(0, len(colours), ncols)] + [splits]
    grid = [row + [blank] * (ncols - len(row)) for row in grid] if ncols > 1 else [[h] for row in grid for h in row]
    return [row[c] for c in range(ncols) for row in grid], ncols  # matplotlib fills a legend column by column


def curves_caption(runs: pd.DataFrame, title: str) -> tuple:
    """Caption of a section's loss/accuracy figure."""
    _, shared = setting_words(runs)
    text = f"{title}: loss (top) and accuracy (bottom) per epoch."
    if runs.groupby("setting").size().max() > 1:
        text += " Lines: mean over seeds; bands: minimum to maximum."
    if has_mixup(runs):
        text += (
            f" {MIXED}: a prediction scores λ when it matches the first label of the mixed pair and "
            "1 - λ when it matches the second."
        )
    if shared:
        text += f" Shared by all runs: {', '.join(shared)}."
    return (text,)


def section_figure(runs: pd.DataFrame, hist: pd.DataFrame, section: str) -> Figure:
    """figures/<section> (file-name safe) of one section's runs, titled in words; draws nothing without history."""
    title = section_title(section)
    caption = curves_caption(runs, title)
    return Figure(safe_name(section), caption, lambda: draw_section(hist, runs, title) if len(hist) else None)
