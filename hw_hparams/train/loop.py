"""The epoch loop of a group of runs trained as one fused network (a single run is a group of one).

build the group, each run resumed from its own checkpoint -> for each epoch: every run's learning
rate, one training pass for all, runs whose loss is not finite stopped as `diverged`, one validation
pass, then each run's history row, checkpoint, summary and log line; a run of a search reports the
epoch's objective to its trial, and one its pruner stops ends as `pruned` and leaves the group,
which goes on as a group of the others, each from its state at that epoch's end (as from its
checkpoint: `_without_pruned`) -> the test split for the runs that ask for it. Each run's files are
exactly those it would have alone (runs/folder.py); a diverged run's copy in the network cannot
touch the others' (engine/fusion.py), so they go on. Ctrl-C,
SIGTERM or SLURM's requeue signal abandon the epoch in flight and mark every unfinished run
interrupted (or requeued); an error marks them failed.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from hw_hparams.data import Normalize, Splits
from hw_hparams.engine import gpu
from hw_hparams.engine.compile_guard import CompileRecord
from hw_hparams.engine.group import Group, build_group, evaluate, prepare, resolve_settings, run_spec, train_epoch
from hw_hparams.engine.optim import lr_at
from hw_hparams.engine.step import EpochMetrics
from hw_hparams.runs import checkpoint
from hw_hparams.runs.folder import summary, utc_now, write_history, write_summary
from hw_hparams.runs.format import COMPLETED, DIVERGED, FAILED, FINISHED, HISTORY_COLUMNS, PRUNED, RUNNING
from hw_hparams.runs.interrupt import Interrupted, deferred, stop_reason
from hw_hparams.runs.progress import epoch_bar
from hw_hparams.runs.trial import Trial
from hw_hparams.trackers import NONE, Trackers

log = logging.getLogger("hw_hparams.train")


@dataclass(frozen=True)
class Outcome:
    """How a run's job ended: its summary.json (trained now, or found finished), or the error that refused
    or ended it (a user error, a lock held elsewhere, a crash)."""

    summary: Optional[dict] = None
    error: Optional[BaseException] = None


@dataclass
class Member:
    """One run of a group: its config and folder, what it has trained so far, and how it ended."""

    cfg: DictConfig
    run_dir: Path
    hydra_cfg: Optional[DictConfig] = None  # its Hydra job config, for its record (None: the current one)
    config: dict = field(default_factory=dict)  # the resolved config
    previous: Optional[dict] = None  # summary.json as found
    state: Optional[dict] = None  # the checkpoint it resumes from
    rows: list = field(default_factory=list)  # history.csv's rows so far
    wall: float = 0.0  # seconds trained so far
    outcome: Optional[Outcome] = None  # set once the run has ended (or was refused)
    device: str = ""
    train_images: int = 0
    started_at: Optional[str] = None  # when a job first took it up (kept over resumes), ISO 8601 UTC
    finished_at: Optional[str] = None  # when it completed or diverged
    tracker: Trackers = NONE  # its trackers (trackers/): they log what its files say, when they say it
    compile: Optional[CompileRecord] = None  # its group's, once it trains
    trial: Optional[Trial] = None  # its trial, when a search runs it (runs/trial.py)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def label(self) -> str:
        return self.run_dir.name

    def write(self, status: str, test: Optional[dict] = None, message: Optional[str] = None) -> dict:
        """summary.json (and the trackers) with `status`; returns the summary."""
        if status in FINISHED and self.finished_at is None:
            self.finished_at = utc_now()
        s = summary(
            status,
            self.rows,
            self.cfg.epochs,
            self.config,
            self.device,
            self.wall,
            self.train_images,
            test,
            message,
            compile=self.compile.as_dict() if self.compile is not None else None,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )
        write_summary(self.run_dir, s)
        self.tracker.update(self.rows, s)
        return s

    def end(self, status: str, test: Optional[dict] = None, message: Optional[str] = None) -> None:
        """The run ends with `status`: its summary written, its outcome set."""
        self.outcome = Outcome(summary=self.write(status, test, message))

    def log(self, level: int, fmt: str, *args: Any, many: bool = False) -> None:
        """A line for this run's train.log (and the console, named by the run when a group has several)."""
        log.log(
            level, ("%s: " + fmt) if many else fmt, *((self.label,) if many else ()), *args, extra={"run": self.run_dir}
        )


def _row(epoch: int, lr: float, train: EpochMetrics, val: EpochMetrics, seconds: float) -> dict:
    """One history row, in runs/format.py's HISTORY_COLUMNS order."""
    values = (epoch, float(lr), train.loss, train.acc, val.loss, val.acc, seconds)
    return dict(zip(HISTORY_COLUMNS, values, strict=True))


def train_members(members: list[Member], data: Splits, device: torch.device) -> None:
    """Train (or finish) `members`, all at the same epoch, as one fused network; sets each `outcome`.
    The shared keys (config/roles.py) are read from the first member's config, each run's own from its RunSpec."""
    cfg = members[0].cfg
    group = _resume(members, data, device)
    live = [m for m in members if len(m.rows) < cfg.epochs]
    for m in live:
        m.started_at, m.finished_at = m.started_at or utc_now(), None
        m.write(RUNNING)
    batches = math.ceil(len(data.train) / cfg.batch_size)
    clock = time.perf_counter()  # wall time is counted from here to each epoch's end
    try:
        if live:
            prepare(group, data.train, data.val)  # compile/capture once, outside the epochs' times
        for epoch in range(len(members[0].rows) + 1, cfg.epochs + 1):
            start = time.perf_counter()
            lrs = [
                0.0 if m.done else lr_at(r.schedule, r.lr, epoch - 1, cfg.epochs) for m, r in zip(members, group.runs)
            ]
            group.optimizer.set_lr(lrs)
            with epoch_bar(cfg.trainer.progress, epoch, cfg.epochs, batches) as bar:
                trained = train_epoch(group, data.train, bar)
            _stop_diverged(members, epoch, lrs, trained, time.perf_counter() - start)
            if all(m.done for m in members):
                return
            validated = evaluate(group, data.val)
            with deferred():  # a signal waits until the epoch's checkpoints and files are all written
                seconds, elapsed, clock = time.perf_counter() - start, time.perf_counter() - clock, time.perf_counter()
                rows = [_row(epoch, lr, t, v, seconds) for lr, t, v in zip(lrs, trained, validated)]
                _record(group, members, rows, elapsed)
                pruned = _prune(members, epoch)
            if all(m.done for m in members):
                return
            if pruned:  # the pruned runs leave the network; the others go on as a smaller group
                members = _leave_group(members, group)
                del group  # the larger network's memory is free before the smaller one is built
                group = _resume(members, data, device)
                prepare(group, data.train, data.val)  # outside the epochs' times, as the first group's
                clock = time.perf_counter()
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SLURM's requeue signal: every run abandons the epoch
        _interrupted(members, err)
        raise
    except Exception as err:
        for m in members:
            if not m.done:
                m.end(FAILED, message=f"{type(err).__name__}: {err}")
        gpu.check_usable(err, device)  # a CUDA error that left the GPU unusable ends the job (resumable)
        raise
    _finish(members, group, data)


def _resume(members: list[Member], data: Splits, device: torch.device) -> Group:
    """The group of `members`' runs, each in its precision and from its own checkpoint (or fresh)."""
    cfg = members[0].cfg
    normalize = Normalize(data.stats["mean"], data.stats["std"], device)
    kept = checkpoint.precision(members[0].state)  # the precision the runs started with (lifecycle groups by it)
    eager = eager_since(members[0])  # lifecycle groups by it too
    settings = resolve_settings(
        cfg.trainer, device, cfg.model.name, precision=kept, **({"compile": False} if eager else {})
    )
    group = build_group(cfg.model.name, [run_spec(m.cfg) for m in members], device, normalize, settings, cfg.batch_size)
    group.record.fallback = eager
    for i, m in enumerate(members):
        m.device, m.train_images, m.compile = str(device), len(data.train), group.record
        if m.state is not None and not checkpoint.restore(group, i, m.state):
            m.log(
                logging.WARNING,
                "resumed on %s from a checkpoint made on another device type: its dropout masks come "
                "from a fresh stream from here on (every other draw continues exactly)",
                device.type,
                many=len(members) > 1,
            )
    return group


def eager_since(m: Member) -> Optional[str]:
    """Why a run under trainer.compile=auto trains eagerly since an earlier process (its compile record's
    fallback: a run's numbers are eager or compiled from epoch 1, never a mix), or None."""
    record = (m.previous or {}).get("compile") or {}
    if str(m.cfg.trainer.compile).lower() != "auto" or record.get("compiled", True):
        return None
    return record.get("fallback")


def _stop_diverged(members: list[Member], epoch: int, lrs: list[float], trained: list[EpochMetrics], s: float) -> None:
    """A run whose training loss is not finite stops as `diverged`, its last row with NaN validation figures."""
    for m, lr, t in zip(members, lrs, trained):
        if m.done or math.isfinite(t.loss):
            continue
        m.rows.append(_row(epoch, lr, t, EpochMetrics(math.nan, math.nan, 0), s))
        write_history(m.run_dir, m.rows)
        m.log(
            logging.ERROR,
            "epoch %d: training loss is %s at lr %g; run diverged, stopping",
            epoch,
            t.loss,
            lr,
            many=len(members) > 1,
        )
        m.end(DIVERGED, message=f"non-finite training loss in epoch {epoch}")


def _record(group: Group, members: list[Member], rows: list[dict], elapsed: float) -> None:
    """Each live run's epoch: its checkpoint, then its history row, summary and log line."""
    for i, (m, row) in enumerate(zip(members, rows)):
        if m.done:
            continue
        checkpoint.save(m.run_dir, checkpoint.make(group, i, [*m.rows, row], m.config, m.wall + elapsed))
        m.rows.append(row)  # only once its checkpoint is on disk (a full disk fails the save)
        m.wall += elapsed
        write_history(m.run_dir, m.rows)
        m.write(RUNNING)
    for m, r in zip(members, rows):
        if not m.done:
            m.log(
                logging.INFO,
                "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  %.1fs",
                r["epoch"],
                m.cfg.epochs,
                r["lr"],
                r["train_loss"],
                100 * r["train_acc"],
                r["val_loss"],
                100 * r["val_acc"],
                r["epoch_time_s"],
                many=len(members) > 1,
            )


def _prune(members: list[Member], epoch: int) -> bool:
    """Each live run of a search reports the epoch to its trial; before its last epoch, one its study's
    pruner stops ends as `pruned`. Whether any did."""
    pruned = False
    for m in members:
        if m.done or m.trial is None:
            continue
        m.trial.report(m.rows)
        if epoch < m.cfg.epochs and m.trial.should_prune():
            line = f"pruned by the search after epoch {epoch} of {m.cfg.epochs} (trial {m.trial.number})"
            m.end(PRUNED, message=line)
            m.log(logging.INFO, "%s", line, many=len(members) > 1)
            pruned = True
    return pruned


def _leave_group(members: list[Member], group: Group) -> list[Member]:
    """The runs still training, each holding its state at this epoch's end (`state`: its checkpoint, made
    in memory), so that a group of them alone resumes each exactly where it is (`_resume`): pruned runs
    leave the fused network at the epoch boundary and the others go on as a smaller group."""
    live = [m for m in members if not m.done]
    for i, m in enumerate(members):
        if not m.done:
            m.state = checkpoint.make(group, i, m.rows, m.config, m.wall)
    log.info("%d run(s) left the fused group; it goes on with %d", len(members) - len(live), len(live))
    return live


def _interrupted(members: list[Member], err: KeyboardInterrupt) -> None:
    """Every unfinished run stopped by a signal: `interrupted` (or `requeued` by SLURM), in one line each."""
    with deferred():
        for m in members:
            if not m.done:
                status, line = stop_reason(err, len(m.rows), m.cfg.epochs)  # interrupted, or requeued (slurm/)
                m.end(status, message=line)
                m.log(logging.ERROR, "%s", line, many=len(members) > 1)
    if isinstance(err, Interrupted):
        err.reported = True  # each run said so: no second line for the command


def _finish(members: list[Member], group: Group, data: Splits) -> None:
    """Completed: the test split, once, for the runs that ask for it (eval_test=true), after their last epoch."""
    testing = [m for m in members if not m.done and m.cfg.eval_test]
    tested = evaluate(group, data.test) if testing else [None] * len(members)
    for m, t in zip(members, tested):
        if m.done:
            continue
        test = {"loss": t.loss, "acc": t.acc} if m.cfg.eval_test else None
        if test is not None:
            m.log(logging.INFO, "test loss %.4f acc %.2f%%", t.loss, 100 * t.acc, many=len(members) > 1)
        m.end(COMPLETED, test=test)
