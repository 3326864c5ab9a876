"""A study folder read once: its contract (choices.json) and every run of its sections.

Every number of report.md and paper.tex comes from the two tables read here (`collect` once),
and from the training split's data_stats.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.read import contract as C
from analysis.read.runs import AnalysisError, collect, load_data_stats


@dataclass
class StudyData:
    root: Path
    contract: C.Contract
    runs: pd.DataFrame  # one row per run; `section` as the contract names it
    hist: pd.DataFrame  # one row per run per epoch
    stats: dict | None  # data_stats.json of the runs (split sizes, channel stats, classes)

    @property
    def demo(self) -> bool:
        return self.contract.demo is not None

    @property
    def sizes(self) -> dict:
        """Images per split: {'train': 40000, 'val': 10000, 'test': 10000} (empty if unknown)."""
        return dict((self.stats or {}).get("sizes") or {})

    def part(self, section: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, history) of one section."""
        return self.select(self.runs["section"] == section)

    def select(self, mask: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
        runs = self.runs[mask]
        return runs, self.hist[self.hist["run_dir"].isin(set(runs["run_dir"]))]

    def choice(self, name: str) -> C.Choice | None:
        return self.contract.choices.get(name)

    def final_part(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, history) of the final section with its no-mixup baseline (the runs of the chosen
        weight decay in its section), all runs labelled with the final section."""
        final, wd = self.contract.final_section, self.choice("weight_decay")
        mask = self.runs["section"] == final
        if wd is not None:
            vals = pd.to_numeric(self.runs["weight_decay"], errors="coerce").to_numpy(dtype=float)
            mask |= (self.runs["section"] == wd.section) & np.isclose(vals, float(wd.value), rtol=1e-9, atol=0)
        runs, hist = self.select(mask)
        return runs.assign(section=final), hist


def load(root: str | os.PathLike) -> StudyData:
    """Read <root>/choices.json and every run folder it lists (one `collect`)."""
    root = Path(root)
    contract = C.read(root)
    dirs = contract.run_dirs(root)
    every = [d for ds in dirs.values() for d in ds]
    if not every:
        raise AnalysisError(f"{root / C.FILE} lists no run folders")
    missing = [d for d in every if not d.is_dir()]
    if missing:
        raise AnalysisError(f"{len(missing)} run folder(s) listed in {root / C.FILE} are missing, e.g. {missing[0]}")
    runs, hist = collect(every)
    section_of = {os.path.normpath(d): s for s, ds in dirs.items() for d in ds}
    runs["section"] = runs["run_dir"].map(lambda d: section_of[os.path.normpath(d)])
    hist["section"] = hist["run_dir"].map(lambda d: section_of[os.path.normpath(d)])
    stats = load_data_stats(runs["run_dir"])
    return StudyData(root, contract, runs, hist, stats)
