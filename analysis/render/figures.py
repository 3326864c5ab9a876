"""Figures (PNG for Markdown, PDF for the paper), sized to read at one AAAI column (3.3 in).

Besides the learning curves (curves.py): the logged learning-rate schedules, the Beta(alpha, alpha)
density of mixup's weight (for the alphas the runs used), and the class proportions of the training
split. A demo's figures carry a "demo: generated data" mark, so a copied figure still says what it is.
"""

from __future__ import annotations

import functools
import logging
import math
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# The PDF backend subsets fonts with fontTools, which logs every table it prunes at INFO (~500 lines
# per report under a root logger at INFO, as the homework's).
logging.getLogger("fontTools").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.read.labels import differing_words, fmt_num, words_list  # noqa: E402
from analysis.render.document import Figure  # noqa: E402

FORMATS = ("png", "pdf")
BETA_YMAX = 4.0  # the Beta(0.2, 0.2) density is infinite at 0 and 1: the y axis is cut here
DEMO_MARK = "demo: generated data"
MARKER_MAX_EPOCHS = 20  # curves with at most this many epochs get a marker per epoch
#: Font sizes (pt) for figures printed at their own size in a 10 pt two-column paper.
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
}  # TrueType in PDFs: AAAI's checker refuses Type 3 fonts


def styled(draw):
    """Decorator: run a draw_* function under STYLE's font sizes."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(size: tuple[float, float], **kw):
    """plt.subplots at `size` inches with a constrained layout (call inside a @styled function)."""
    return plt.subplots(figsize=size, layout="constrained", **kw)


def text_width(text: str, fontsize: float) -> float:
    """Width in inches of one line of `text` in the figures' font at `fontsize` pt (the letters differ in width)."""
    return TextToPath().get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)[0] / 72


def fill(text: str, width_in: float, fontsize: float) -> str:
    """`text` broken at spaces (a longer word cut) into lines at most `width_in` inches wide at `fontsize` pt,
    each line after the first indented."""
    for width in range(len(text), 1, -1):
        lines = textwrap.wrap(text, width, subsequent_indent="  ")
        if all(text_width(line, fontsize) <= width_in for line in lines):
            return "\n".join(lines)
    return text


def shorten(text: str, width_in: float, fontsize: float) -> str:
    """`text`, or its longest start that fits `width_in` inches at `fontsize` pt, followed by '…'."""
    if text_width(text, fontsize) <= width_in:
        return text
    return next(
        (text[:n] + "…" for n in range(len(text) - 1, 0, -1) if text_width(text[:n] + "…", fontsize) <= width_in), "…"
    )


def mark_demo(fig) -> None:
    """Stamp DEMO_MARK in a strip added below the figure's content (it never covers a label)."""
    strip = 0.14 / fig.get_figheight()  # inches of the strip -> figure fraction
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, strip, 1, 1 - strip))
    fig.text(0.005, 0.005, DEMO_MARK, ha="left", va="bottom", fontsize=7, color="tab:red")


def save(fig, stem: Path, *, demo: bool = False) -> list[Path]:
    """Save `fig` as stem.<fmt> for each of FORMATS (marked when `demo`), close it, return the paths."""
    if demo:
        mark_demo(fig)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]
    with plt.rc_context(STYLE):
        for p in paths:
            fig.savefig(p, dpi=200)
    plt.close(fig)
    return paths


def clip_diverging(ax, values) -> None:
    """Cut the y axis at 1.5 x the 95th percentile of the finite `values` when a larger value (a diverging
    run) would flatten the other curves."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    cap = 1.5 * float(np.percentile(values, 95)) if values.size else 0.0
    if values.size and values.max() > cap > 0:
        ax.set_ylim(0, cap)


def colors(n: int) -> list:
    """n distinct colours (tab10, tab20, then viridis)."""
    if n <= 20:
        return [plt.get_cmap("tab10" if n <= 10 else "tab20")(i) for i in range(n)]
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0, 0.95, n)]


def _schedule_runs(hist: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One run per distinct schedule that logged an lr (its run with the most epochs), by schedule name."""
    logged = hist.groupby("run_dir", sort=False)["lr"].count() if len(hist) else pd.Series(dtype=float)
    cand = runs.assign(_n=runs["run_dir"].map(logged).fillna(0))
    cand = cand[cand["_n"] > 0].assign(_sched=lambda c: c["schedule"].fillna("unknown").astype(str))
    reps = cand.sort_values("_n", ascending=False, kind="stable").drop_duplicates("_sched")
    return reps.sort_values("_sched")


@styled
def draw_lr_schedules(hist: pd.DataFrame, runs: pd.DataFrame):
    """Logged lr per epoch, one line per distinct schedule (its run with the most epochs); None
    when no run logged an lr."""
    reps = _schedule_runs(hist, runs)
    if reps.empty:
        return None
    labels, _ = differing_words(
        [{"schedule": r["_sched"], "lr": r["lr"], "epochs": int(r["_n"])} for _, r in reps.iterrows()],
        ["schedule", "lr", "epochs"],
    )
    fig, ax = new_figure((3.3, 1.9))
    for color, label, (_, r) in zip(colors(len(reps)), labels, reps.iterrows()):
        h = hist[hist["run_dir"] == r["run_dir"]]
        marker = "o" if len(h) <= MARKER_MAX_EPOCHS else None
        ax.plot(h["epoch"], h["lr"], "-", marker=marker, ms=3, color=color, lw=1.4, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning-rate schedule: rate used in each epoch")
    ax.set_ylim(bottom=0)
    if len(reps) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return fig


def lr_schedule_figure(hist: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """figures/lr_schedule: the rates the runs logged (drawn from every run given)."""
    names = words_list([f"the {n}" for n in _schedule_runs(hist, runs)["_sched"]])
    caption = f"Learning rate used in each epoch by {names} schedule, as logged by the runs."
    return Figure("lr_schedule", (caption,), lambda: draw_lr_schedules(hist, runs))


def beta_pdf(x, a: float, b: float | None = None) -> np.ndarray:
    """Density of Beta(a, b) at x (b defaults to a); 0 outside (0, 1): x^(a-1) (1-x)^(b-1) / B(a, b)
    with B from math.lgamma (no scipy needed)."""
    b = a if b is None else b
    x = np.asarray(x, dtype=float)
    log_b = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    inside = (x > 0) & (x < 1)
    xi = np.where(inside, x, 0.5)
    with np.errstate(divide="ignore"):
        logp = (a - 1) * np.log(xi) + (b - 1) * np.log1p(-xi) - log_b
    return np.where(inside, np.exp(logp), 0.0)


def mixup_alphas(runs: pd.DataFrame | None, always: Iterable[float] = ()) -> list[float]:
    """Sorted distinct positive mixup alphas of the runs (and of `always`): [] when no run used mixup."""
    found = set(always)
    if runs is not None and "mixup_alpha" in runs:
        vals = pd.to_numeric(runs["mixup_alpha"], errors="coerce").dropna()
        found |= {float(v) for v in vals.unique() if v > 0}
    return sorted(found)


@styled
def draw_beta_pdf(alphas: Iterable[float]):
    """Density of mixup's weight λ ~ Beta(α, α) per α; the y axis is cut at BETA_YMAX."""
    x = np.linspace(0.0, 1.0, 2001)[1:-1]
    alphas = list(alphas)
    fig, ax = new_figure((3.3, 1.9))
    for color, a in zip(colors(len(alphas)), alphas):
        ax.plot(x, beta_pdf(x, a), color=color, lw=1.4, label=f"α = {fmt_num(a)}")
    one = fmt_num(alphas[0]) if len(alphas) == 1 else "α"
    ax.set(ylim=(0, BETA_YMAX), xlim=(0, 1), xlabel="mixing weight λ", ylabel="density")
    ax.set_title(f"Mixup: density of λ ~ Beta({one}, {one})")
    cut = f"axis cut at {fmt_num(BETA_YMAX)}: the density → ∞ at λ = 0 and 1"
    ax.text(0.5, 0.96, cut, transform=ax.transAxes, ha="center", va="top", fontsize=6.5)
    if len(alphas) > 1:
        ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    return fig


def beta_figure(runs: pd.DataFrame | None) -> Figure:
    """figures/beta_pdf: the density for every alpha of mixup_alphas(runs); only for runs with mixup
    (labels.has_mixup), as a figure of a sweep without mixup would show a distribution nothing drew from."""
    alphas = mixup_alphas(runs)
    one = fmt_num(alphas[0]) if len(alphas) == 1 else "α"
    which = "" if len(alphas) == 1 else f" for α = {words_list([fmt_num(a) for a in alphas])}"
    caption = (
        f"Density of the mixing weight λ ∼ Beta({one}, {one}){which}. It is infinite at λ = 0 and λ = 1: "
        f"the peaks are clipped where the y axis is cut, at {fmt_num(BETA_YMAX)}."
    )
    return Figure("beta_pdf", (caption,), lambda: draw_beta_pdf(alphas))


@styled
def draw_class_proportions(stats: dict):
    """Compact: the training split's class shares (%) sorted, the uniform share, min and max named."""
    props = np.asarray(stats.get("class_proportions") or [], dtype=float)
    if props.size == 0:
        return None
    names = list(stats.get("class_names") or [])
    names = (names + [str(i) for i in range(len(names), props.size)])[: props.size]
    order = np.argsort(props, kind="stable")
    fig, ax = new_figure((3.3, 1.5))
    ax.bar(np.arange(props.size), 100 * props[order], width=1.0, color="tab:blue", lw=0)
    ax.axhline(100 / props.size, color="k", ls="--", lw=0.8, label="uniform share")
    lo, hi = order[0], order[-1]
    extremes = f"min {100 * props[lo]:.2f}% ({names[lo]}), max {100 * props[hi]:.2f}% ({names[hi]})"
    ax.text(0.01, 0.97, extremes, transform=ax.transAxes, va="top", fontsize=6.5)
    ax.set(xlim=(-0.5, props.size - 0.5), ylim=(0, 100 * props.max() * 1.3), xticks=[], ylabel="share (%)")
    ax.set(xlabel=f"{props.size} classes, sorted by share", title="Class proportions of the training split")
    ax.legend(loc="lower right", framealpha=0.9)
    return fig


def class_figure(stats: dict | None) -> Figure:
    """figures/class_proportions: the training split's class shares (nothing without them)."""
    n = len((stats or {}).get("class_proportions") or [])
    caption = f"Share of each class in the training split ({n} classes, sorted by share); dashed: the uniform share."
    return Figure("class_proportions", (caption,), lambda: draw_class_proportions(stats or {}))
