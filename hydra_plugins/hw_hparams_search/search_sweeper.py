"""`hydra/sweeper=search`: an Optuna search (Optuna >= 4, its ask-and-tell API) whose runs report every
epoch and whose pruner stops the losing ones; the same command continues its study.

- The space: `params` and the command line's sweeps, as Hydra's Optuna sweeper reads them (space.py),
  and `custom_search_space`; any sampler by `_target_`; `direction` maximize or minimize, or null:
  maximize an accuracy objective, minimize a loss (`objective.metric`).
- Each job learns its trial from `search.trial`, `search.storage`, `search.study` (keys that never
  name a run folder), reports its objective after every epoch, and the pruner (`hydra/sweeper/pruner`
  = none, median, successive_halving, hyperband, wilcoxon, or any by `_target_`) may stop it: its
  run ends `pruned` (final: never resumed nor trained again), its trial PRUNED (hw_hparams/runs/trial.py).
- Launching (`trials.py`): under launchers whose jobs run in other processes (joblib, SLURM,
  submitit_local) `n_jobs` slots each run one trial at a time, and a slot that frees (finished, pruned,
  failed) takes the next trial at once; under the others (basic, fused) `n_jobs` trials are asked and
  launched together as a batch (under fused: one network, which a pruned run leaves).
- The study lives in `storage` (an RDB URL, or a journal file's path), by default the sweep folder's
  SQLite file `optuna.db`, or under SLURM its journal file `optuna-journal.log` (Optuna's storage for
  shared file systems). `n_trials` is the study's total: the same command again counts the trials
  finished and runs only the rest; trials a killed command left running are marked failed and asked
  again first, so their run folders resume (a pruned run's folder says so: its trial is pruned again).
- A job that returns no finite number (hw_hparams' NoObjective: a diverged run) or fails is a failed
  trial; when more than `max_failure_rate` of the last `n_jobs` trials to finish failed, the search
  stops launching and ends in one line (exit 1). A pruned trial is no failure.
- The sweep folder gets `trials.csv` (each trial's number, state, value, run folder and parameters,
  after every trial) and `optimization_results.yaml` (best_params, best_value).

Needs the optional extra `optuna`; without it, one line says how to install it.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING, DictConfig, OmegaConf

log = logging.getLogger(__name__)

DB = "optuna.db"  # the default storage on one machine: SQLite, in the sweep folder
JOURNAL = "optuna-journal.log"  # the default under SLURM: a journal file, in the sweep folder
# hydra/sweeper/pruner=NAME: Optuna's pruners with their own defaults written out, so each is overridable
# (hydra.sweeper.pruner.n_warmup_steps=2); any other by `_target_`.
PRUNERS = {
    "none": {"_target_": "optuna.pruners.NopPruner"},
    "median": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 5,
        "n_warmup_steps": 0,
        "interval_steps": 1,
    },
    "successive_halving": {
        "_target_": "optuna.pruners.SuccessiveHalvingPruner",
        "min_resource": "auto",
        "reduction_factor": 4,
        "min_early_stopping_rate": 0,
    },
    "hyperband": {
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,
        "max_resource": "auto",
        "reduction_factor": 3,
    },
    "wilcoxon": {"_target_": "optuna.pruners.WilcoxonPruner", "p_threshold": 0.1, "n_startup_steps": 2},
}


@dataclass
class SearchSweeperConf:
    _target_: str = "hydra_plugins.hw_hparams_search.search_sweeper.SearchSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"pruner": "none"}])
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    pruner: Any = MISSING  # hydra/sweeper/pruner=...: none (every epoch still reported), median, ...
    direction: Any = None  # null: maximize for an accuracy objective, minimize for a loss
    storage: Optional[str] = None  # null: sqlite in the sweep folder (a journal file there under SLURM)
    study_name: Optional[str] = None  # null: the sweep folder's name
    n_trials: int = 20  # in the study, over every run of the command
    n_jobs: int = 2  # trials at once: slots (joblib, SLURM) or a batch (basic; fused: one network)
    max_failure_rate: float = 0.0  # more failed trials among the last n_jobs to finish ends the search
    params: Optional[dict[str, str]] = None
    custom_search_space: Optional[str] = None  # a function fn(cfg, trial) that suggests more values


ConfigStore.instance().store(group="hydra/sweeper", name="search", node=SearchSweeperConf, provider="hw_hparams")
for _name, _node in PRUNERS.items():
    ConfigStore.instance().store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="hw_hparams")


def direction_for(metric: Optional[str]) -> str:
    return "minimize" if str(metric or "").endswith("_loss") else "maximize"


def default_storage(sweep_dir: Path, launcher: Any) -> str:
    """SQLite in the sweep folder, or a journal file there when the jobs run on SLURM's nodes."""
    slurm = any(c.__name__ == "SlurmLauncher" for c in type(launcher).__mro__)
    return str(sweep_dir.absolute() / JOURNAL) if slurm else f"sqlite:///{sweep_dir.absolute() / DB}"


def absolute(storage: str) -> str:
    """A storage whose file path is relative (to the folder the command ran in) made absolute, so a
    job that runs elsewhere (hydra.job.chdir, a SLURM node) opens the same file."""
    from hw_hparams.runs.trial import is_url

    if not is_url(storage):
        return os.path.abspath(storage)
    prefix = "sqlite:///"
    if storage.startswith(prefix) and not storage[len(prefix) :].startswith(("/", ":memory:")) and storage != prefix:
        return prefix + os.path.abspath(storage[len(prefix) :])
    return storage


class SearchSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from hw_hparams.runs.objective import SEARCH_EXTRA_MISSING, optuna_missing

        if optuna_missing():
            raise ImportError(SEARCH_EXTRA_MISSING)
        self.kwargs = kwargs

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra.utils import get_method

        from hydra_plugins.hw_hparams_search import space, trials  # imports no Optuna

        k = self.kwargs
        fixed, dims = space.parse(OmegaConf.to_container(k["params"]) if k["params"] else None, arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = absolute(str(k["storage"])) if k["storage"] else default_storage(sweep_dir, self.launcher)
        direction = k["direction"] or direction_for(OmegaConf.select(self.config, "objective.metric", default=None))
        search = trials.Search(
            launcher=self.launcher,
            storage=storage,
            study_name=str(k["study_name"] or sweep_dir.name),
            direction=str(direction),
            sampler=self._instance("sampler"),
            pruner=self._instance("pruner"),
            n_jobs=int(k["n_jobs"]),
            max_failure_rate=float(k["max_failure_rate"]),
            fixed=fixed,
            space=dims,
            custom=get_method(k["custom_search_space"]) if k["custom_search_space"] else None,
            config=self.config,
            sweep_dir=sweep_dir,
        )
        search.run(int(k["n_trials"]), reseed=self._reseeded)

    def _instance(self, key: str) -> Any:
        """The sampler or pruner: instantiated from its config node (or as Hydra already instantiated it)."""
        from hydra.utils import instantiate

        node = self.kwargs[key]
        return instantiate(node) if isinstance(node, (dict, DictConfig)) else node

    def _reseeded(self, sampler: Any, n_before: int) -> Any:
        """A seeded sampler again, seeded `seed + trials so far`: the same seed would draw the same
        startup points as the first run of the command did."""
        node = OmegaConf.select(self.config, "hydra.sweeper.sampler")
        seed = OmegaConf.select(node, "seed", default=None) if node is not None else None
        if seed is None or not n_before:
            return sampler
        from hydra.utils import instantiate

        return instantiate(node, seed=int(seed) + n_before)
