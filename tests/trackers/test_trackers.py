"""Trackers (`logger=...`): each one read back with its own reader equals history.csv, epoch by epoch;
a resumed run continues its tracker run; a tracker that raises never stops training; a missing
package is one line before anything is written. W&B, a fused sweep and SIGKILL: test_trackers_reliability.py."""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import signal
import sys

import pytest
import tracker_readers as tr
from reliability_util import (  # noqa: F401 - one_thread: autouse fixture
    EPOCHS,
    STEPS_PER_EPOCH,
    TINY_RUN,
    cfg,
    fake_data_overrides,
    one_thread,
    rows,
    run_cli,
    signal_at_step,
    without_timing,
)

import hw_hparams.trackers as trackers
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.schema import as_dict
from hw_hparams.runs.folder import run_settings
from hw_hparams.runs.interrupt import Interrupted
from hw_hparams.train.lifecycle import run
from hw_hparams.train.preflight import check_overrides

ALL = "logger=[tensorboard,mlflow,wandb]"  # W&B: test_trackers_reliability.py


def tiny(fake_root, *extra: str) -> list[str]:
    return [
        *fake_data_overrides(fake_root),
        *TINY_RUN,
        f"epochs={EPOCHS}",
        "trainer.device=cpu",
        "schedule=cosine",
        *extra,
    ]


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


# --- the config group ----------------------------------------------------------------------------


def test_the_logger_group_turns_trackers_on_alone_or_as_a_list_and_never_names_a_run():
    def on(*overrides):
        return trackers.chosen(cfg(list(overrides)))

    assert on() == [] and on("logger=none") == []
    assert on("logger=mlflow") == ["mlflow"]
    assert on("logger=[wandb,tensorboard]") == ["tensorboard", "wandb"]
    assert on("logger=[tensorboard,mlflow,wandb]", "logger.mlflow.enabled=false") == ["tensorboard", "wandb"]
    settings = run_settings(as_dict(cfg([])))
    assert (
        run_settings(as_dict(cfg([ALL, "logger.dir=/elsewhere", "logger.study=s"]))) == settings
    )  # same folder, resumable
    with pytest.raises(
        ConfigError, match="logger=tensorbord is not an option: choose one of mlflow, none, tensorboard, wandb"
    ):
        check_overrides(["logger=[mlflow,tensorbord]"])


def test_a_chosen_tracker_without_its_package_is_one_line_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys, fake_root
):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["hw-train", *tiny(fake_root, "logger=[tensorboard,mlflow]")])
    from hw_hparams.train.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err
        == 'error: logger=mlflow needs the mlflow package, which is not installed: pip install -e ".[mlflow]"\n'
    )
    assert list(tmp_path.iterdir()) == []


# --- each tracker read back ------------------------------------------------------------------------


@pytest.mark.tensorboard
def test_tensorboard_events_equal_history_epoch_by_epoch_and_hold_the_hparams(tmp_path, fake_root):
    run_dir = tmp_path / "run"
    run(cfg(tiny(fake_root, "logger=tensorboard", "eval_test=true")), run_dir)
    folder = tmp_path / "tensorboard" / "run"
    scalars, s = tr.tensorboard_scalars(folder), summary_of(run_dir)
    assert {k: scalars[k] for k in tr.COLUMNS.values()} == tr.expected(run_dir)
    assert scalars["test/acc"] == [(EPOCHS, s["test"]["acc"])] and scalars["best/val_acc"] == [
        (EPOCHS, s["best_val_acc"])
    ]
    hparams = {
        k: "null" if v is None else float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in run_settings(s["config"]).items()
    }
    assert tr.tensorboard_hparams(folder) == {**hparams, "experiment": "null", "section": "null", "study": "null"}
    assert tr.tensorboard_text(folder, "status") == ["completed"]


@pytest.mark.mlflow
def test_mlflow_params_and_histories_equal_history_and_a_resumed_run_is_the_same_mlflow_run(tmp_path, fake_root):
    run_dir, db = tmp_path / "run", tmp_path / "mlflow.db"
    overrides = tiny(fake_root, "logger=mlflow", "experiment_name=mine", "logger.study=s1")
    with signal_at_step(signal.SIGINT, STEPS_PER_EPOCH + 4), pytest.raises(Interrupted):  # inside epoch 2
        run(cfg(overrides), run_dir)
    (first,) = tr.mlflow_runs(db, "run")
    assert first.info.status == "KILLED" and first.data.tags["status"] == "interrupted"
    assert (
        tr.mlflow_history(db, first.info.run_id)["val/loss"]
        == tr.expected(run_dir)["val/loss"]
        == tr.expected(run_dir)["val/loss"][:1]
    )
    run(cfg(overrides), run_dir)
    (again,) = tr.mlflow_runs(db, "run")
    assert again.info.run_id == first.info.run_id == tr.ids(run_dir)["mlflow"]["run_id"]
    assert again.info.status == "FINISHED"
    assert {k: v for k, v in again.data.tags.items() if not k.startswith(("mlflow.", "hw_hparams."))} == {
        "experiment": "mine",
        "study": "s1",
        "status": "completed",
    }
    assert again.data.params == {k: str(v) for k, v in run_settings(summary_of(run_dir)["config"]).items()}
    history = tr.mlflow_history(db, again.info.run_id)
    assert {k: history[k] for k in tr.COLUMNS.values()} == tr.expected(run_dir)
    assert history["best/val_acc"] == [(EPOCHS, summary_of(run_dir)["best_val_acc"])]
    assert [e.name for e in tr.mlflow_experiments(db)] == ["Default", "mine"]


# --- a tracker never stops training ------------------------------------------------------------------


class Raising:
    """A tracker whose every call fails, like a full disk or a broken store would make it."""

    where = "epoch"

    def __init__(self, run, epochs_done):
        self._maybe("open")

    def _maybe(self, call):
        if call == self.where:
            raise OSError(errno.ENOSPC, "No space left on device")

    def epoch(self, row):
        self._maybe("epoch")

    def set_status(self, summary):
        self._maybe("status")

    def close(self, status):
        self._maybe("close")


@pytest.fixture(scope="module")
def plain(tmp_path_factory, fake_root):
    """A run without trackers: its history.csv."""
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    run(cfg(tiny(fake_root)), run_dir)
    return run_dir / "history.csv"


@pytest.mark.parametrize("where", ["open", "epoch", "status", "close"])
def test_a_tracker_that_raises_is_one_warning_line_and_the_run_is_unchanged(
    tmp_path, fake_root, monkeypatch, caplog, where, plain
):
    monkeypatch.setattr(Raising, "where", where)
    monkeypatch.setattr(trackers, "tracker_class", lambda name: Raising)
    caplog.set_level(logging.WARNING)
    run_dir = tmp_path / "run"
    assert run(cfg(tiny(fake_root, "logger=[tensorboard,wandb]")), run_dir)["status"] == "completed"
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "stopped logging" in r.getMessage()
    ]
    assert len(warnings) == 2 and {w.split(": ")[1].split()[0] for w in warnings} == {"tensorboard", "wandb"}, warnings
    assert all("OSError: [Errno 28] No space left on device" in w for w in warnings), warnings
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(plain))


@pytest.mark.mlflow
def test_a_broken_mlflow_store_is_one_warning_and_the_run_completes(tmp_path, fake_root, caplog):
    (tmp_path / "store").write_text("a file, not a folder")
    caplog.set_level(logging.WARNING)
    run_dir = tmp_path / "run"
    result = run(
        cfg(tiny(fake_root, "logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/store/mlflow.db")),
        run_dir,
    )
    assert result["status"] == "completed" and len(rows(run_dir / "history.csv")) == EPOCHS
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "stopped logging" in r.getMessage()
    ]
    assert len(warnings) == 1 and "mlflow stopped logging" in warnings[0], warnings
