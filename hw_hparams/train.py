"""`python -m hw_hparams.train [overrides]`: train one setting of the study into its run folder.

config -> data (split, stats, augmentation) -> model -> optimizer and schedule -> epoch loop ->
history.csv / summary.json / checkpoint. Re-running the same command resumes after the last
completed epoch; a finished run is not trained again.
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

from . import checkpoint
from .cli import plain_experiment, preflight
from .config import JOB_DEVICE, ConfigError, as_dict, flag, validate
from .data import Normalize, load_study_data
from .engine import EpochMetrics
from .fastpath import build_runner, evaluate, prepare, train_epoch
from .optim import build_scheduler
from .interrupt import deferred, handle_signals, stop_reason
from .jobs import exit_interrupted, job_outcome
from .lock import run_lock
from .resume import previous_summary, restart_or_refuse
from .run_files import read_json, remove_temp_files, summary, write_history, write_json
from .slurm import register_launcher

log = logging.getLogger("hw_hparams.train")

# Keys that may differ between the run that wrote a checkpoint and the one resuming it.
# trainer.compile changes float rounding only, so a run may continue on a machine without a GPU.
RESUMABLE_DIFFERENCES = {
    "eval_test", "experiment_name", "data.root", "data.download", "trainer.device", "trainer.progress",
    "trainer.num_workers", "trainer.restart", "trainer.compile",
}


def gpu_for_job(job_num: int, jobs_per_gpu: int, n_gpus: int) -> int:
    """GPU index of sweep job `job_num`: consecutive groups of `jobs_per_gpu` jobs, round robin over `n_gpus`."""
    return (job_num // jobs_per_gpu) % n_gpus


def _job_num() -> int:
    """This process's Hydra job number (0 outside a sweep)."""
    if not HydraConfig.initialized():
        return 0
    job = HydraConfig.get().job
    return 0 if OmegaConf.is_missing(job, "num") else int(job.num)


def pick_device(name: str) -> torch.device:
    """`trainer.device`: auto = CUDA when present, else the CPU; cuda:job[/K] = GPU (job number // K) mod GPUs."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} is not allowed here: no CUDA device; use auto or cpu")
    per_job = JOB_DEVICE.match(name)
    if per_job:
        return torch.device("cuda", gpu_for_job(_job_num(), int(per_job[1] or 1), torch.cuda.device_count()))
    return torch.device(name)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_same_run(stored: dict, config: dict, run_dir: Path) -> None:
    """Refuse to continue a run folder that holds a run of another configuration."""
    old, new = _flat(stored), _flat(config)
    diff = sorted(k for k in old.keys() | new.keys() if k not in RESUMABLE_DIFFERENCES and old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise ConfigError(
            f"{run_dir} holds a run with {k}={old.get(k)!r}, not {new.get(k)!r}: "
            f"pick another folder (hydra.run.dir=...) or move that one away"
        )


def _progress(setting: str):
    """A tqdm bar over an epoch's batches when `trainer.progress` says so (auto: on a terminal)."""
    if not flag(setting, sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return lambda it: tqdm(it, leave=False, unit="batch", dynamic_ncols=True)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume, or just report) the run of `cfg` in `run_dir`; returns its summary.

    One process at a time per folder (RunLocked otherwise); SIGINT/SIGTERM raise `Interrupted`
    (a KeyboardInterrupt) after summary.json says `interrupted`; a killed run's temporary files go.
    """
    validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir), handle_signals():
        remove_temp_files(run_dir)
        return _run(cfg, run_dir)


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    config = as_dict(cfg)
    device = pick_device(cfg.trainer.device)
    summary_path = run_dir / "summary.json"
    previous = previous_summary(run_dir)
    if previous:
        check_same_run(previous["config"], config, run_dir)
        if previous["status"] in ("completed", "diverged") and not (cfg.eval_test and previous["status"] == "completed" and previous["test"] is None):
            log.info("%s: run already %s after %d epochs; nothing to train", run_dir, previous["status"], previous["epochs_completed"])
            return previous

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = load_study_data(cfg.data, device)
    stats_path = run_dir / "data_stats.json"
    if stats_path.exists():
        old = read_json(stats_path)
        if (old["sizes"], old["mean"]) != (data.stats["sizes"], data.stats["mean"]):
            raise ConfigError(f"data.root={cfg.data.root!r} holds other data than the run in {run_dir} was trained on")
    write_json(stats_path, data.stats)
    normalize = Normalize(data.stats["mean"], data.stats["std"], device)

    runner = build_runner(cfg, device, normalize)  # model, optimizer, steps per trainer.compile/precision
    model, optimizer = runner.model, runner.optimizer
    scheduler = build_scheduler(optimizer, cfg.schedule.name, cfg.epochs)
    rows: list[dict] = []
    wall = 0.0
    state = checkpoint.load(run_dir, device, check=lambda s: check_same_run(s["config"], config, run_dir))
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_states(state["rng"])
        rows, wall = state["history"], state["wall_time_s"]
        write_history(run_dir / "history.csv", rows)  # the checkpoint is the source of truth
        log.info("%s: resuming after epoch %d of %d", run_dir, len(rows), cfg.epochs)
    else:
        restart_or_refuse(run_dir, previous, cfg.trainer.restart)  # never silently over trained epochs
        previous = None

    def write_summary(status: str, test: dict | None = None, message: str | None = None) -> dict:
        s = summary(status, rows, cfg.epochs, config, str(device), wall, len(data.train), test, message)
        write_json(summary_path, s)
        return s

    if previous and previous["status"] == "completed" and len(rows) == cfg.epochs:  # only the test evaluation was missing
        return _evaluate_test(runner, data.test, write_summary)

    write_summary("running")
    progress = _progress(cfg.trainer.progress)
    started = time.perf_counter()
    try:
        prepare(runner, data.train, data.val)  # compile/capture once, outside the epochs' times
        for epoch in range(len(rows) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train = train_epoch(runner, data.train, progress)
            if not math.isfinite(train.loss):
                rows.append(_row(epoch, lr, train, EpochMetrics(math.nan, math.nan, 0), time.perf_counter() - t0))
                write_history(run_dir / "history.csv", rows)
                log.error("epoch %d: training loss is %s at lr %g; run diverged, stopping", epoch, train.loss, lr)
                return write_summary("diverged", message=f"non-finite training loss in epoch {epoch}")
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
                write_history(run_dir / "history.csv", rows)
                write_summary("running")
            r = rows[-1]
            log.info(
                "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  %.1fs",
                epoch, cfg.epochs, lr, r["train_loss"], 100 * r["train_acc"], r["val_loss"], 100 * r["val_acc"], r["epoch_time_s"],
            )
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SLURM's requeue signal: the epoch in progress is abandoned
        status, line = stop_reason(err, len(rows), cfg.epochs)  # interrupted, or requeued (slurm/requeue.py)
        with deferred():
            write_summary(status, message=line)
            log.error(line)
        err.reported = True
        raise
    except Exception as err:
        write_summary("failed", message=f"{type(err).__name__}: {err}")
        raise
    if cfg.eval_test:
        return _evaluate_test(runner, data.test, write_summary)
    return write_summary("completed")


def _row(epoch: int, lr: float, train: EpochMetrics, val: EpochMetrics, seconds: float) -> dict:
    return {
        "epoch": epoch, "lr": float(lr), "train_loss": train.loss, "train_acc": train.acc,
        "val_loss": val.loss, "val_acc": val.acc, "epoch_time_s": seconds,
    }


def _evaluate_test(runner, test_split, write_summary) -> dict:
    """The test split, once, after the last epoch (only with eval_test=true)."""
    test = evaluate(runner, test_split)
    log.info("test loss %.4f acc %.2f%%", test.loss, 100 * test.acc)
    return write_summary("completed", test={"loss": test.loss, "acc": test.acc})


@hydra.main(config_path="pkg://hw_hparams.conf", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    with job_outcome(run_dir, multirun=hydra_cfg.mode == RunMode.MULTIRUN):
        run(cfg, run_dir)


def main() -> None:
    """Console entry: check the command line in one line per error, then hand it to Hydra."""
    sys.argv[1:] = plain_experiment(sys.argv[1:])
    preflight("train", sys.argv[1:])
    register_launcher()  # hydra/launcher=slurm's class (hw_hparams/slurm/__init__.py)
    try:
        _hydra_main()
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: one line, exit 130 / 143
        exit_interrupted(err)


if __name__ == "__main__":
    main()
