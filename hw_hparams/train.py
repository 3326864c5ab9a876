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
from omegaconf import DictConfig

from . import checkpoint
from .cli import exit_on_user_error, preflight
from .config import ConfigError, as_dict, flag, validate
from .data import Normalize, load_study_data
from .engine import EpochMetrics, evaluate, train_epoch
from .models import build_model
from .optim import build_optimizer, build_scheduler
from .run_files import read_json, summary, write_history, write_json

log = logging.getLogger("hw_hparams.train")

# Keys that may differ between the run that wrote a checkpoint and the one resuming it.
RESUMABLE_DIFFERENCES = {"eval_test", "experiment_name", "data.root", "data.download", "trainer.device", "trainer.progress", "trainer.num_workers"}


def pick_device(name: str) -> torch.device:
    """`trainer.device`: auto = CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} is not allowed here: no CUDA device; use auto or cpu")
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
    """Train (or resume, or just report) the run of `cfg` in `run_dir`; returns its summary."""
    validate(cfg)
    config = as_dict(cfg)
    device = pick_device(cfg.trainer.device)
    bf16 = device.type == "cuda" and cfg.trainer.precision != "fp32" or cfg.trainer.precision == "bf16"
    run_dir.mkdir(parents=True, exist_ok=True)
    summary_path = run_dir / "summary.json"
    previous = read_json(summary_path) if summary_path.exists() else None
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

    model = build_model(cfg.model.name).to(device)
    optimizer = build_optimizer(model, cfg.optim, fused=device.type == "cuda")
    scheduler = build_scheduler(optimizer, cfg.schedule.name, cfg.epochs)
    rows: list[dict] = []
    wall = 0.0
    state = checkpoint.load(run_dir, device)
    if state is not None:
        check_same_run(state["config"], config, run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_states(state["rng"])
        rows, wall = state["history"], state["wall_time_s"]
        write_history(run_dir / "history.csv", rows)  # the checkpoint is the source of truth
        log.info("%s: resuming after epoch %d of %d", run_dir, len(rows), cfg.epochs)
    elif previous and previous["epochs_completed"] > 0:
        raise ConfigError(
            f"{run_dir} has {previous['epochs_completed']} epochs of history but no readable checkpoint; "
            "move the folder away to start again"
        )

    def write_summary(status: str, test: dict | None = None, message: str | None = None) -> dict:
        s = summary(status, rows, cfg.epochs, config, str(device), wall, len(data.train), test, message)
        write_json(summary_path, s)
        return s

    if previous and previous["status"] == "completed":  # only the test evaluation was missing
        return _evaluate_test(model, data.test, normalize, bf16, write_summary)

    write_summary("running")
    progress = _progress(cfg.trainer.progress)
    started = time.perf_counter()
    try:
        for epoch in range(len(rows) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train = train_epoch(
                model, optimizer, data.train, normalize, cfg.batch_size,
                cfg.augmentation.crop_flip, cfg.augmentation.mixup_alpha, bf16, progress,
            )
            if not math.isfinite(train.loss):
                rows.append(_row(epoch, lr, train, EpochMetrics(math.nan, math.nan, 0), time.perf_counter() - t0))
                write_history(run_dir / "history.csv", rows)
                log.error("epoch %d: training loss is %s at lr %g; run diverged, stopping", epoch, train.loss, lr)
                return write_summary("diverged", message=f"non-finite training loss in epoch {epoch}")
            val = evaluate(model, data.val, normalize, bf16)
            scheduler.step()
            rows.append(_row(epoch, lr, train, val, time.perf_counter() - t0))
            wall += time.perf_counter() - started
            started = time.perf_counter()
            checkpoint.save(run_dir, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": checkpoint.rng_states(),
                "history": rows, "config": config, "wall_time_s": wall,
            })
            write_history(run_dir / "history.csv", rows)
            write_summary("running")
            r = rows[-1]
            log.info(
                "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  %.1fs",
                epoch, cfg.epochs, lr, r["train_loss"], 100 * r["train_acc"], r["val_loss"], 100 * r["val_acc"], r["epoch_time_s"],
            )
    except KeyboardInterrupt:
        write_summary("interrupted", message="interrupted; re-run the same command to resume")
        log.error("interrupted after epoch %d; re-run the same command to resume", len(rows))
        raise
    except Exception as err:
        write_summary("failed", message=f"{type(err).__name__}: {err}")
        raise
    if cfg.eval_test:
        return _evaluate_test(model, data.test, normalize, bf16, write_summary)
    return write_summary("completed")


def _row(epoch: int, lr: float, train: EpochMetrics, val: EpochMetrics, seconds: float) -> dict:
    return {
        "epoch": epoch, "lr": float(lr), "train_loss": train.loss, "train_acc": train.acc,
        "val_loss": val.loss, "val_acc": val.acc, "epoch_time_s": seconds,
    }


def _evaluate_test(model, test_split, normalize, bf16, write_summary) -> dict:
    """The test split, once, after the last epoch (only with eval_test=true)."""
    test = evaluate(model, test_split, normalize, bf16)
    log.info("test loss %.4f acc %.2f%%", test.loss, 100 * test.acc)
    return write_summary("completed", test={"loss": test.loss, "acc": test.acc})


@hydra.main(config_path="pkg://hw_hparams.conf", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_user_error(run_dir):
        run(cfg, run_dir)


def main() -> None:
    """Console entry: check the command line in one line per error, then hand it to Hydra."""
    preflight("train", sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
