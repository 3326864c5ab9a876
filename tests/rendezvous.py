"""A Hydra callback that proves two sections' runs are live at once, whatever the machine's load.

    MEET_DIR=DIR python -m hw_hparams.homework ... +hydra.callbacks.meet._target_=rendezvous.Meet
        +hydra.callbacks.meet.waits=schedule_sweep +hydra.callbacks.meet.for=wd_sweep

A job's side is its `key` (default experiment_name; e.g. `search.trial`: a search's trial number).
Each job marks its start in DIR (`<side>.<pid>.<ns>`). A job of section `waits` then holds at
its start until a job of section `for` has marked its own, and marks that it met one
(`<experiment_name>.<pid>.<ns>.met`; one worker process may run several jobs, so the pid alone does not
name a job). Run one section after the other and such a job can never go on: after `patience_s` it
marks `.gave-up` instead (Hydra turns a callback's error into a warning, so the mark is what a test
reads). No clock is compared, so a slow machine only makes the wait longer. DIR comes from the environment so that the
command, which the report quotes, names no folder; tests/ must be on the jobs' PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf


class Meet(Callback):
    def __init__(self, waits: str, patience_s: float = 600.0, key: str = "experiment_name", **kw) -> None:
        self.dir, self.waits, self.for_ = Path(os.environ["MEET_DIR"]), str(waits), str(kw.pop("for"))
        self.patience_s, self.key = patience_s, key
        assert not kw, kw

    def on_job_start(self, config, **kwargs) -> None:
        section = str(OmegaConf.select(config, self.key))
        self.dir.mkdir(parents=True, exist_ok=True)
        mark = self.dir / f"{section}.{os.getpid()}.{time.monotonic_ns()}"
        mark.touch()
        if section != self.waits:
            return
        deadline = time.monotonic() + self.patience_s
        while not any(self.dir.glob(f"{self.for_}.*")):
            if time.monotonic() > deadline:
                mark.with_name(mark.name + ".gave-up").touch()
                raise RuntimeError(f"a {section} run waited {self.patience_s:.0f} s for a {self.for_} run to start")
            time.sleep(0.05)
        mark.with_name(mark.name + ".met").touch()


def overrides(waits: str, for_: str, key: str = "experiment_name", patience_s: float = 300.0) -> list[str]:
    """The command-line overrides that install Meet (the environment must name MEET_DIR)."""
    meet = "+hydra.callbacks.meet"
    return [
        f"{meet}._target_=rendezvous.Meet",
        f"{meet}.key={key}",
        f"{meet}.waits={waits}",
        f"{meet}.for={for_}",
        f"{meet}.patience_s={patience_s}",
    ]
