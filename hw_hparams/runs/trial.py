"""A run's trial in a search (hydra/sweeper=search): its objective reported after every epoch, and the
study's pruner asked whether the run goes on.

The sweeper (hydra_plugins/hw_hparams_search) gives each job its trial in `search.trial`,
`search.storage` and `search.study` (config/schema.py's SearchConfig: job keys that never name a run
folder). The job opens the same storage, reports the objective of each epoch (objective.at_epoch) as
the trial's intermediate value at step = epoch, and asks `should_prune` with the pruner of the
sweeper's config (`hydra.sweeper.pruner`, instantiated here too: a pruner decides from what the
storage holds, so every process that asks decides alike). The final state (COMPLETE, PRUNED, FAIL) is
the sweeper's to tell. Reports go through the storage, so this works under any launcher.

A storage is named as Optuna's command line and optuna-dashboard name it: an RDB URL
(`sqlite:///path.db`, `postgresql://...`) or the path of a journal file (JournalFileBackend: Optuna's
storage for a shared file system such as NFS).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.suggest import did_you_mean
from hw_hparams.runs.objective import at_epoch

log = logging.getLogger("hw_hparams.train")

SQLITE_TIMEOUT_S = 60  # how long a writer waits for SQLite's lock (jobs of a search report at once)


def is_url(storage: str) -> bool:
    """An RDB URL (else the path of a journal file)."""
    return "://" in storage


def open_storage(storage: str) -> Any:
    """The Optuna storage named by `storage` (an RDB URL or a journal file's path; module docstring)."""
    import optuna

    if not is_url(storage):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    kwargs = {"engine_kwargs": {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}} if storage.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(storage, **kwargs)


class Trial:
    """The trial of one run: `report(rows)` after each epoch, then `should_prune()`."""

    def __init__(self, storage: str, study: str, number: int, pruner: Any, metric: str, at: str) -> None:
        import optuna

        self.metric, self.at, self.reported = metric, at, 0
        opened = open_storage(storage)
        # A random sampler: building a Trial asks its sampler for relative parameters, which it has no use for here.
        loaded = optuna.load_study(
            study_name=study,
            storage=opened,
            sampler=optuna.samplers.RandomSampler(),
            pruner=pruner or optuna.pruners.NopPruner(),
        )
        trial_id = opened.get_trial_id_from_study_id_trial_number(opened.get_study_id_from_name(study), number)
        self.trial = optuna.trial.Trial(loaded, trial_id)
        self.number = number

    def report(self, rows: list[dict]) -> None:
        """Report the objective after each epoch of `rows` (history.csv's rows) not reported yet by this process."""
        for n in range(self.reported + 1, len(rows) + 1):
            value = at_epoch(rows[:n], self.metric, self.at)
            if math.isfinite(value):
                self.trial.report(value, step=int(rows[n - 1]["epoch"]))
        self.reported = len(rows)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def of_job(cfg: Any, hydra_cfg: Any) -> Trial | None:
    """The trial of the job whose config is `cfg` (its `search` keys; None outside a search), with the
    pruner of its Hydra config `hydra_cfg` (`sweeper.pruner`; none: never pruned, still reported)."""
    search = cfg.get("search")
    if search is None or search.trial is None:
        return None
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.select(hydra_cfg, "sweeper.pruner", default=None) if hydra_cfg is not None else None
    pruner = instantiate(node) if node is not None else None
    metric, at = str(cfg.objective.metric), str(cfg.objective.at)
    return Trial(str(search.storage), str(search.study), int(search.trial), pruner, metric, at)


def check_classes(hydra_cfg: Any) -> None:
    """The search's sampler and pruner (`hydra.sweeper.sampler._target_`, `...pruner._target_`) name classes
    that import; else ConfigError, one line (before Hydra instantiates the sweeper, and anything is written)."""
    import importlib

    from omegaconf import OmegaConf

    for key, module in (("sampler", "samplers"), ("pruner", "pruners")):
        target = OmegaConf.select(hydra_cfg, f"sweeper.{key}._target_", default=None)
        if target is None:
            continue
        module_name, _, name = str(target).rpartition(".")
        try:
            if not isinstance(getattr(importlib.import_module(module_name), name), type):
                raise TypeError(target)
        except Exception:  # noqa: BLE001 - any import or lookup failure is the same user error
            import optuna

            known = [f"optuna.{module}.{n}" for n in dir(getattr(optuna, module)) if n[:1].isupper()]
            raise ConfigError(
                f"hydra.sweeper.{key}._target_={target} is not a class that imports: give an Optuna {key} "
                f"(optuna.{module}.*) or your own{did_you_mean(str(target), known)}"
            ) from None
