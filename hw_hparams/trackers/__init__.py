"""Live curves in the trackers people use (`logger=tensorboard|mlflow|wandb`, or several as a list).

A run's trackers see what its files say, when its files say it (loop.Member.write, after each
epoch's checkpoint, history and summary are on disk): every history row, its status, and once it is
finished its best and test figures; history.csv stays the record. One tracker run per run folder
(a fused group's runs too), continued when the run resumes, each epoch in it exactly once:

- TensorBoard (tensorboard_events.py): event files in <root>/tensorboard/<run>/; a resumed run purges
  the steps past the first epoch they lack (SummaryWriter's purge_step) and logs the rest again.
- MLflow (mlflow_runs.py): the SQLite store <root>/mlflow.db; the run id is kept in <run>/trackers.json;
  the epochs the run already holds are not logged again.
- W&B (wandb_runs.py): offline in <root>/wandb/ (`wandb sync` uploads), the run id in trackers.json;
  each attempt writes an offline folder of its own, holding the epochs the earlier ones lack.

<root> is `logger.dir`, else the run folder's parent: the sweep's folder (the study's for
hw_hparams.homework), so one `tensorboard --logdir` or `mlflow ui` shows a whole sweep.
A tracker's package is imported only when it is chosen (an extra of pyproject.toml each; the
preflight refuses a chosen tracker that is not installed). A tracker that raises is one warning
line and logs nothing more in that process; training goes on, and a later resume fills in what it lacks.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.roles import run_settings
from hw_hparams.runs.folder import read_json, write_json
from hw_hparams.runs.format import FINISHED, HISTORY_COLUMNS, HISTORY_METRICS, TRACKERS

log = logging.getLogger("hw_hparams.train")

# Tracker -> (its package, which is also the name of its extra; the class that logs to it).
KINDS = {
    "tensorboard": ("tensorboard", "tensorboard_events:TensorBoardTracker"),
    "mlflow": ("mlflow", "mlflow_runs:MlflowTracker"),
    "wandb": ("wandb", "wandb_runs:WandbTracker"),
}
# history.csv column -> the metric's name in every tracker (accuracies stay fractions): train_loss is
# train/loss, val_acc val/acc; lr and epoch_time_s as they are.
METRICS = {c: c.replace("_", "/", 1) if c in HISTORY_METRICS else c for c in HISTORY_COLUMNS if c != "epoch"}


def chosen(cfg: DictConfig) -> list[str]:
    """The trackers `cfg` turns on, in KINDS order."""
    return [name for name in KINDS if OmegaConf.select(cfg, f"logger.{name}.enabled", default=False)]


def check_installed(cfg: DictConfig) -> None:
    """Refuse (ConfigError, one line) a chosen tracker whose package is not installed; imports nothing."""
    for name in chosen(cfg):
        package = KINDS[name][0]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f'logger={name} needs the {package} package, which is not installed: pip install -e ".[{name}]"'
            )


@dataclass
class TrackedRun:
    """What a tracker is told about its run."""

    run_dir: Path
    root: Path  # where tracker files go (absolute)
    name: str  # the run's name in its trackers: its folder's path below `root` (else the folder's name)
    params: dict  # the settings that make the run (folder.run_settings), flat
    tags: dict  # experiment, section, study (None where there is none)
    logger: DictConfig  # the config's `logger` node


def metrics_of(row: dict) -> dict[str, float]:
    """One history row as tracker metrics."""
    return {name: float(row[col]) for col, name in METRICS.items()}


def final_figures(summary: dict) -> dict[str, float]:
    """A finished run's best and test figures (nothing before it is finished)."""
    if summary["status"] not in FINISHED:
        return {}
    test = summary["test"] or {}
    figures = {
        "best/val_acc": summary["best_val_acc"],
        "best/epoch": summary["best_epoch"],
        "test/loss": test.get("loss"),
        "test/acc": test.get("acc"),
    }
    return {k: float(v) for k, v in figures.items() if v is not None and math.isfinite(v)}


def read_ids(run_dir: Path) -> dict:
    """<run>/trackers.json: each tracker's ids for this run ({} when there are none yet)."""
    path = run_dir / TRACKERS
    return read_json(path) if path.exists() else {}


def write_ids(run_dir: Path, tracker: str, ids: dict) -> None:
    """Keep one tracker's ids in <run>/trackers.json (atomically, the others' kept)."""
    write_json(run_dir / TRACKERS, {**read_ids(run_dir), tracker: ids})


def tracker_class(name: str) -> type:
    """The class that logs to tracker `name` (its module, and so its package, imported only now)."""
    module, cls = KINDS[name][1].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


class Trackers:
    """The trackers of one run, each guarded: the first exception from one is a warning line, and it is dropped."""

    def __init__(self, run: Optional[TrackedRun] = None, names: tuple = (), epochs_done: int = 0):
        self.run, self.live, self.logged, self.status = run, [], 0, None
        for name in names:
            ok, tracker = self._guard(name, lambda n: tracker_class(n)(run, epochs_done), name)
            if ok:
                self.live.append((name, tracker))

    def _guard(self, name: str, call, *args) -> tuple[bool, Any]:
        """(True, what `call(*args)` returned), or (False, None) once it raised: one warning, the tracker dropped."""
        try:
            return True, call(*args)
        except Exception as err:  # noqa: BLE001 - a tracker never stops training
            self.live = [(n, t) for n, t in self.live if n != name]
            text = " ".join(str(err).split())[:300]
            log.warning(
                "%s: %s stopped logging (%s: %s); training goes on, history.csv has every epoch",
                self.run.run_dir,
                name,
                type(err).__name__,
                text,
                extra={"run": self.run.run_dir},
            )
            return False, None

    def update(self, rows: list[dict], summary: dict) -> None:
        """Log the rows not yet logged in this process (each tracker skips those it holds), and a changed status."""
        if not self.live:
            return
        new, self.logged = rows[self.logged :], len(rows)
        changed, self.status = summary["status"] != self.status, summary["status"]
        for name, tracker in list(self.live):
            if all(self._guard(name, tracker.epoch, row)[0] for row in new) and changed:
                self._guard(name, tracker.set_status, summary)

    def close(self) -> None:
        for name, tracker in list(self.live):
            self._guard(name, tracker.close, self.status)
        self.live = []


NONE = Trackers()  # a run that logs to no tracker


def tracked_run(cfg: DictConfig, run_dir: Path, config: dict, hydra_cfg: Optional[DictConfig]) -> TrackedRun:
    root = Path(cfg.logger.dir).absolute() if cfg.logger.dir else run_dir.absolute().parent
    try:
        name = str(run_dir.absolute().relative_to(root))
    except ValueError:
        name = run_dir.name
    section = OmegaConf.select(hydra_cfg, "runtime.choices.experiment", default=None) if hydra_cfg is not None else None
    tags = {"experiment": cfg.experiment_name, "section": section, "study": cfg.logger.study}
    return TrackedRun(run_dir, root, name, run_settings(config), tags, cfg.logger)


@contextlib.contextmanager
def tracking(
    cfg: DictConfig, run_dir: Path, config: dict, hydra_cfg: Optional[DictConfig], epochs_done: int
) -> Iterator[Trackers]:
    """The run's trackers (NONE when it has none) while the block trains it; closed after it, however it ends."""
    names = tuple(chosen(cfg))
    if not names:
        yield NONE
        return
    if hydra_cfg is None:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    trackers = Trackers(tracked_run(cfg, run_dir, config, hydra_cfg), names, epochs_done)
    try:
        yield trackers
    finally:
        trackers.close()
