"""A damaged checkpoint: said in one line, the previous one used (history rewritten from it), or a
clean start on request (trainer.restart=true, the earlier files kept in old-1/); never a pickle
traceback, never a silent fresh start."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from reliability_util import (  # noqa: F401 - one_thread: autouse fixture
    EPOCHS,
    STEPS_PER_EPOCH,
    TINY_RUN,
    assert_one_error_line,
    cfg,
    fake_data_overrides,
    file_states,
    one_thread,
    rows,
    run_cli,
    without_timing,
)
from torch.optim.optimizer import register_optimizer_step_post_hook

import hw_hparams.train.lifecycle as train_module
from hw_hparams.config.errors import ConfigError


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fake_root):
    """(overrides, uninterrupted run folder, a folder stopped in epoch 3 with checkpoints of epochs 2 and 1)."""
    overrides = [*fake_data_overrides(fake_root), *TINY_RUN, f"epochs={EPOCHS}", "schedule=cosine"]
    base = tmp_path_factory.mktemp("runs")
    train_module.run(cfg(overrides), base / "straight")
    steps = []

    def stop_in_epoch_3(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 2 * STEPS_PER_EPOCH + 3:
            raise KeyboardInterrupt

    hook = register_optimizer_step_post_hook(stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_module.run(cfg(overrides), base / "stopped")
    hook.remove()
    return overrides, base / "straight", base / "stopped"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _another_runs_checkpoint(path, runs):
    state = torch.load(runs[2] / "checkpoint.pt", weights_only=False)
    state["config"]["optim"]["lr"] = 0.123
    torch.save(state, path)


DAMAGE = {
    "truncated": lambda p, runs: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3]),
    "text file": lambda p, runs: p.write_text("not a checkpoint\n"),
    "a tensor": lambda p, runs: torch.save(torch.zeros(3), p),
    "empty": lambda p, runs: p.write_bytes(b""),
    "another run's": _another_runs_checkpoint,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_falls_back_to_the_previous_one_in_one_line(tmp_path, runs, damage, caplog):
    overrides, straight, stopped = runs
    run_dir = _copy(stopped, tmp_path / "run")
    assert len(rows(run_dir / "history.csv")) == 2
    DAMAGE[damage](run_dir / "checkpoint.pt", runs)
    with caplog.at_level(logging.INFO):
        summary = train_module.run(cfg(overrides), run_dir)
    said = [r.getMessage() for r in caplog.records if "checkpoint.pt" in r.getMessage()]
    assert len(said) == 1 and "damaged" in said[0] and "falling back to checkpoint.prev.pt" in said[0]
    assert "\n" not in said[0] and "Traceback" not in caplog.text
    assert any(
        "resuming after epoch 1 of 3" in r.getMessage() for r in caplog.records
    )  # history rewritten from epoch 1
    assert summary["status"] == "completed"
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(straight / "history.csv"))
    assert (run_dir / "checkpoint.pt.damaged").exists()  # kept aside, out of the rotation


def test_no_usable_checkpoint_refuses_in_one_line_and_restart_trains_again(tmp_path, runs):
    overrides, straight, stopped = runs
    run_dir = _copy(stopped, tmp_path / "run")
    (run_dir / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    (run_dir / "checkpoint.prev.pt").write_bytes((run_dir / "checkpoint.prev.pt").read_bytes()[:1000])
    before = file_states(run_dir, mtimes=False)
    result = run_cli([*overrides, f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, "2 trained epoch(s)", "no usable checkpoint", "trainer.restart=true")
    assert file_states(run_dir, mtimes=False) == before and not list(run_dir.glob("*.damaged"))  # nothing touched

    summary = train_module.run(cfg([*overrides, "trainer.restart=true"]), run_dir)
    assert summary["status"] == "completed"
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(straight / "history.csv"))
    assert file_states(run_dir / "old-1", mtimes=False) == before  # the earlier history kept aside, whole


def test_history_without_any_checkpoint_is_refused(tmp_path, runs):
    overrides, _, stopped = runs
    run_dir = _copy(stopped, tmp_path / "run")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run_dir / name).unlink()
    with pytest.raises(ConfigError, match="2 trained epoch") as info:
        train_module.run(cfg(overrides), run_dir)
    assert "\n" not in str(info.value)
    assert len(rows(run_dir / "history.csv")) == 2


def test_restart_leaves_a_resumable_run_alone(tmp_path, runs, caplog):
    overrides, straight, stopped = runs
    run_dir = _copy(stopped, tmp_path / "run")
    with caplog.at_level(logging.INFO):
        train_module.run(cfg([*overrides, "trainer.restart=true"]), run_dir)
    assert "resuming after epoch 2 of 3" in caplog.text
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(straight / "history.csv"))


def test_an_unreadable_summary_is_ignored_and_rewritten(tmp_path, runs, caplog):
    overrides, straight, stopped = runs
    run_dir = _copy(stopped, tmp_path / "run")
    (run_dir / "summary.json").write_text('{"status": "runn')
    with caplog.at_level(logging.WARNING):
        summary = train_module.run(cfg(overrides), run_dir)
    assert len([r for r in caplog.records if "summary.json" in r.getMessage()]) == 1
    assert (
        summary["status"] == "completed" and json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 3
    )
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(straight / "history.csv"))


def test_a_kill_between_the_last_checkpoint_and_its_history_row_then_the_same_command_writes_the_row(
    tmp_path, runs, caplog
):
    # Seen with the kill harness: epoch 3's checkpoint saved, then SIGKILL before history.csv and summary.json
    # said so; the next attempt found no epoch left to train.
    overrides, straight, _ = runs
    run_dir = _copy(straight, tmp_path / "run")
    lines = (run_dir / "history.csv").read_text().splitlines(keepends=True)
    (run_dir / "history.csv").write_text("".join(lines[:-1]))  # header and epochs 1-2
    at_kill = json.loads((run_dir / "summary.json").read_text())
    header, second = lines[0].strip().split(","), lines[-2].strip().split(",")
    at_kill.update(
        status="running",
        epochs_completed=EPOCHS - 1,
        finished_at=None,
        final={k: (int(v) if k == "epoch" else float(v)) for k, v in zip(header, second) if k != "epoch_time_s"},
    )
    (run_dir / "summary.json").write_text(json.dumps(at_kill))
    with caplog.at_level(logging.INFO):
        summary = train_module.run(cfg(overrides), run_dir)
    assert f"resuming after epoch {EPOCHS} of {EPOCHS}" in caplog.text
    assert summary["status"] == "completed" and summary["epochs_completed"] == EPOCHS
    assert (run_dir / "history.csv").read_text() == (straight / "history.csv").read_text()  # the row, as trained


def test_test_split_after_a_damaged_final_checkpoint_uses_the_final_model(tmp_path, runs):
    overrides, straight, _ = runs
    with_test = train_module.run(cfg([*overrides, "eval_test=true"]), tmp_path / "with_test")
    run_dir = _copy(straight, tmp_path / "run")
    DAMAGE["truncated"](run_dir / "checkpoint.pt", runs)
    summary = train_module.run(
        cfg([*overrides, "eval_test=true"]), run_dir
    )  # retrains epoch 3 from epoch 2's checkpoint
    assert summary["test"] == with_test["test"] and summary["epochs_completed"] == 3
    assert without_timing(rows(run_dir / "history.csv")) == without_timing(rows(straight / "history.csv"))
