"""The homework's plan in its runs: the stages of study/graph.py with each part's composed run configs,
how the launcher trains a stage's runs, its critical path in epochs, and an estimate in minutes from
`python -m hw_hparams.bench --out` figures. `plan=true` prints it; nothing is trained or written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import spell
from hw_hparams.config.roles import fused_groups
from hw_hparams.study.graph import (
    DECISION,
    SECTIONS,
    SPECULATED,
    Part,
    Stage,
    critical_path_epochs,
    epoch_time_at,
    minutes,
    per_run_times,
    stage_seconds,
    stages,
)

# Launchers whose runs of one sweep train at once (fused: as one network; the others: as jobs at once).
TOGETHER = {
    "fused": "in one network",
    "joblib": "as jobs at once",
    "submitit_local": "as jobs at once",
    "slurm": "as cluster jobs at once",
    "slurm_cpu": "as cluster jobs at once",
}
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"  # bench --out JSON files of a checkout
CIFAR100_TRAIN = 50000  # training + validation images of an epoch on CIFAR-100


def chosen_overrides(part: Part, made: dict[str, Any]) -> list[str]:
    """The overrides a part gets for the choices its section needs: its guess (what the part is, made or
    not), then the made ones (selection.Verdict); a choice neither made nor guessed keeps the experiment's value."""
    values = {name: c.value for name, c in made.items()}
    if part.guess:
        values[part.guess[0]] = part.guess[1]
    needs = next(s.needs for s in SECTIONS if s.name == part.section)
    return [f"{DECISION[n].key}={values[n]}" for n in needs if n in values]


def needs_test(part: Part) -> bool:
    """Whether a part's runs evaluate the test split: the final section's, unless it trains on a guess."""
    return part.guess is None and next(s.final for s in SECTIONS if s.name == part.section)


@dataclass
class StudyPlan:
    launcher: str
    speculate: bool
    stages: list[Stage]
    runs: dict[Part, list] = field(default_factory=dict)  # each part's composed run configs (Hydra node included)

    def epochs(self, part: Part) -> list[int]:
        return [int(c.epochs) for c in self.runs.get(part, [])]

    def critical_path_epochs(self) -> list[int]:
        return critical_path_epochs(self.stages, self.epochs)

    def epochs_by_section(self) -> dict[str, list[int]]:
        """Section -> the epochs of each run it trains (under speculation: every candidate's)."""
        out: dict[str, list[int]] = {}
        for st in self.stages:
            for p in st.parts:
                if not st.test:
                    out.setdefault(p.section, []).extend(self.epochs(p))
        return out

    def batches(self, stage: Stage) -> list[list[int]]:
        """The stage's runs as the launcher trains them: batches one after another, each a list of
        the epochs of the runs trained at once (fused: its networks; basic: one run at a time)."""
        configs = [c for p in stage.parts for c in self.runs.get(p, [])]
        if not configs or stage.test:
            return []
        if self.launcher == "fused":
            max_fused = OmegaConf.select(configs[0], "hydra.launcher.max_fused", default=None)
            return [[int(configs[i].epochs) for i in g] for g in fused_groups(configs, max_fused)]
        if self.launcher not in TOGETHER:
            return [[int(c.epochs)] for c in configs]
        at_once = OmegaConf.select(configs[0], "hydra.launcher.n_jobs", default=None)
        size = at_once if isinstance(at_once, int) and at_once > 0 else len(configs)
        return [[int(c.epochs) for c in configs[i : i + size]] for i in range(0, len(configs), size)]

    def summary(self) -> list[dict]:
        """The plan as plain data (choices.json): per stage its parts, runs, epochs and how they trained."""
        return [
            {
                "parts": [label(p) for p in st.parts],
                "runs": sum(len(self.runs.get(p, [])) for p in st.parts),
                "epochs": max((e for p in st.parts for e in self.epochs(p)), default=0),
                "test": st.test,
                "launcher": self.launcher,
            }
            for st in self.stages
        ]


def make_plan(launcher: str, speculate: str, configs_of: Callable[[Part], list]) -> StudyPlan:
    """The plan under `launcher` and the `speculate` setting (auto: where runs train at once);
    `configs_of(part)`: the composed configs of a part's runs."""
    together = launcher in TOGETHER
    on = together if speculate == "auto" else speculate == "true"
    wd_runs = configs_of(Part(DECISION[SPECULATED].section))
    candidates = {SPECULATED: list(dict.fromkeys(OmegaConf.select(c, DECISION[SPECULATED].key) for c in wd_runs))}
    plan = StudyPlan(launcher, on, stages(together, on, candidates))
    for st in plan.stages:
        for p in st.parts:
            if not st.test and p not in plan.runs:
                plan.runs[p] = configs_of(p)
    return plan


def label(part: Part) -> str:
    return f"{part.section} at {part.guess[0]}={spell(part.guess[1])}" if part.guess else part.section


def _runs(n: int) -> str:
    return f"{n} run" + "s" * (n != 1)


def describe(plan: StudyPlan) -> list[str]:
    """The plan as lines: each stage's parts, runs, epochs and how its runs train; the critical path."""
    how = TOGETHER.get(plan.launcher, "one after another")
    lines = [
        f"Plan: launcher={plan.launcher}, speculate={'true' if plan.speculate else 'false'}; {len(plan.stages)} stages"
    ]
    for n, st in enumerate(plan.stages, 1):
        if st.test:
            lines.append(
                f"  stage {n}: {label(st.parts[0])}, the candidate at the chosen {SPECULATED}, evaluates the "
                "test split (nothing trains; the other candidates are never tested)"
            )
            continue
        parts = ", ".join(f"{label(p)} ({_runs(len(plan.runs[p]))})" for p in st.parts)
        batches = plan.batches(st)
        runs, sizes = sum(map(len, batches)), ", ".join(str(len(b)) for b in batches)
        if plan.launcher == "fused":
            shape = (
                f"{_runs(runs)} in one network"
                if len(batches) == 1
                else f"{_runs(runs)} in {len(batches)} networks of {sizes}, one after another"
            )
        elif runs == 1:
            shape = "1 run"
        elif how == "one after another" or len(batches) == 1:
            shape = f"{_runs(runs)} {how}"
        else:
            shape = f"{_runs(runs)} {how}, {len(batches[0])} at a time"
        lines.append(f"  stage {n}: {parts}: {max(e for b in batches for e in b)} epochs; {shape}")
    path = plan.critical_path_epochs()
    lines.append(f"Critical path: {sum(path)} epochs of one stage ({' + '.join(map(str, path))})")
    return lines


def bench_rows(path: Optional[str], device: str, model: str) -> tuple[Optional[dict], str]:
    """(a bench JSON, where from): `path`, else the newest file in benchmarks/ measured on this
    device kind with this model; (None, why not) when there is none. ConfigError for an unreadable `path`."""
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
            return {"rows": list(data["rows"]), "meta": dict(data["meta"])}, path
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"bench={path!r} is not allowed: not a JSON file of `python -m hw_hparams.bench --out` ({err})"
            ) from None
    import torch

    kind = "cuda" if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else "cpu"
    for f in sorted(BENCHMARKS.glob("*.json"), reverse=True) if BENCHMARKS.is_dir() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        meta = data.get("meta", {})
        if str(meta.get("device", "")).startswith(kind) and meta.get("model") == model:
            return data, f"benchmarks/{f.name}"
    return (
        None,
        f"no bench figures for {model} on {kind} (give bench=FILE, written by `python -m hw_hparams.bench --out FILE`)",
    )


def estimate(plan: StudyPlan, rows: list[dict], scale: float = 1.0) -> Optional[float]:
    """Seconds of the study's training stages from bench rows, their epoch times x `scale` (images per
    epoch of the study over the bench's); None when the rows lack the one-run figure."""

    kinds = (
        ("(c)", "(e)")
        if plan.launcher == "fused"
        else ("(c)", "(d)")
        if plan.launcher in ("joblib", "submitit_local")
        else ("(c)",)
    )
    per_run, compile_s = per_run_times(rows, kinds)
    per_run = {k: t * scale for k, t in per_run.items()}
    if 1 not in per_run:
        return None
    total = 0.0
    for st in plan.stages:
        batches = [
            (max(b), len(b) if plan.launcher in ("fused", "joblib", "submitit_local") else 1) for b in plan.batches(st)
        ]
        total += stage_seconds(batches, lambda k: epoch_time_at(per_run, k)[0], compile_s)
    return total


def print_plan(study, bench: Optional[str]) -> None:
    """`plan=true`: the plan, its critical path and, where bench figures exist, an estimate (stdout)."""
    plan = study.plan
    first = next(iter(plan.runs.values()))[0]
    lines = [f"Study {study.root}", *describe(plan)]
    model = first.model.name
    bench_data, source = bench_rows(bench, str(first.trainer.device), str(getattr(model, "value", model)))
    seconds = None
    if bench_data is not None:
        images = study.settings.demo_train if study.settings.demo else CIFAR100_TRAIN
        measured = int(bench_data["meta"].get("train", 0)) + int(bench_data["meta"].get("val", 0))
        seconds = estimate(plan, bench_data["rows"], images / measured) if measured else None
    if seconds is not None:
        lines.append(
            f"Estimate: ~{minutes(seconds)} of training (epoch times of {bench_data['meta'].get('model')} on "
            f"{bench_data['meta'].get('device_name')} from {source}, scaled from its {measured} to "
            f"{images} images per epoch; data loading and the test pass not counted)"
        )
    else:
        lines.append(f"Estimate: none ({source if bench_data is None else source + ' has no one-run (c) figure'})")
    print("\n".join(lines), file=sys.stdout)
