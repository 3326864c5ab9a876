"""The epoch loop of a group of runs trained as one fused network (a single run is a group of one).

resume each run from its own checkpoint -> fuse -> for each epoch: every run's learning rate, one
training pass and one validation pass for all -> for each run: its history row, checkpoint, summary
and log line -> the test split for the runs that ask for it. Each run's files are exactly those it
would have alone (run_folder.py). A run that diverges is stopped and marked `diverged` while the
others go on (its copy in the network cannot touch theirs: fusion.py).
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
from hw_hparams.engine.group import Group, build_group, evaluate, prepare, resolve_settings, run_spec, train_epoch
from hw_hparams.engine.optim import lr_at
from hw_hparams.engine.step import EpochMetrics
from hw_hparams.runs import checkpoint
from hw_hparams.runs.folder import summary, utc_now, write_history, write_summary
from hw_hparams.runs.format import FINISHED, HISTORY_COLUMNS
from hw_hparams.runs.interrupt import deferred, stop_reason
from hw_hparams.runs.progress import epoch_bar
from hw_hparams.trackers import NONE, Trackers

log = logging.getLogger("hw_hparams.train")


@dataclass
class Member:
    """One run of a group: its config and folder, and what it has trained so far."""

    cfg: DictConfig
    run_dir: Path
    hydra_cfg: Optional[DictConfig] = None  # its Hydra job config, for its record (None: the current one)
    config: dict = field(default_factory=dict)  # the resolved config
    previous: Optional[dict] = None  # summary.json as found
    state: Optional[dict] = None  # the checkpoint it resumes from
    rows: list = field(default_factory=list)
    wall: float = 0.0
    result: Any = None  # its final summary, or the exception that ended it
    device: str = ""
    train_images: int = 0
    started_at: Optional[str] = None  # when a job first took it up (kept over resumes), ISO 8601 UTC
    finished_at: Optional[str] = None  # when it completed or diverged
    tracker: Trackers = NONE  # its trackers (trackers/): they log what its files say, when they say it
    compile: Any = None  # its group's compile_guard.CompileRecord, once it trains

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def label(self) -> str:
        return self.run_dir.name

    def write(self, status: str, test: Optional[dict] = None, message: Optional[str] = None) -> dict:
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

    def log(self, level: int, fmt: str, *args: Any, many: bool = False) -> None:
        """A line for this run's train.log (and the console, named by the run when a group has several)."""
        log.log(
            level, ("%s: " + fmt) if many else fmt, *((self.label,) if many else ()), *args, extra={"run": self.run_dir}
        )


def _row(epoch: int, lr: float, train: EpochMetrics, val: EpochMetrics, seconds: float) -> dict:
    """One history row: the values in run_folder.HISTORY_COLUMNS' order (the one list of its columns)."""
    values = (epoch, float(lr), train.loss, train.acc, val.loss, val.acc, seconds)
    return dict(zip(HISTORY_COLUMNS, values, strict=True))


def train_members(members: list[Member], data: Splits, device: torch.device) -> None:
    """Train (or finish) `members`, all at the same epoch, as one fused network; sets each `result`.
    The shared keys (roles.py) are read from the first member's config, each run's own from its RunSpec."""
    cfg = members[0].cfg
    normalize = Normalize(data.stats["mean"], data.stats["std"], device)
    kept = checkpoint.precision(members[0].state)  # the precision the runs started with (train.py groups by it)
    settings = resolve_settings(cfg.trainer, device, cfg.model.name, precision=kept)
    group = build_group(cfg.model.name, [run_spec(m.cfg) for m in members], device, normalize, settings, cfg.batch_size)
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
    many = len(members) > 1
    done = len(members[0].rows)
    make_bar = epoch_bar(cfg.trainer.progress)
    batches = math.ceil(len(data.train) / cfg.batch_size)
    live = [m for m in members if len(m.rows) < cfg.epochs]
    for m in live:
        m.started_at, m.finished_at = m.started_at or utc_now(), None
        m.write("running")
    started = time.perf_counter()
    try:
        if live:
            prepare(group, data.train, data.val)  # compile/capture once, outside the epochs' times
        for epoch in range(done + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lrs = [
                lr_at(r.schedule, r.lr, epoch - 1, cfg.epochs) if not m.done else 0.0
                for m, r in zip(members, group.runs)
            ]
            group.optimizer.set_lr(lrs)
            bar = make_bar(epoch, cfg.epochs, batches) if make_bar else None
            try:
                trained = train_epoch(group, data.train, bar)
            finally:
                if bar is not None:
                    bar.close()
            for m, lr, t in zip(members, lrs, trained):
                if not m.done and not math.isfinite(t.loss):
                    m.rows.append(_row(epoch, lr, t, EpochMetrics(math.nan, math.nan, 0), time.perf_counter() - t0))
                    write_history(m.run_dir, m.rows)
                    m.log(
                        logging.ERROR,
                        "epoch %d: training loss is %s at lr %g; run diverged, stopping",
                        epoch,
                        t.loss,
                        lr,
                        many=many,
                    )
                    m.result = m.write("diverged", message=f"non-finite training loss in epoch {epoch}")
            if all(m.done for m in members):
                return
            validated = evaluate(group, data.val)
            with deferred():  # a signal waits until the epoch's checkpoints and files are all written
                seconds = time.perf_counter() - t0
                elapsed, started = time.perf_counter() - started, time.perf_counter()
                for i, (m, lr, t, v) in enumerate(zip(members, lrs, trained, validated)):
                    if m.done:
                        continue
                    row = _row(epoch, lr, t, v, seconds)
                    checkpoint.save(m.run_dir, checkpoint.make(group, i, [*m.rows, row], m.config, m.wall + elapsed))
                    m.rows.append(row)  # only once its checkpoint is on disk (a full disk fails the save)
                    m.wall += elapsed
                    write_history(m.run_dir, m.rows)
                    m.write("running")
            for m, lr in zip(members, lrs):
                if not m.done:
                    r = m.rows[-1]
                    m.log(
                        logging.INFO,
                        "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  %.1fs",
                        epoch,
                        cfg.epochs,
                        lr,
                        r["train_loss"],
                        100 * r["train_acc"],
                        r["val_loss"],
                        100 * r["val_acc"],
                        r["epoch_time_s"],
                        many=many,
                    )
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SLURM's requeue signal: every run abandons the epoch
        with deferred():
            for m in members:
                if not m.done:
                    status, line = stop_reason(
                        err, len(m.rows), cfg.epochs
                    )  # interrupted, or requeued (slurm/requeue.py)
                    m.result = m.write(status, message=line)
                    m.log(logging.ERROR, "%s", line, many=many)
        err.reported = True
        raise
    except Exception as err:
        for m in members:
            if not m.done:
                m.result = m.write("failed", message=f"{type(err).__name__}: {err}")
        raise
    _finish(members, group, data)


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
        m.result = m.write("completed", test=test)
