"""The value a training job returns to Hydra: its objective, for search sweepers (Optuna, Nevergrad, Ax).

`objective: {metric, at}` in the config names it: `metric` is a history.csv column (`val_acc`,
`val_loss`, `train_acc`, `train_loss`) or a test split metric (`test_acc`, `test_loss`, needs
`eval_test=true`); `at` is `final` (the last epoch) or `best` (the epoch where the metric is best:
the highest accuracy, the lowest loss; the test split is evaluated once, so only `final`).
Accuracies are fractions. The key does not change what a run computes, so it never names a run folder.

A run without a finite objective (diverged, or the metric is not finite) returns `NoObjective`, whose
float() raises ValueError naming the run and why: hydra/sweeper=search counts such a trial as failed
(its `max_failure_rate` then decides whether the search goes on), the basic sweeper ignores return
values, and no search ever reads it as a number. A run a search's pruner stopped returns `Pruned` (a
NoObjective too): the search tells its study the trial was pruned, never failed. A run that crashes
raises, as before. `at_epoch` is the objective after each epoch, which a search's trial reports.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.suggest import did_you_mean
from hw_hparams.runs.format import COMPLETED, HISTORY, METRICS, PRUNED, TEST_METRICS, higher_is_better

# hydra/sweeper=search (hydra_plugins/hw_hparams_search) asks Optuna for the next settings: an optional extra.
SEARCH_EXTRA_MISSING = 'hydra/sweeper=search needs Optuna, which is not installed: pip install -e ".[optuna]"'


def optuna_missing() -> bool:
    """True when Optuna cannot be imported."""
    import importlib.util

    return importlib.util.find_spec("optuna") is None


AT = ("final", "best")  # objective.at: the last epoch, or the epoch where the metric is best


class NoObjective:
    """The return value of a run that has no objective to give; float() raises ValueError(reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __float__(self) -> float:
        raise ValueError(self.reason)

    def __str__(self) -> str:
        return self.reason

    __repr__ = __str__


class Pruned(NoObjective):
    """The return value of a run that a search's pruner stopped (status `pruned`): no objective, not a failure."""


def check(cfg: Any) -> None:
    """Refuse (ConfigError, one line) an objective a run cannot give: `objective.metric` one of METRICS,
    `objective.at` one of AT, a test metric only with eval_test=true and at its final epoch."""
    metric, at = str(cfg.objective.metric), str(cfg.objective.at)
    for key, value, choices in (("objective.metric", metric, METRICS), ("objective.at", at, AT)):
        if value not in choices:
            raise ConfigError(
                f"{key}={value!r} is not allowed: one of {', '.join(choices)}{did_you_mean(value, choices)}"
            )
    if metric in TEST_METRICS and not cfg.eval_test:
        raise ConfigError(f"objective.metric={metric} needs eval_test=true (the test split is evaluated only then)")
    if metric in TEST_METRICS and at != "final":
        raise ConfigError(
            f"objective.at={at} is not allowed with objective.metric={metric}: "
            "the test split is evaluated once, use final"
        )


def _history(run_dir: Path, metric: str) -> list[float]:
    with open(Path(run_dir) / HISTORY, newline="", encoding="utf-8") as f:
        return [float(row[metric]) for row in csv.DictReader(f) if row.get(metric) not in (None, "")]


def value(summary: dict, run_dir: Path, metric: str = "val_acc", at: str = "final") -> float | NoObjective:
    """The objective of the run whose summary.json is `summary` (folder `run_dir`)."""
    status = summary.get("status")
    if status == PRUNED:
        return Pruned(f"{run_dir} {summary.get('message') or 'pruned'}")
    if status != COMPLETED:
        return NoObjective(f"{run_dir} {status} after {summary.get('epochs_completed')} epochs: no {metric} to return")
    if metric in TEST_METRICS:
        found = (summary.get("test") or {}).get(metric.split("_", 1)[1])
    elif at == "final":
        found = (summary.get("final") or {}).get(metric)
    else:
        values = [v for v in _history(run_dir, metric) if math.isfinite(v)]
        found = (max if higher_is_better(metric) else min)(values) if values else None
    if found is None or not math.isfinite(float(found)):
        return NoObjective(f"{run_dir} has no finite {metric} ({at}): {found}")
    return float(found)


def at_epoch(rows: list[dict], metric: str, at: str) -> float:
    """The objective after the last of history `rows` (history.csv's rows so far): the metric of that
    epoch (`at=final`), or its best so far (`at=best`); NaN when not finite. Test metrics have none."""
    values = [float(r[metric]) for r in rows]
    if at == "best":
        values = [v for v in values if math.isfinite(v)]
        return (max if higher_is_better(metric) else min)(values) if values else math.nan
    return values[-1] if values and math.isfinite(values[-1]) else math.nan


def of_job(cfg, run_dir: Path, summary: dict) -> float | NoObjective:
    """`value` for a job's config `cfg` (its `objective` key)."""
    return value(summary, run_dir, str(cfg.objective.metric), str(cfg.objective.at))
