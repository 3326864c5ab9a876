"""`hydra/sweeper=search`: hydra-optuna-sweeper's search, continued across re-runs of the same command.

The search is hydra-optuna-sweeper's (its `params` search space, sampler, `n_jobs` trials per batch
launched together, `max_failure_rate` per batch), with three differences:

- `n_trials` is the study's total: a re-run of the same command (same `storage`, `study_name`) counts
  the trials the study already finished and runs only the rest, so it continues, never doubles. Trials
  a previous process left running (Ctrl-C, a killed job) are marked failed and their parameters asked
  again first, so their run folders resume; finished run folders are reused as in any sweep.
- A job that returns no finite number (hw_hparams' `NoObjective`: a diverged run) is a failed trial
  that counts toward `max_failure_rate` (upstream counts it, but never stops on it).
- `direction: null` follows the objective (`objective.metric`: maximize accuracies, minimize
  losses); the job number of each trial is its trial number; a continued study's seeded sampler is
  seeded again with seed + trials so far (so as not to draw the first run's points again); and
  `trials.csv` in the sweep folder lists every trial (number, state, value, run folder, parameters)
  after each batch.

Needs the optional extra `optuna` (hydra-optuna-sweeper); without it, one line says how to install it.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
import csv
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

TRIALS_CSV = "trials.csv"
INTERRUPTED_ATTR = (
    "hw_interrupted_trials"  # study user attribute: trials marked failed because a process left them running
)


@dataclass
class SearchSweeperConf:
    _target_: str = "hydra_plugins.hw_hparams_search.search_sweeper.SearchSweeper"
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    direction: Any = None  # null: maximize for an accuracy objective, minimize for a loss
    storage: Optional[Any] = None
    study_name: Optional[str] = None
    n_trials: int = 20  # in the study, over every run of the command
    n_jobs: int = 2  # trials per batch, launched together (one fused network under hydra/launcher=fused)
    max_failure_rate: float = 0.0  # a batch with a larger share of failed trials ends the search
    params: Optional[dict[str, str]] = None
    custom_search_space: Optional[str] = None


ConfigStore.instance().store(group="hydra/sweeper", name="search", node=SearchSweeperConf, provider="hw_hparams")


class TrialFailed(CompactHydraException):
    """A trial whose job returned no objective (diverged); Hydra prints this one line if it ends the search."""


def direction_for(metric: Optional[str]) -> str:
    return "minimize" if str(metric or "").endswith("_loss") else "maximize"


class _TrialLauncher:
    """The real launcher, seen by the search: a non-finite return becomes a failed job; trials.csv is kept."""

    def __init__(self, launcher: Any, on_batch) -> None:
        self.launcher, self.on_batch = launcher, on_batch

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for ret in returns:
            if ret.status == JobStatus.COMPLETED and not _finite(ret.return_value):
                ret.status, ret.return_value = JobStatus.FAILED, TrialFailed(f"no objective: {ret.return_value}")
        self.on_batch(returns)
        return returns


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class SearchSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from hw_hparams.runs.objective import SEARCH_EXTRA_MISSING, optuna_missing

        if optuna_missing():
            raise ImportError(SEARCH_EXTRA_MISSING)
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self.kwargs = kwargs
        self.inner = OptunaSweeper(search_space=None, **kwargs)
        self.run_dirs: dict[int, str] = {}

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.inner.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config
        impl = self.inner.sweeper
        if impl.direction is None:
            impl.direction = direction_for(OmegaConf.select(config, "objective.metric", default=None))
        impl.launcher = _TrialLauncher(impl.launcher, self._record)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        impl = self.inner.sweeper
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)  # the SQLite storage lives there
        self.csv_path = sweep_dir / TRIALS_CSV
        self.run_dirs = _read_run_dirs(self.csv_path)
        study = None
        if impl.storage is not None and impl.study_name is not None:
            try:
                study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
            except KeyError:  # a new study: hydra-optuna-sweeper creates it
                study = None
        if study is not None:
            impl.n_trials, impl.job_idx = _continue(study, impl.n_trials)
            impl.sampler = self._reseeded(impl.sampler, impl.job_idx)
        self.study_args = (impl.study_name, impl.storage)
        try:
            impl.sweep(arguments)
        except ValueError as err:  # upstream's study.best_trial when no trial completed
            if self._completed():
                raise
            raise CompactHydraException(f"no trial of the search completed ({err}); see {self.csv_path}") from err
        finally:
            self._write_csv()

    def _completed(self) -> int:
        import optuna
        from optuna.trial import TrialState

        name, storage = self.study_args
        if storage is None or name is None:
            return 1  # an in-memory study: upstream's own error stands
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        return sum(t.state == TrialState.COMPLETE for t in trials)

    def _reseeded(self, sampler: Any, n_before: int) -> Any:
        """A seeded sampler again, seeded `seed + trials so far`: the same seed would draw the same
        startup points as the first run of the command did."""
        node = OmegaConf.select(self.config, "hydra.sweeper.sampler")
        seed = OmegaConf.select(node, "seed", default=None) if node is not None else None
        if seed is None or not n_before:
            return sampler
        from hydra.utils import instantiate

        return instantiate(node, seed=int(seed) + n_before)

    def _record(self, returns: Sequence[JobReturn]) -> None:
        for ret in returns:
            if ret.hydra_cfg is None:  # a launcher's own failed return (e.g. a SLURM job without a result)
                continue
            hydra = ret.hydra_cfg.hydra
            self.run_dirs.setdefault(int(hydra.job.num), os.path.basename(str(hydra.runtime.output_dir)))
        self._write_csv()

    def _write_csv(self) -> None:
        """trials.csv: one row per trial of the study (its number, state, value, run folder, parameters)."""
        import optuna

        name, storage = self.study_args
        if storage is None or name is None:
            trials = []
        else:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        keys = sorted({k for t in trials for k in t.params})
        tmp = self.csv_path.with_name(f".{TRIALS_CSV}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["trial", "state", "value", "run_dir", *keys])
            for t in trials:
                w.writerow(
                    [
                        t.number,
                        t.state.name,
                        "" if t.value is None else repr(t.value),
                        self.run_dirs.get(t.number, ""),
                        *[t.params.get(k, "") for k in keys],
                    ]
                )
        os.replace(tmp, self.csv_path)


def _read_run_dirs(path: Path) -> dict[int, str]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {int(r["trial"]): r["run_dir"] for r in csv.DictReader(f) if r.get("run_dir")}


def _continue(study: Any, n_trials: int) -> tuple:
    """(trials still to run, the next job number) for a study that already holds trials; trials a
    previous process left running are marked failed and their parameters enqueued to be asked again."""
    from optuna.trial import TrialState

    interrupted = set(study.user_attrs.get(INTERRUPTED_ATTR, []))
    trials = study.get_trials(deepcopy=False)
    stale = [t for t in trials if t.state == TrialState.RUNNING]
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(t.params))
        interrupted.add(t.number)
    if stale:
        study.set_user_attr(INTERRUPTED_ATTR, sorted(interrupted))
        log.info(f"Asking again the {len(stale)} trial(s) a previous run left unfinished: {[t.number for t in stale]}")
    done = sum(1 for t in trials if t.state.is_finished() and t.number not in interrupted)
    log.info(f"Continuing the study: {done} trial(s) finished, {max(0, n_trials - done)} to go of n_trials={n_trials}")
    return max(0, n_trials - done), len(trials)
