"""Pick a hyperparameter value from a sweep's run folders by a final-epoch metric.

Only completed runs count (a diverged or failed run cannot be best). Runs sharing the value (seeds)
are averaged. Ties on the metric are broken by validation loss (by validation accuracy when the
metric is the validation loss), then by the order of the sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hw_hparams.config.roles import config_value
from hw_hparams.runs.folder import read_summary
from hw_hparams.runs.format import COMPLETED, HISTORY_METRICS, higher_is_better

# A final-epoch metric of summary.json's `final` (a history.csv metric); accuracies are maximised, losses minimised.
Metric = Enum("Metric", [(m, m) for m in HISTORY_METRICS], type=str, module=__name__)


@dataclass
class Verdict:
    """The value of `key` chosen by `metric`, with every value's mean metric (nan: no completed run)."""

    key: str
    metric: Metric
    value: Any
    scores: dict[Any, float]
    runs: dict[Any, int]
    statuses: dict[Any, list[str]] = field(default_factory=dict)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def scores(
    summaries: list[dict | None], key: str, metric: Metric
) -> tuple[dict[Any, float], dict[Any, int], dict[Any, list[str]]]:
    """Per value of `key` (sweep order): mean final `metric` over its completed runs, their count, all statuses.

    `summaries`: the runs' summary.json contents in sweep order (None for a run not started)."""
    values: dict[Any, list[float]] = {}
    statuses: dict[Any, list[str]] = {}
    for s in summaries:
        if s is None:
            continue
        v = config_value(s["config"], key)
        statuses.setdefault(v, []).append(s["status"])
        values.setdefault(v, [])
        if s["status"] == COMPLETED and s["final"]:
            values[v].append(s["final"][metric.value])
    means = {v: _mean(m) for v, m in values.items()}
    counts = {v: sum(1 for x in m if math.isfinite(x)) for v, m in values.items()}
    return means, counts, statuses


def choose(run_dirs: list[Path], key: str, metric: Metric) -> Verdict | None:
    """The best value of `key` among `run_dirs` by `metric`; None when no run completed."""
    summaries = [read_summary(d) for d in run_dirs]  # read once for both metrics
    means, counts, statuses = scores(summaries, key, metric)
    tie = Metric.val_acc if metric == Metric.val_loss else Metric.val_loss
    tie_means = scores(summaries, key, tie)[0]
    sign, tie_sign = (1 if higher_is_better(metric) else -1), (1 if higher_is_better(tie) else -1)
    candidates = [v for v, m in means.items() if math.isfinite(m)]
    if not candidates:
        return None

    def rank(v: Any) -> tuple[float, float]:
        t = tie_means[v]
        return sign * means[v], tie_sign * t if math.isfinite(t) else -math.inf

    best = max(candidates, key=rank)  # max keeps the first of equal ranks: sweep order
    return Verdict(key, metric, best, means, counts, statuses)
