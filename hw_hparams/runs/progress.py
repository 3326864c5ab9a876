"""What a person watching sees: a bar over an epoch's batches, a run's last line, a study's progress.

`epoch_bar` (`trainer.progress=auto`: when stderr is a terminal and this is the process the command
started, not a worker of a pool such as joblib's; `true`: always): `epoch 12/300`, the time left in
the epoch and the running training figures of the k runs trained together (`figures`), read from
the device at most every REFRESH_S seconds (one host synchronisation each time, none between),
cleared once the epoch's training pass ends, before its log lines. While a bar is drawn, console
log lines (another thread's included) are written above it, never into it. Where no bar is drawn,
logs get one line per epoch and run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import torch

from hw_hparams.config.schema import flag
from hw_hparams.runs.folder import is_finished, read_summary

REFRESH_S = 0.5
# tqdm's layout without the batch count and rate, so that a group's figures fit in 80 columns.
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {remaining} left{postfix}"


def figures(sums: torch.Tensor, images: int) -> str:
    """The running training figures of k runs from `sums`, float64 [k, 2] (per run: loss sum, correct
    count) over `images` images each (engine.run_train_epoch): one run `loss 4.6012 acc 1.23%`; a fused
    group the lowest..highest over its runs with a finite loss, to 3 significant digits,
    `3 runs: loss 4.58..4.61 acc 0.9..1.5%`, and how many have none (diverged: NaN or inf), `, 1 nan`."""
    rows = sums.tolist()
    if len(rows) == 1:
        ((loss, correct),) = rows
        loss = loss / images
        return f"loss {loss:{'.4f' if abs(loss) < 1e4 else '.4g'}} acc {100 * correct / images:.2f}%"
    finite = [(loss / images, 100 * correct / images) for loss, correct in rows if math.isfinite(loss)]
    parts = []
    if finite:
        losses, accs = zip(*finite)
        parts.append(f"loss {min(losses):.3g}..{max(losses):.3g} acc {min(accs):.1f}..{max(accs):.1f}%")
    if len(finite) < len(rows):
        parts.append(f"{len(rows) - len(finite)} nan")
    return f"{len(rows)} runs: " + ", ".join(parts)


class EpochBar:
    """A tqdm bar on stderr over one training pass of `batches` batches; `update` after each batch."""

    def __init__(self, epoch: int, epochs: int, batches: int):
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        known = _width_known()
        self.bar = tqdm(
            total=batches,
            desc=f"epoch {epoch}/{epochs}",
            bar_format=BAR_FORMAT,
            leave=False,
            dynamic_ncols=known,  # follows the terminal's width as it is resized
            # a terminal that reports no size (0 x 0: tqdm would hide the bar) is taken as 80 x 24
            **({} if known else {"ncols": 80, "nrows": 24}),
            file=sys.stderr,
        )
        self.redirect = contextlib.ExitStack()
        if _console_handler():
            self.redirect.enter_context(logging_redirect_tqdm())
        self.last = 0.0

    def update(self, sums: torch.Tensor, images: int) -> None:
        """`sums`: the pass's device-side float64 [k, 2] so far, over `images` images per run (`figures`)."""
        now = time.monotonic()
        if now - self.last >= REFRESH_S:
            self.last = now
            self.bar.set_postfix_str(figures(sums, images), refresh=False)
        self.bar.update(1)  # draws (at most every 0.1 s) with the figures up to this batch

    def close(self) -> None:
        self.redirect.close()
        self.bar.close()


def _width_known() -> bool:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):  # not a terminal, or a stream without a file descriptor
        return False


def _console_handler() -> bool:
    """Whether the root logger writes to the console (Hydra's job logging does), i.e. has lines to redirect."""
    return any(
        isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr) for h in logging.root.handlers
    )


class OverBars(logging.Formatter):
    """Console lines of a process that shares its terminal with another one drawing epoch bars (the study,
    while a stage's sweep trains in a subprocess): each line first wipes the terminal's current line, so it
    never lands in the middle of a bar, which redraws itself below at its next update."""

    def format(self, record: logging.LogRecord) -> str:
        return "\r\x1b[K" + super().format(record)


@contextlib.contextmanager
def epoch_bar(setting: str, epoch: int, epochs: int, batches: int) -> Iterator[Optional[EpochBar]]:
    """An EpochBar over one training pass for the block, when `trainer.progress` asks for one (auto: on a
    terminal, in the command's own process: a pool's workers share its terminal, and their bars would
    overwrite each other); else None. The bar is wiped when the block ends."""
    if not flag(setting, sys.stderr.isatty() and multiprocessing.parent_process() is None):
        yield None
        return
    bar = EpochBar(epoch, epochs, batches)
    try:
        yield bar
    finally:
        bar.close()


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
