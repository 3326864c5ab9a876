"""A custom search space for tests (`hydra.sweeper.custom_search_space=search_plan.by_trial`): trial n
trains with the n-th `lr:seed` of SEARCH_PLAN (comma-separated, from the environment), so a test knows
which trials are hopeless by construction. tests/ must be on the search command's PYTHONPATH (`env`)."""

from __future__ import annotations

import os
from pathlib import Path

from support import TINY_RUN, path_with_tests, small_data_overrides


def plan() -> list[tuple[float, int]]:
    return [(float(lr), int(seed)) for lr, seed in (p.split(":") for p in os.environ["SEARCH_PLAN"].split(","))]


def by_trial(cfg, trial) -> None:
    lr, seed = plan()[trial.number]
    trial.suggest_float("optim.lr", lr, lr)
    trial.suggest_int("seed", seed, seed)


def env(plan: str, **extra: str) -> dict[str, str]:
    """The environment of a search command whose trial n trains the n-th `lr:seed` of `plan`."""
    return {**path_with_tests(), "SEARCH_PLAN": plan, "OMP_NUM_THREADS": "1", **extra}


def search_args(small_root: Path, n_trials: int, *extra: str) -> list[str]:
    """A search of `n_trials` planned trials (tiny model, 3 epochs on the CPU, minimizing the training loss) on the
    `small_root` fixture's data: 2 steps an epoch."""
    return [
        "-m",
        "hydra/sweeper=search",
        *TINY_RUN,
        *small_data_overrides(small_root),
        "epochs=3",
        "trainer.device=cpu",
        "objective.metric=train_loss",
        "hydra.sweeper.custom_search_space=search_plan.by_trial",
        f"hydra.sweeper.n_trials={n_trials}",
        *extra,
    ]
