"""The generic document of any run folders (`python -m analysis`), and every file a document
renders to: tables/<file>.{md,tex} from its Table blocks, figures/<stem>.{png,pdf} from its Figures."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from analysis.read.labels import has_mixup, section_title
from analysis.read.runs import collect, load_data_stats
from analysis.render.curves import section_figure
from analysis.render.document import Document, Heading, Table, md_table_file
from analysis.render.figures import beta_figure, class_figure, lr_schedule_figure, save
from analysis.render.latex import table_float
from analysis.render.tables import NOTE, channel_table, metrics_table, safe_name, sections, split_table


def generic_document(runs: pd.DataFrame, hist: pd.DataFrame, stats: dict | None) -> Document:
    """Per section (the assignment's order first) its final-metrics table and curves; every run in
    one table; the logged lr schedules, the Beta density of mixup's weight (when a run used mixup);
    the data statistics."""
    blocks: list = []
    for section in sections(runs):
        part = runs[runs["section"] == section]
        blocks += [
            Heading(section_title(section)),
            metrics_table(part, section, (NOTE,), title=f"Section {section}: final metrics per setting"),
            section_figure(part, hist[hist["section"] == section], section),
        ]
    blocks += [
        metrics_table(
            runs, "all", (NOTE,), with_section=True, title="All sections: final metrics per setting", file="all"
        ),
        lr_schedule_figure(hist, runs),
        *([beta_figure(runs)] if has_mixup(runs) else []),
    ]
    if stats is not None:
        blocks += [
            class_figure(stats),
            split_table(stats),
            channel_table(
                stats, ("Channel mean and standard deviation in [0, 1] pixel units.",), title="Channel statistics"
            ),
        ]
    return Document("Final metrics, curves and data statistics of the runs", "", blocks)


def write_document(
    doc: Document, out_dir: str | os.PathLike, *, figures: bool = True, demo: bool = False
) -> dict[str, list[Path]]:
    """tables/<file>.{md,tex} of every Table of `doc` (tables sharing a file follow each other) and,
    with `figures`, figures/<stem>.{png,pdf} of every Figure that has something to draw (`demo`:
    marked as drawn from generated data). Returns {'tables': [...], 'figures': [...]}."""
    out, numbers = Path(out_dir), doc.numbers()
    files: dict[str, list[Table]] = {}
    for t in doc.tables():
        files.setdefault(t.file or safe_name(t.name), []).append(t)
    written: dict[str, list[Path]] = {"tables": [], "figures": []}
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for stem, tables in files.items():
        for ext, text in (
            ("md", "\n".join(md_table_file(t, doc, numbers) for t in tables)),
            ("tex", "\n".join("\n".join(table_float(t, mark=False)) for t in tables)),
        ):
            path = out / "tables" / f"{stem}.{ext}"
            path.write_text(text, encoding="utf-8")
            written["tables"].append(path)
    for f in doc.figures() if figures else []:
        fig = f.draw() if f.draw else None
        if fig is not None:
            written["figures"] += save(fig, out / "figures" / f.stem, demo=demo)
    return written


def write_csvs(runs: pd.DataFrame, hist: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """runs.csv (one row per run) and history.csv (one row per run per epoch) in `out_dir`."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = [Path(out_dir) / "runs.csv", Path(out_dir) / "history.csv"]
    for path, df in zip(paths, (runs, hist)):
        df.to_csv(path, index=False)
    return paths


def write_all(
    paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, figures: bool = True, demo: bool = False
) -> dict[str, list[Path]]:
    """Collect the runs under `paths` and write runs.csv, history.csv and the generic document's
    tables/ and figures/ (figures/<section>, lr_schedule, beta_pdf with mixup, class_proportions).

    Returns the written files by kind: {'csv': [...], 'tables': [...], 'figures': [...]}.
    Raises runs.AnalysisError for a missing path or when no run folder is found.
    """
    runs, hist = collect(paths)
    doc = generic_document(runs, hist, load_data_stats(runs["run_dir"]))
    return {"csv": write_csvs(runs, hist, out_dir), **write_document(doc, out_dir, figures=figures, demo=demo)}
