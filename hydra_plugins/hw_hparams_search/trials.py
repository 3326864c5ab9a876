"""The trials of hydra/sweeper=search (search_sweeper.py): the study asked for each trial's values, its
job launched (in slots, or in batches), the study told how it ended, trials.csv kept.

Slots: with a launcher whose jobs run in other processes (joblib's workers, submitit's SLURM or local
jobs), `n_jobs` threads each ask a trial, launch its one job and wait for it, tell the study and take
the next: a trial starts as soon as any slot is free, never waiting for the slowest of a batch. Any
other launcher runs its jobs in this process (basic, fused): `n_jobs` trials are asked and launched
together, as one batch, and told when all have ended. Optuna is imported inside the methods.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException

from hydra_plugins.hw_hparams_search.space import as_override, trial_overrides

log = logging.getLogger(__name__)

TRIALS_CSV = "trials.csv"
RESULTS = "optimization_results.yaml"
# study user attribute: trials marked failed because a killed command left them running (asked again)
INTERRUPTED_ATTR = "hw_interrupted_trials"
# launchers whose jobs run in other processes: slots (module docstring)
ELSEWHERE = ("JoblibLauncher", "BaseSubmititLauncher")


class SearchFailed(CompactHydraException):
    """Too many failed trials, or none completed: Hydra prints this one line and exits 1."""


def finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def job_outcome(ret: JobReturn) -> tuple[str, Any]:
    """("complete", value), ("pruned", why) or ("fail", why) for a job's return."""
    from hw_hparams.runs.objective import Pruned

    if ret.status != JobStatus.COMPLETED:
        try:
            _ = ret.return_value  # a failed job's return raises its error
        except Exception as err:  # noqa: BLE001 - any job error is the trial's failure
            return "fail", " ".join(str(err).split())[:300] or type(err).__name__
        return "fail", f"job status {ret.status}"
    value = ret.return_value
    if isinstance(value, Pruned):
        return "pruned", str(value)
    if not finite(value):
        return "fail", f"no objective: {value}"
    return "complete", float(value)


def run_dir_of(ret: JobReturn) -> str:
    """The run folder's name of a job's return ('' for a launcher's own failed return)."""
    if ret.hydra_cfg is None:
        return ""
    return os.path.basename(str(ret.hydra_cfg.hydra.runtime.output_dir))


def in_slots(launcher: Any) -> bool:
    """Whether the launcher's jobs run in other processes, so several can be launched from threads at once."""
    return any(c.__name__ in ELSEWHERE for c in type(launcher).__mro__)


class Search:
    """One command's part of a study: `run(n_trials)` asks, launches and tells until the study holds
    `n_trials` finished trials, then writes the best one."""

    def __init__(self, *, launcher, storage, study_name, direction, sampler, pruner, n_jobs, max_failure_rate,
                 fixed, space, custom, config, sweep_dir) -> None:  # fmt: skip
        self.launcher, self.storage, self.study_name, self.direction = launcher, storage, study_name, direction
        self.sampler, self.pruner, self.n_jobs, self.max_failure_rate = sampler, pruner, n_jobs, max_failure_rate
        self.fixed, self.space, self.custom, self.config = fixed, space, custom, config
        self.csv_path = Path(sweep_dir) / TRIALS_CSV
        self.results_path = Path(sweep_dir) / RESULTS
        self.run_dirs = _read_run_dirs(self.csv_path)
        self.ended: list[tuple[str, Any]] = []  # (outcome, detail) of each trial this command told, in order
        self.lock = threading.Lock()
        self.study: Any = None

    def run(self, n_trials: int, reseed: Callable[[Any, int], Any]) -> None:
        import optuna

        self.study = optuna.create_study(
            storage=_opened(self.storage),
            study_name=self.study_name,
            sampler=self.sampler,
            pruner=self.pruner,
            direction=self.direction,
            load_if_exists=True,
        )
        if self.study.direction.name.lower() != self.direction:
            raise SearchFailed(
                f"hydra.sweeper.direction={self.direction}: study {self.study_name!r} in {self.storage} "
                f"{self.study.direction.name.lower()}s; give that direction, or another study_name"
            )
        todo, before = _continue(self.study, n_trials)
        self.study.sampler = reseed(self.study.sampler, before)
        log.info(f"Study {self.study_name!r} in {self.storage} ({'slots' if in_slots(self.launcher) else 'batches'})")
        try:
            (self._slots if in_slots(self.launcher) else self._batches)(todo)
        finally:
            self._write_csv()
        self._write_results()

    # --- launching ------------------------------------------------------------------------------

    def _batches(self, todo: int) -> None:
        while todo > 0:
            asked = [self._ask() for _ in range(min(self.n_jobs, todo))]
            returns = self.launcher.launch([o for _, o in asked], initial_job_idx=asked[0][0].number)
            for (trial, _), ret in zip(asked, returns):
                self._tell(trial, ret)
            todo -= len(asked)
            self._check_failures(final=True)

    def _slots(self, todo: int) -> None:
        left = {"trials": todo, "error": None, "stop": False}

        def slot() -> None:
            while True:
                with self.lock:
                    if left["trials"] <= 0 or left["stop"] or left["error"] is not None:
                        return
                    left["trials"] -= 1
                    trial, overrides = self._ask()
                try:
                    (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
                except BaseException as err:  # noqa: BLE001 - handed to the main thread, which raises it
                    with self.lock:
                        left["error"] = left["error"] or err
                    return
                with self.lock:
                    self._tell(trial, ret)
                    left["stop"] = self._check_failures(final=False)

        slots = min(self.n_jobs, todo)
        threads = [threading.Thread(target=slot, name=f"search-slot-{i}", daemon=True) for i in range(slots)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):  # joined with a timeout, so Ctrl-C reaches this thread
            time.sleep(0.2)
        if left["error"] is not None:
            raise left["error"]
        self._check_failures(final=True)

    def _ask(self) -> tuple[Any, list[str]]:
        """A new trial of the study (an enqueued one first) and its job's overrides."""
        from optuna.trial import TrialState

        trial = self.study.ask(self.space)
        try:
            values = trial_overrides(trial, self.custom, self.config)
        except Exception:
            self.study.tell(
                trial, state=TrialState.FAIL
            )  # the custom search space failed: no job, no trial left running
            raise
        overrides = [
            *self.fixed,
            *values,
            f"search.trial={trial.number}",
            as_override("search.storage", self.storage),
            as_override("search.study", self.study_name),
        ]
        return trial, overrides

    def _tell(self, trial: Any, ret: JobReturn) -> None:
        from optuna.trial import TrialState

        outcome, detail = job_outcome(ret)
        if outcome == "complete":
            self.study.tell(trial, detail, skip_if_finished=True)
        else:
            state = TrialState.PRUNED if outcome == "pruned" else TrialState.FAIL
            self.study.tell(trial, state=state, skip_if_finished=True)
        (log.warning if outcome == "fail" else log.info)(f"Trial {trial.number} {outcome}: {detail}")
        self.run_dirs[trial.number] = run_dir_of(ret) or self.run_dirs.get(trial.number, "")
        self.ended.append((outcome, detail))
        self._write_csv()

    def _check_failures(self, final: bool) -> bool:
        """Whether more than max_failure_rate of the last n_jobs trials to end failed (checked once that many
        ended, or at `final`); at `final` that ends the search (SearchFailed), else the caller stops launching."""
        recent = self.ended[-self.n_jobs :]
        if not recent or (len(recent) < self.n_jobs and not final):
            return False
        failed = [d for o, d in recent if o == "fail"]
        if len(failed) / len(recent) <= self.max_failure_rate:
            return False
        if final:
            raise SearchFailed(
                f"{len(failed)} of the last {len(recent)} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: {failed[-1]}; see {self.csv_path}"
            )
        return True

    # --- what the sweep folder holds ---------------------------------------------------------------

    def _write_results(self) -> None:
        """optimization_results.yaml: the best completed trial's values and objective (a pruned one never is)."""
        from omegaconf import OmegaConf
        from optuna.trial import TrialState

        from hw_hparams.runs.folder import atomic_write_bytes

        if not any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
            raise SearchFailed(f"no trial of the search completed; see {self.csv_path}")
        best = self.study.best_trial
        results = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value}
        atomic_write_bytes(self.results_path, OmegaConf.to_yaml(OmegaConf.create(results)).encode())
        log.info(f"Best trial {best.number}: {best.value} with {best.params} ({self.run_dirs.get(best.number, '')})")

    def _write_csv(self) -> None:
        """trials.csv: one row per trial of the study (its number, state, value, run folder, parameters)."""
        from hw_hparams.runs.folder import atomic_write_bytes

        trials = self.study.get_trials(deepcopy=False) if self.study is not None else []
        keys = sorted({k for t in trials for k in t.params})
        rows = [["trial", "state", "value", "run_dir", *keys]]
        for t in trials:
            value = "" if t.value is None else repr(t.value)
            params = [t.params.get(k, "") for k in keys]
            rows.append([t.number, t.state.name, value, self.run_dirs.get(t.number, ""), *params])
        atomic_write_bytes(self.csv_path, _csv_text(rows).encode())


def _csv_text(rows: list[list[Any]]) -> str:
    import io

    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _read_run_dirs(path: Path) -> dict[int, str]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {int(r["trial"]): r["run_dir"] for r in csv.DictReader(f) if r.get("run_dir")}


def _opened(storage: str) -> Any:
    """The study's storage (runs/trial.py's open_storage); one written by an older Optuna (hydra-optuna-sweeper's
    optuna 2.x) ends the search in one line saying how to upgrade it."""
    from hw_hparams.runs.trial import open_storage

    try:
        return open_storage(storage)
    except RuntimeError as err:
        if "optuna storage upgrade" not in str(err):
            raise
        raise SearchFailed(
            f"{storage} holds a study of an older Optuna (e.g. hydra-optuna-sweeper's optuna 2.x); "
            f"upgrade it in place with: optuna storage upgrade --storage {storage}"
        ) from None


def _continue(study: Any, n_trials: int) -> tuple[int, int]:
    """(trials still to run, trials the study held) for a study that may already hold trials; trials a
    previous command left running are marked failed and their values enqueued, to be asked again first."""
    from optuna.trial import TrialState

    interrupted = set(study.user_attrs.get(INTERRUPTED_ATTR, []))
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return n_trials, 0
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
