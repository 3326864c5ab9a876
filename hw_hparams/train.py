"""`python -m hw_hparams.train [overrides]`: train one setting of the study into its run folder.

run folder -> seed -> data (split, statistics) -> model -> optimizer and schedule -> steps ->
resume -> epoch loop -> history.csv / summary.json / checkpoint (run_folder.py owns the files).
The folder is named by the run's settings (naming.py), so re-running the same setting, however it is
spelled, resumes after the last completed epoch, and a finished run is not trained again.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import checkpoint, naming  # naming: the resolvers that name run folders
from .cli import normalize_argv, preflight
from .config import as_dict, flag, validate
from .data import Normalize, load_study_data
from .device import pick_device
from .engine import EpochMetrics
from .interrupt import deferred, handle_signals, signal_name
from .jobs import exit_interrupted, job_outcome, record
from .lock import run_lock
from .models import build_model
from .optim import build_optimizer, build_scheduler
from .progress import epoch_bar, final_line
from .run_folder import (
    DATA_STATS, check_same_data, check_same_run, check_usable, is_finished, read_summary, remove_temp_files,
    restart_or_refuse, summary, write_history, write_json, write_summary,
)
from .steps import Runner, evaluate, prepare, resolve_settings, train_epoch

log = logging.getLogger("hw_hparams.train")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume, or just report) the run of `cfg` in `run_dir`; returns its summary.

    Nothing is written into `run_dir` until the run is accepted: its folder holds no run of another
    config, no live process holds it (RunLocked otherwise), and the data is readable and the same.
    SIGINT/SIGTERM raise `Interrupted` (a KeyboardInterrupt) after summary.json says `interrupted`.
    """
    validate(cfg)
    config = as_dict(cfg)
    check_usable(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir), handle_signals():
        remove_temp_files(run_dir)
        return _run(cfg, config, run_dir)


def _run(cfg: DictConfig, config: dict, run_dir: Path) -> dict:
    # folder: a finished run is reported, not trained again
    previous = read_summary(run_dir)
    if previous:
        check_same_run(run_dir, previous["config"], config)
        test_missing = cfg.eval_test and previous["status"] == "completed" and previous["test"] is None
        if is_finished(previous) and not test_missing:
            log.info("%s: run already %s after %d epochs; nothing to train", run_dir, previous["status"], previous["epochs_completed"])
            return previous
    device = pick_device(cfg.trainer.device)
    # seed, then data (split, statistics) on the device
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = load_study_data(cfg.data, device)
    check_same_data(run_dir, data.stats, cfg.data.root)
    with record(run_dir, cfg):  # accepted: from here on the run writes into its folder
        write_json(run_dir / DATA_STATS, data.stats)
        return _train(cfg, config, run_dir, device, data, previous)


def _train(cfg: DictConfig, config: dict, run_dir: Path, device: torch.device, data, previous: dict | None) -> dict:
    normalize = Normalize(data.stats["mean"], data.stats["std"], device)
    settings = resolve_settings(cfg.trainer, device, cfg.model.name)  # compile, precision, layout per device
    model = build_model(cfg.model.name, device, settings.channels_last)
    optimizer = build_optimizer(model, cfg.optim, fused=settings.fused_sgd)
    scheduler = build_scheduler(optimizer, cfg.schedule.name, cfg.epochs)
    runner = Runner(model, optimizer, normalize, settings, cfg.batch_size, cfg.augmentation.crop_flip, cfg.augmentation.mixup_alpha)
    # resume: the checkpoint is the source of truth
    rows: list[dict] = []
    wall = 0.0
    state = checkpoint.load(run_dir, device, check=lambda s: check_same_run(run_dir, s["config"], config))
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_states(state["rng"])
        rows, wall = state["history"], state["wall_time_s"]
        write_history(run_dir, rows)
        log.info("%s: resuming after epoch %d of %d", run_dir, len(rows), cfg.epochs)
    else:
        restart_or_refuse(run_dir, previous, cfg.trainer.restart)  # never silently over trained epochs
        previous = None

    def write_status(status: str, test: dict | None = None, message: str | None = None) -> dict:
        s = summary(status, rows, cfg.epochs, config, str(device), wall, len(data.train), test, message)
        write_summary(run_dir, s)
        return s

    if previous and previous["status"] == "completed" and len(rows) == cfg.epochs:  # only the test evaluation was missing
        return _evaluate_test(runner, data.test, write_status)

    # the epoch loop
    write_status("running")
    make_bar = epoch_bar(cfg.trainer.progress)
    batches = math.ceil(len(data.train) / cfg.batch_size)
    started = time.perf_counter()
    try:
        prepare(runner, data.train, data.val)  # compile/capture once, outside the epochs' times
        for epoch in range(len(rows) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            bar = make_bar(epoch, cfg.epochs, batches) if make_bar else None
            try:
                train = train_epoch(runner, data.train, bar)
            finally:
                if bar is not None:
                    bar.close()
            if not math.isfinite(train.loss):
                rows.append(_row(epoch, lr, train, EpochMetrics(math.nan, math.nan, 0), time.perf_counter() - t0))
                write_history(run_dir, rows)
                log.error("epoch %d: training loss is %s at lr %g; run diverged, stopping", epoch, train.loss, lr)
                return write_status("diverged", message=f"non-finite training loss in epoch {epoch}")
            val = evaluate(runner, data.val)
            scheduler.step()
            with deferred():  # a signal waits until the epoch's checkpoint and files are all written
                row = _row(epoch, lr, train, val, time.perf_counter() - t0)
                wall += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint.save(run_dir, {
                    "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": checkpoint.rng_states(),
                    "history": [*rows, row], "config": config, "wall_time_s": wall,
                })
                rows.append(row)  # only once its checkpoint is on disk (a full disk fails the save)
                write_history(run_dir, rows)
                write_status("running")
            r = rows[-1]
            log.info(
                "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  %.1fs",
                epoch, cfg.epochs, lr, r["train_loss"], 100 * r["train_acc"], r["val_loss"], 100 * r["val_acc"], r["epoch_time_s"],
            )
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the epoch in progress is abandoned
        line = f"interrupted by {signal_name(err)} after epoch {len(rows)} of {cfg.epochs}; re-run the same command to resume"
        with deferred():
            write_status("interrupted", message=line)
            log.error(line)
        err.reported = True
        raise
    except Exception as err:
        write_status("failed", message=f"{type(err).__name__}: {err}")
        raise
    if cfg.eval_test:
        return _evaluate_test(runner, data.test, write_status)
    return write_status("completed")


def _row(epoch: int, lr: float, train: EpochMetrics, val: EpochMetrics, seconds: float) -> dict:
    return {
        "epoch": epoch, "lr": float(lr), "train_loss": train.loss, "train_acc": train.acc,
        "val_loss": val.loss, "val_acc": val.acc, "epoch_time_s": seconds,
    }


def _evaluate_test(runner, test_split, write_status) -> dict:
    """The test split, once, after the last epoch (only with eval_test=true)."""
    test = evaluate(runner, test_split)
    log.info("test loss %.4f acc %.2f%%", test.loss, 100 * test.acc)
    return write_status("completed", test={"loss": test.loss, "acc": test.acc})


@hydra.main(config_path="pkg://hw_hparams.conf", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    with job_outcome(run_dir, multirun=hydra_cfg.mode == RunMode.MULTIRUN):
        log.info(final_line(run_dir, run(cfg, run_dir)))


def main() -> None:
    """Console entry: check the command line in one line per error, then hand it to Hydra."""
    sys.argv[1:] = normalize_argv(sys.argv[1:])
    preflight(naming.CONFIG_NAME, sys.argv[1:])
    try:
        _hydra_main()
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: one line, exit 130 / 143
        exit_interrupted(err)


if __name__ == "__main__":
    main()
