"""Ctrl-C and SIGTERM: the run stops cleanly, says `interrupted`, exits 130/143, and resumes exactly."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from reliability_util import (  # noqa: F401 - one_thread: autouse fixture
    EPOCHS,
    STEPS_PER_EPOCH,
    TINY_RUN,
    cfg,
    fake_data_overrides,
    one_thread,
    rows,
    signal_at_step,
    signal_in_checkpoint_write,
    start_train,
    straight_history,
    without_timing,
)
from support import finish, wait_until

import hw_hparams.train.lifecycle as train_module
from hw_hparams.runs.interrupt import Interrupted


@pytest.fixture(scope="module")
def straight(tmp_path_factory, fake_root):
    """An uninterrupted run: (overrides, its history without timings)."""
    overrides = [
        *fake_data_overrides(fake_root),
        *TINY_RUN,
        f"epochs={EPOCHS}",
        "schedule=cosine",
        "augmentation=mixup",
    ]
    return overrides, straight_history(tmp_path_factory, overrides)


def _consistent(run_dir, epochs_done: int) -> dict:
    """summary.json, history.csv and the checkpoint agree on `epochs_done`; no lock or temp file is left."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_completed"] == epochs_done == len(rows(run_dir / "history.csv"))
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] == epochs_done
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".hydra"]
    return summary


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_inside_an_epoch_abandons_it_and_the_rerun_resumes_exactly(tmp_path, straight, sig):
    overrides, expected = straight
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with signal_at_step(sig, STEPS_PER_EPOCH + 4), pytest.raises(Interrupted) as info:  # inside epoch 2
        train_module.run(cfg(overrides), tmp_path)
    assert info.value.signum == sig
    summary = _consistent(tmp_path, 1)
    assert summary["status"] == "interrupted" and signal.Signals(sig).name in summary["message"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # the run's are gone again
    train_module.run(cfg(overrides), tmp_path)
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_a_signal_during_the_checkpoint_write_waits_until_it_is_written(tmp_path, straight, monkeypatch):
    overrides, expected = straight
    signal_in_checkpoint_write(monkeypatch, signal.SIGTERM)
    with pytest.raises(Interrupted):
        train_module.run(cfg(overrides), tmp_path)
    monkeypatch.undo()
    assert _consistent(tmp_path, 2)["status"] == "interrupted"  # epoch 2 was written whole, then it stopped
    assert torch.load(tmp_path / "checkpoint.prev.pt", weights_only=False)["epoch"] == 1
    train_module.run(cfg(overrides), tmp_path)
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_sigterm_from_outside_exits_143_in_one_line_and_the_rerun_finishes(tmp_path, fake_root):
    args = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=8", f"hydra.run.dir={tmp_path / 'run'}"]
    run_dir = tmp_path / "run"
    proc = start_train(args, tmp_path)
    wait_until(
        lambda: (run_dir / "history.csv").exists() and rows(run_dir / "history.csv"),
        "the run's first epoch in history.csv",
        alive=proc,
    )
    proc.send_signal(signal.SIGTERM)
    ended = finish(proc, "the run after SIGTERM")
    out, err = ended.stdout, ended.stderr
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in out + err
    said = [l for l in (out + err).splitlines() if "interrupted" in l]
    assert len(said) == 1 and "interrupted by SIGTERM" in said[0] and "re-run the same command" in said[0]
    done = len(rows(run_dir / "history.csv"))
    assert 1 <= done < 8
    assert _consistent(run_dir, done)["status"] == "interrupted"

    again = start_train(args, tmp_path)
    resumed = finish(again, "the resumed run")
    out, err = resumed.stdout, resumed.stderr
    assert again.returncode == 0, err
    assert f"resuming after epoch {done} of 8" in out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert [int(r["epoch"]) for r in rows(run_dir / "history.csv")] == list(range(1, 9))
