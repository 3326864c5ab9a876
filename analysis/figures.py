"""Figures (PNG + PDF): learning curves per section, lr schedules, Beta pdfs, class proportions.

Curves: loss in nats per example, accuracy in % (100 x fraction), x axis in epochs (from 1).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .labels import fmt_num  # noqa: E402

FORMATS = ("png", "pdf")
MIXUP_ALPHA = 0.2  # the assignment's mixup alpha, always drawn in beta_pdf


def save(fig, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save `fig` as stem.<fmt> for each format, close it, return the paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(p, dpi=150, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def colors(n: int) -> list:
    """n distinct colours (tab10, tab20, then viridis)."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0, 0.95, n)]


def curve_stats(hist: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Per (setting, epoch): mean/min/max/count over seeds of `cols` (inf treated as NaN)."""
    data = hist[["setting", "epoch", *cols]].copy()
    data[list(cols)] = data[list(cols)].replace([np.inf, -np.inf], np.nan)
    agg = data.groupby(["setting", "epoch"], sort=True).agg(["mean", "min", "max", "count"])
    agg.columns = [f"{c}_{s}" for c, s in agg.columns]
    return agg.reset_index()


def _legend_note(n: int, status: str) -> str:
    notes = ([f"n={n}"] if n > 1 else []) + ([status] if status not in ("", "completed") else [])
    return f" ({', '.join(notes)})" if notes else ""


def _learning_curve(stats: pd.DataFrame, settings: list[str], n_seeds: dict, statuses: dict,
                    kind: str, section: str):
    scale = 100.0 if kind == "acc" else 1.0
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    cols = colors(len(settings))
    finite: list[np.ndarray] = []
    for color, setting in zip(cols, settings):
        s = stats[stats["setting"] == setting]
        ep = s["epoch"].to_numpy(dtype=float)
        for split, style in (("train", "-"), ("val", "--")):
            c = f"{split}_{kind}"
            mean = s[f"{c}_mean"].to_numpy(dtype=float) * scale
            ax.plot(ep, mean, style, color=color, lw=1.4)
            finite.append(mean[np.isfinite(mean)])
            if n_seeds.get(setting, 1) > 1:
                ax.fill_between(ep, s[f"{c}_min"].to_numpy(dtype=float) * scale,
                                s[f"{c}_max"].to_numpy(dtype=float) * scale,
                                color=color, alpha=0.18, lw=0)
    vals = np.concatenate(finite) if finite else np.array([])
    if kind == "loss" and vals.size:  # keep a diverging run from flattening the other curves
        cap = 1.5 * float(np.percentile(vals, 95))
        if vals.max() > cap > 0:
            ax.set_ylim(0, cap)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)" if kind == "acc" else "cross-entropy loss")
    multi = any(v > 1 for v in n_seeds.values())
    what = "accuracy" if kind == "acc" else "loss"
    ax.set_title(f"{section}: training and validation {what}"
                 + ("\n(mean over seeds; band = min–max over seeds)" if multi else ""), fontsize=10)
    handles = [Line2D([], [], color=c, lw=2, label=s + _legend_note(n_seeds.get(s, 1),
                                                                  statuses.get(s, "")))
               for c, s in zip(cols, settings)]
    handles += [Line2D([], [], color="k", ls="-", label="training"),
                Line2D([], [], color="k", ls="--", label="validation")]
    ax.legend(handles=handles, fontsize=7 if len(handles) < 16 else 5,
              ncol=1 if len(handles) < 16 else 2, loc="best", framealpha=0.85)
    ax.grid(alpha=0.3)
    return fig


def plot_section(hist: pd.DataFrame, runs: pd.DataFrame, section: str, fig_dir: Path,
                 stem_name: str | None = None) -> list[Path]:
    """figures/<section>_loss and _acc (PNG + PDF) from one section's rows of the long history."""
    stem_name = stem_name or section
    if hist.empty:
        return []
    stats = curve_stats(hist, ["train_loss", "val_loss", "train_acc", "val_acc"])
    settings = list(dict.fromkeys(runs["setting"]))  # order of the runs table
    settings = [s for s in settings if s in set(stats["setting"])]
    n_seeds = runs.groupby("setting").size().to_dict()
    statuses = runs.groupby("setting")["status"].agg(
        lambda s: "/".join(sorted(set(s.fillna("unknown").astype(str))))).to_dict()
    paths = []
    for kind in ("loss", "acc"):
        fig = _learning_curve(stats, settings, n_seeds, statuses, kind, section)
        paths += save(fig, fig_dir / f"{stem_name}_{kind}")
    return paths


def plot_lr_schedules(hist: pd.DataFrame, runs: pd.DataFrame, fig_dir: Path) -> list[Path]:
    """figures/lr_schedule: logged lr vs epoch, one line per distinct schedule name.

    Each schedule is drawn from one representative run: the one with the most logged epochs.
    """
    if hist.empty:
        return []
    logged = hist.groupby("run_dir", sort=False)["lr"].count()
    cand = runs.assign(_n=runs["run_dir"].map(logged).fillna(0))
    cand = cand[cand["_n"] > 0]
    if cand.empty:
        return []
    cand = cand.assign(_sched=cand["schedule"].fillna("unknown").astype(str))
    reps = cand.sort_values("_n", ascending=False, kind="stable").drop_duplicates("_sched")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for color, (_, r) in zip(colors(len(reps)), reps.sort_values("_sched").iterrows()):
        h = hist[hist["run_dir"] == r["run_dir"]]
        ax.plot(h["epoch"], h["lr"], "o-" if len(h) <= 40 else "-", color=color, lw=1.6, ms=3,
                label=f"{r['_sched']} (lr {fmt_num(r['lr'])}, {int(r['_n'])} epochs)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate used in the epoch")
    ax.set_title("Learning-rate schedules (as logged)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, fig_dir / "lr_schedule")


def beta_pdf(x, a: float, b: float | None = None, use_scipy: bool = False) -> np.ndarray:
    """Density of Beta(a, b) at x (b defaults to a); 0 outside (0, 1).

    Default path: x^(a-1) (1-x)^(b-1) / B(a, b) with B from math.lgamma (no scipy needed);
    use_scipy=True uses scipy.stats.beta.pdf instead.
    """
    b = a if b is None else b
    x = np.asarray(x, dtype=float)
    if use_scipy:
        from scipy.stats import beta
        return np.asarray(beta.pdf(x, a, b), dtype=float)
    log_b = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    inside = (x > 0) & (x < 1)
    xi = np.where(inside, x, 0.5)
    with np.errstate(divide="ignore"):
        logp = (a - 1) * np.log(xi) + (b - 1) * np.log1p(-xi) - log_b
    return np.where(inside, np.exp(logp), 0.0)


def mixup_alphas(runs: pd.DataFrame | None) -> list[float]:
    """Sorted distinct positive mixup alphas of the runs, always including 0.2."""
    found = {MIXUP_ALPHA}
    if runs is not None and "mixup_alpha" in runs:
        vals = pd.to_numeric(runs["mixup_alpha"], errors="coerce").dropna()
        found |= {float(v) for v in vals.unique() if v > 0}
    return sorted(found)


def plot_beta_pdf(alphas: Iterable[float], fig_dir: Path) -> list[Path]:
    """figures/beta_pdf: the mixup weight density Beta(alpha, alpha) for each alpha."""
    x = np.linspace(0.0, 1.0, 2001)[1:-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    alphas = list(alphas)
    for color, a in zip(colors(len(alphas)), alphas):
        ax.plot(x, beta_pdf(x, a), color=color, lw=1.6, label=f"α = {fmt_num(a)}")
    ax.set_ylim(0, 4)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mixing weight λ")
    ax.set_ylabel("density")
    ax.set_title("Mixup: λ ~ Beta(α, α)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, fig_dir / "beta_pdf")


def plot_class_proportions(stats: dict, fig_dir: Path) -> list[Path]:
    """figures/class_proportions: bar chart of the class proportions (in %) from data_stats."""
    props = np.asarray(stats.get("class_proportions") or [], dtype=float)
    if props.size == 0:
        return []
    names = list(stats.get("class_names") or [str(i) for i in range(props.size)])
    names = (names + [str(i) for i in range(len(names), props.size)])[: props.size]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.16 * props.size), 4))
    ax.bar(np.arange(props.size), 100 * props, color="tab:blue", width=0.8)
    ax.axhline(100 / props.size, color="k", ls="--", lw=1,
               label=f"uniform ({fmt_num(100 / props.size)}%)")
    ax.set_xticks(np.arange(props.size))
    ax.set_xticklabels(names, rotation=90, fontsize=5)
    ax.set_xlim(-0.6, props.size - 0.4)
    ax.set_ylabel("share of images (%)")
    ax.set_title(f"Class proportions ({props.size} classes; min {100 * props.min():.3f}%, "
                 f"max {100 * props.max():.3f}%)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return save(fig, fig_dir / "class_proportions")
