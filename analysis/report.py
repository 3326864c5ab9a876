"""Write everything for a report: CSVs, tables and figures, from run folders."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

from . import figures as F
from .curves import plot_section
from .labels import section_title
from .runs import collect
from .tables import safe_name, sections, write_data_stats, write_tables

_STAT_KEYS = ("sizes", "split_seed", "mean", "std", "class_proportions")


def load_data_stats(run_dirs: Iterable[str | os.PathLike]) -> dict | None:
    """The first data_stats.json among `run_dirs`; warns when another run's split differs."""
    first, first_dir, differs = None, None, []
    for d in run_dirs:
        p = Path(d) / "data_stats.json"
        if not p.is_file():
            continue
        try:
            stats = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            warnings.warn(f"unreadable {p}: {e}", stacklevel=2)
            continue
        if first is None:
            first, first_dir = stats, d
        elif any(stats.get(k) != first.get(k) for k in _STAT_KEYS):
            differs.append(str(d))
    if differs:
        warnings.warn(f"data_stats.json differs from {first_dir} in {len(differs)} run(s) "
                      f"(e.g. {differs[0]}); using {first_dir}", stacklevel=2)
    return first


def write_all(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
              figures: bool = True, demo: bool = False) -> dict[str, list[Path]]:
    """Collect the runs under `paths` and write runs.csv, history.csv, tables/ and figures/.

    Figures: figures/<section> (loss and accuracy panels), lr_schedule, beta_pdf,
    class_proportions, each PNG + PDF; `demo` marks each as drawn from generated data.
    Returns the written files by kind: {'csv': [...], 'tables': [...], 'figures': [...]}.
    Raises runs.AnalysisError for a missing path or when no run folder is found.
    """
    runs, hist = collect(paths)
    return write_collected(runs, hist, out_dir, figures=figures, demo=demo)


def write_collected(runs: pd.DataFrame, hist: pd.DataFrame, out_dir: str | os.PathLike, *,
                    figures: bool = True, demo: bool = False,
                    section_figures: bool = True, stats: dict | None = None) -> dict[str, list[Path]]:
    """Like write_all, from tables that `collect` already returned (`section_figures=False`:
    only the figures that are not per section; `stats`: the runs' data_stats.json, if already read)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"csv": [], "tables": [], "figures": []}
    for name, df in (("runs.csv", runs), ("history.csv", hist)):
        df.to_csv(out / name, index=False)
        written["csv"].append(out / name)
    written["tables"] += write_tables(runs, out)
    if stats is None:
        stats = load_data_stats(runs["run_dir"])
    if stats is not None:
        written["tables"] += write_data_stats(stats, out)
    if not figures:
        return written
    fig_dir = out / "figures"
    hist_by_section = dict(tuple(hist.groupby("section", sort=False))) if len(hist) and section_figures else {}
    for section in sections(runs) if section_figures else []:
        h = hist_by_section.get(section)
        if h is not None:
            written["figures"] += plot_section(h, runs[runs["section"] == section],
                                               section_title(section),
                                               fig_dir / safe_name(section), demo=demo)
    written["figures"] += F.plot_lr_schedules(hist, runs, fig_dir, demo=demo)
    written["figures"] += F.plot_beta_pdf(F.mixup_alphas(runs), fig_dir, demo=demo)
    if stats is not None:
        written["figures"] += F.plot_class_proportions(stats, fig_dir, demo=demo)
    return written
