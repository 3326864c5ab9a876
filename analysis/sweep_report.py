"""`python -m analysis DIR... --out OUT [--by K,...] [--metric M] [--pivot R,C] [--where K=V ...]`.

Every option is checked against the runs found before anything is written (AnalysisError, one
line), and so is whether the runs can be ranked together (comparable.py: one data set, one
definition of the metric, a finite value somewhere); copies of one run count once (comparable.distinct).
Then the generic document
(report.generic_document) of the selected runs, with the sweep's tables (grid.py: ranking, --pivot
grid, each also as tables/<file>.csv) and figures (sweep_figures.py) added to it; runs.csv has one
column per config key that varies (dotted names; `trial` for a search's runs). A section with more
than MAX_COLORED settings gets no curves figure of its own: curves_by draws them legibly instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from analysis import grid, sweep_figures
from analysis.read import comparable
from analysis.read.runs import collect
from analysis.read.sweep import select
from analysis.render.document import Figure
from analysis.render.tables import safe_name
from analysis.report import generic_document, write_csvs, write_document


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
    """Collect, select (sweep.select), then write the CSVs, tables and figures; returns the written
    files by kind ({'csv': [...], 'tables': [...], 'figures': [...]})."""
    configs: list[dict] = []
    runs, hist = collect(paths, configs=configs)
    sel = select(runs, hist, configs, by=by, metric=metric, pivot=pivot, where=where)
    stats = comparable.check(sel)
    sel = comparable.distinct(sel)
    runs = sel.runs.drop(columns=["group"])
    doc = generic_document(runs, sel.hist, stats)
    settings = runs.groupby("section")["setting"].nunique()
    crowded = {safe_name(s) for s, n in settings.items() if n > sweep_figures.MAX_COLORED}
    doc.blocks = [b for b in doc.blocks if not (isinstance(b, Figure) and b.stem in crowded)]
    sizes = (stats or {}).get("sizes")
    blocks, frames = grid.tables(sel, sizes)
    doc.blocks += blocks + sweep_figures.figures(sel, sizes)
    written = {"csv": write_csvs(runs, sel.hist, out_dir), **write_document(doc, out_dir, figures=figures, demo=demo)}
    written["tables"] += grid.write_csvs(frames, Path(out_dir))
    return written
