"""`python -m analysis DIR... --out OUT [--by K,...] [--metric M] [--pivot R,C] [--where K=V ...]`.

Every option is checked against the runs found before anything is written (AnalysisError, one
line). Then the usual report (report.write_collected) of the selected runs, whose runs.csv has one
column per config key that varies (dotted names; `trial` for a search's runs), plus the sweep's
tables (grid.py: ranking, --pivot grid) and figures (sweep_figures.py). A section with more than
MAX_COLORED settings gets no figure of its own: curves_by draws its curves legibly instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .grid import write_tables
from .report import load_data_stats, write_collected
from .runs import collect
from .sweep import select
from .sweep_figures import MAX_COLORED, write_figures


def write(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    by: str | None = None,
    metric: str = "val_acc",
    pivot: str | None = None,
    where: Sequence[str] = (),
    figures: bool = True,
    demo: bool = False,
) -> dict[str, list[Path]]:
    """Collect, select (sweep.select), then write the report and the sweep's tables and figures;
    returns the written files by kind ({'csv': [...], 'tables': [...], 'figures': [...]})."""
    configs: list[dict] = []
    runs, hist = collect(paths, configs=configs)
    sel = select(runs, hist, configs, by=by, metric=metric, pivot=pivot, where=where)
    stats = load_data_stats(sel.runs["run_dir"])
    crowded = sel.runs.groupby("section")["setting"].nunique().max() > MAX_COLORED  # curves_by draws them legibly
    written = write_collected(
        sel.runs.drop(columns=["group"]),
        sel.hist,
        out_dir,
        figures=figures,
        demo=demo,
        stats=stats,
        section_figures=not crowded,
    )
    sizes = (stats or {}).get("sizes")
    written["tables"] += write_tables(sel, Path(out_dir), sizes)
    if figures:
        written["figures"] += write_figures(sel, Path(out_dir), sizes, demo=demo)
    return written
