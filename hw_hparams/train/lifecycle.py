"""A run's life, from its command to its last line: accepted, locked, resumed, trained, recorded.

run folder checked and locked -> data (split, statistics) -> each run resumed from its checkpoint ->
parts that fit the device (sizing.py) -> the epoch loop (loop.py), which writes history.csv,
summary.json and a checkpoint after every epoch (runs/), and in a search reports each epoch to the
run's trial, whose pruner may stop it (runs/trial.py). The folder is named by the run's settings
(config/naming.py), so re-running the same setting, however it is spelled, resumes after the last
completed epoch, and a finished run is not trained again.

`run_group` trains several runs that agree on every shared key (config/roles.py: model, epochs,
batch size, data, device, numerics) as one fused network, each with its own folder, files, lock and
status; `run` is a group of one, and the fused launcher (hydra_plugins/hw_hparams_fused) hands
whole groups of a sweep to `run_group` through TrainJob.
"""

from __future__ import annotations

import contextlib
import logging
import os
from itertools import groupby
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hw_hparams.config import naming  # noqa: F401 - naming registers the resolvers that name run folders
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.roles import check_one_group
from hw_hparams.config.schema import as_dict, paths_from
from hw_hparams.data import load_splits
from hw_hparams.engine.device import pick_device
from hw_hparams.runs import checkpoint, objective, trial
from hw_hparams.runs.folder import (
    check_same_data,
    check_same_run,
    check_usable,
    is_finished,
    move_aside,
    read_summary,
    remove_temp_files,
    restart_or_refuse,
    utc_now,
    write_history,
    write_json,
)
from hw_hparams.runs.format import DATA_STATS, OLD
from hw_hparams.runs.interrupt import handle_signals
from hw_hparams.runs.lock import run_lock
from hw_hparams.runs.progress import final_line, shown
from hw_hparams.slurm.requeue import job as slurm_job
from hw_hparams.trackers import tracking
from hw_hparams.train.job import job_outcome, record
from hw_hparams.train.loop import Member, Outcome, eager_since, train_members
from hw_hparams.train.preflight import check_config
from hw_hparams.train.sizing import CPU, train_sized

log = logging.getLogger("hw_hparams.train")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume, or just report) the run of `cfg` in `run_dir`; returns its summary.

    Nothing is written into `run_dir` until the run is accepted: its folder holds no run of another
    config, no live process holds it (RunLocked otherwise), and the data is readable and the same.
    SIGINT/SIGTERM raise `Interrupted` (a KeyboardInterrupt) after summary.json says `interrupted`.
    """
    (outcome,) = run_group([Member(cfg, run_dir)])
    if outcome.error is not None:
        raise outcome.error
    return outcome.summary


def run_group(members: list[Member]) -> list[Outcome]:
    """Train the runs of `members` (equal in every shared key: config/roles.py, checked here) as one
    fused network; each one's outcome is its summary, or the exception that refused or ended it
    (a user error, a lock held elsewhere, a crash). Runs at different epochs train one epoch
    group after another; Ctrl-C / SIGTERM mark every unfinished run `interrupted` and propagate."""
    check_one_group([m.cfg for m in members])  # before anything is written: never run 0's value for every run
    with contextlib.ExitStack() as held:
        held.enter_context(handle_signals())
        accepted = [m for m in members if _accept(m, held)]
        if accepted:
            _train(accepted, held)
    return [m.outcome for m in members]


def _accept(m: Member, held: contextlib.ExitStack) -> bool:
    """Lock the run's folder and read what it holds; False (with `m.outcome` set) when it needs no training."""
    try:
        check_config(m.cfg)
        m.config = as_dict(m.cfg)
        check_usable(m.run_dir, m.config)
        m.run_dir.mkdir(parents=True, exist_ok=True)
        held.enter_context(run_lock(m.run_dir))
        remove_temp_files(m.run_dir)
        m.previous = read_summary(m.run_dir)
        if m.previous:
            check_same_run(m.run_dir, m.previous["config"], m.config)
            if is_finished(m.previous, need_test=bool(m.cfg.eval_test)) and not _forced(m):
                s = m.previous
                log.info(
                    "%s: run already %s after %d epochs; nothing to train (add trainer.restart=force to train "
                    "it again from epoch 1: its files are then kept in %sN/ inside it)",
                    m.run_dir,
                    s["status"],
                    s["epochs_completed"],
                    OLD,
                )
                m.outcome = Outcome(summary=s)
                return False
    except ConfigError as err:
        m.outcome = Outcome(error=err)
        return False
    return True


def _train(members: list[Member], held: contextlib.ExitStack) -> None:
    """Load the shared data, then resume and train the members, grouped by the epoch they are at."""
    cfg = members[0].cfg
    now = utc_now()  # the job takes the runs up (before their data loads), unless an earlier attempt did
    for m in members:
        m.started_at, m.finished_at = ((m.previous or {}).get(k) for k in ("started_at", "finished_at"))
        m.started_at = m.started_at or now
    try:
        device = pick_device(cfg.trainer.device)
        data = load_splits(cfg.data, device)
    except ConfigError as err:
        for m in members:
            m.outcome = Outcome(error=err)
        return
    ready = []
    for m in members:
        try:
            again = _forced(m)
            if not again:
                check_same_data(m.run_dir, data.stats, cfg.data.root)
                m.state = checkpoint.load(  # to the CPU: the group's build moves it to the device
                    m.run_dir, CPU, check=lambda saved, m=m: check_same_run(m.run_dir, saved, m.config)
                )
                # never silently over trained epochs: refused unless trainer.restart says to start again
                again = m.state is None and restart_or_refuse(m.run_dir, m.previous, _restart(m))
            moved = _start_again(m, now) if again else None
            held.enter_context(record(m.run_dir, m.cfg, m.hydra_cfg))  # accepted: from here on it writes
            if moved:
                log.warning("%s", moved, extra={"run": m.run_dir})
            write_json(m.run_dir / DATA_STATS, data.stats)
            if m.state is not None:
                m.rows, m.wall = checkpoint.progress(m.state)
                # The checkpoint is the record: a kill after its save can leave history.csv an epoch short,
                # and with no epoch left to train nothing else would write that row.
                write_history(m.run_dir, m.rows)
                log.info(
                    "%s: resuming after epoch %d of %d", m.run_dir, len(m.rows), m.cfg.epochs, extra={"run": m.run_dir}
                )
            m.tracker = held.enter_context(tracking(m.cfg, m.run_dir, m.config, m.hydra_cfg, len(m.rows)))
            m.trial = trial.of_job(m.cfg, _hydra_cfg(m))  # a search's trial: reported to after every epoch
            ready.append(m)
        except ConfigError as err:
            m.outcome = Outcome(error=err)
    for _, together in groupby(sorted(ready, key=_group_key), key=_group_key):
        train_sized(list(together), lambda part: train_members(part, data, device), device)


def _hydra_cfg(m: Member):
    """The Hydra config of the member's job: its own (fused launcher), else the current job's (None outside Hydra)."""
    if m.hydra_cfg is not None:
        return m.hydra_cfg
    return HydraConfig.get() if HydraConfig.initialized() else None


def _restart(m: Member) -> str:
    return str(m.cfg.trainer.restart).lower()  # false, true or force (Hydra reads true and false as bools)


def _forced(m: Member) -> bool:
    """`trainer.restart=force`, unless this is a later attempt of the SLURM job that restarted the run
    (a requeue runs the same command again: it resumes, never restarts twice)."""
    job, restarted_by = slurm_job(), ((m.previous or {}).get("slurm") or {}).get("job_id")
    return _restart(m) == "force" and not (job is not None and restarted_by == job["job_id"])


def _start_again(m: Member, now: str) -> str | None:
    """Make `m` train from epoch 1: its folder's files go to a new old-N/ inside it; the line that says
    where (None when the folder held nothing)."""
    old = move_aside(m.run_dir)
    was = f" ({m.previous['status']} after {m.previous['epochs_completed']} epochs)" if m.previous else ""
    m.previous, m.state, m.started_at, m.finished_at = None, None, now, None
    if old is None:
        return None
    return (
        f"{shown(m.run_dir)}: trainer.restart={_restart(m)}: training it again from epoch 1; "
        f"its earlier files{was} are in {shown(old)}"
    )


def _group_key(m: Member) -> tuple[int, str, str]:
    """Runs train as one network only at the same epoch, in the precision they started with, and compiled
    or eager as they were (loop.eager_since)."""
    return len(m.rows), checkpoint.precision(m.state) or "", eager_since(m) or ""


class TrainJob:
    """The training command's Hydra task: one job's run, ending in one line (`__call__`), or the runs
    of a whole fused group (`run_group`: hydra/launcher=fused hands it the jobs that share a network)."""

    run_group = staticmethod(run_group)

    def __call__(self, cfg: DictConfig) -> float | objective.NoObjective:
        """The run of `cfg` in the folder Hydra names for it; returns the run's objective (`cfg.objective`)
        for search sweepers, NoObjective when it has none (runs/objective.py)."""
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        shown_dir = run_dir
        if hydra_cfg.job.chdir:  # Hydra runs the job in its run folder: relative paths still mean where the command ran
            cfg = paths_from(cfg, hydra_cfg.runtime.cwd)
            shown_dir = Path(os.path.relpath(run_dir, hydra_cfg.runtime.cwd))
        with job_outcome(run_dir, multirun=hydra_cfg.mode == RunMode.MULTIRUN):
            summary = run(cfg, run_dir)
            log.info(final_line(shown_dir, summary))
            return objective.of_job(cfg, run_dir, summary)
