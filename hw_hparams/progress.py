"""What a person watching sees: a bar over an epoch's batches, a run's last line, a study's progress.

`epoch_bar` (a terminal only, or `trainer.progress=true`): `epoch 12/300` with the running training
loss and accuracy, read from the device at most every REFRESH_S seconds (one host synchronisation
each time, none between), cleared once the epoch's training pass ends, before its log line. Where
output is not a terminal nothing is drawn: logs get one line per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import torch

from .config import flag
from .run_folder import is_finished, read_summary

REFRESH_S = 0.5


class EpochBar:
    """A tqdm bar over one training pass of `batches` batches; `update` after each batch."""

    def __init__(self, epoch: int, epochs: int, batches: int):
        from tqdm import tqdm

        self.bar = tqdm(
            total=batches,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.last = 0.0

    def update(self, sums: torch.Tensor, images: int) -> None:
        """`sums`: the pass's device-side float64 [2] (loss sum, correct count) so far, over `images` images."""
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last >= REFRESH_S:
            self.last = now
            loss, correct = sums.tolist()
            self.bar.set_postfix_str(f"loss {loss / images:.4f}  acc {100 * correct / images:.2f}%", refresh=False)

    def close(self) -> None:
        self.bar.close()


BarFactory = Callable[[int, int, int], EpochBar]


def epoch_bar(setting: str) -> Optional[BarFactory]:
    """(epoch, epochs, batches) -> EpochBar when `trainer.progress` asks for one (auto: on a terminal)."""
    return EpochBar if flag(setting, sys.stderr.isatty()) else None


def shown(path) -> str:
    """A path as the user will find it: relative to the working folder when below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def final_line(run_dir, s: dict) -> str:
    """One line on how a run ended: its folder, status, epochs and final figures (accuracies in %)."""
    line = f"{shown(run_dir)}: {s['status']} after {s['epochs_completed']}/{s['epochs']} epochs"
    f = s.get("final")
    if f:
        line += (
            f"; final train loss {f['train_loss']:.4f} acc {100 * f['train_acc']:.2f}%,"
            f" val loss {f['val_loss']:.4f} acc {100 * f['val_acc']:.2f}%"
        )
    if s.get("test"):
        line += f", test loss {s['test']['loss']:.4f} acc {100 * s['test']['acc']:.2f}%"
    return line


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StudyProgress:
    """The study's overall progress: one line per finished run, with sections done, runs done of the
    total, time elapsed and an estimate of the time left (the epochs still to train at the pace
    measured since this command started: epochs of all runs, so runs and sections that train at
    once count together)."""

    POLL_S = 2.0

    def __init__(self, plan: dict[str, list[int]], log: logging.Logger):
        """`plan`: section -> the planned epochs of each of its runs."""
        self.plan, self.log = plan, log
        self.total_runs = sum(len(v) for v in plan.values())
        self.total_epochs = sum(sum(v) for v in plan.values())
        self.started = time.monotonic()
        self.epochs: dict[Path, int] = {}  # run folder -> epochs completed
        self.finished: set[Path] = set()
        self.sections: dict[str, list[Path]] = {}  # section -> its run folders, once known
        self.epochs_at_start: Optional[int] = None

    def _poll(self, dirs: dict[str, list[Path]], tested: set[Path]) -> None:
        for section, ds in dirs.items():
            for d in ds:
                s = read_summary(d, warn=False)
                self.epochs[d] = s["epochs_completed"] if s else 0
                if d in self.finished or not is_finished(s, d in tested):
                    continue
                self.finished.add(d)
                if self.epochs_at_start is not None:  # finished before the first poll: counted, not announced
                    self.log.info("%s | %s", self.status(), final_line(f"{section}/{d.name}", s))
        if self.epochs_at_start is None:
            self.epochs_at_start = sum(self.epochs.values())

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        done = sum(self.epochs.values())
        trained = done - (self.epochs_at_start or 0)
        left = (
            f"~{_clock((self.total_epochs - done) * elapsed / trained)} left"
            if trained > 0
            else "time left: after the first epoch"
        )
        sections_done = sum(all(d in self.finished for d in dirs) for dirs in self.sections.values())
        return (
            f"sections {sections_done}/{len(self.plan)}, runs {len(self.finished)}/{self.total_runs}, "
            f"elapsed {_clock(elapsed)}, {left}"
        )

    @contextlib.contextmanager
    def watch(self, dirs: dict[str, list[Path]], tested: set[Path] = frozenset()):
        """Report each run folder of `dirs` (section -> its folders; sections training at once) as it
        finishes (with the test split, for those in `tested`) while the block runs: a background
        thread polls summary.json."""
        for section, ds in dirs.items():
            self.sections[section] = list(dict.fromkeys([*self.sections.get(section, []), *ds]))
        self._poll(dirs, tested)
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.POLL_S):
                self._poll(dirs, tested)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self._poll(dirs, tested)
