"""A custom search space for tests (`hydra.sweeper.custom_search_space=search_plan.by_trial`): trial n
trains with the n-th `lr:seed` of SEARCH_PLAN (comma-separated, from the environment), so a test knows
which trials are hopeless by construction. tests/ must be on the search command's PYTHONPATH."""

from __future__ import annotations

import os


def plan() -> list[tuple[float, int]]:
    return [(float(lr), int(seed)) for lr, seed in (p.split(":") for p in os.environ["SEARCH_PLAN"].split(","))]


def by_trial(cfg, trial) -> None:
    lr, seed = plan()[trial.number]
    trial.suggest_float("optim.lr", lr, lr)
    trial.suggest_int("seed", seed, seed)
