"""A run end to end: the CLI on a generated dataset, its files, resume, learnability, the test split."""

from __future__ import annotations

import json
import math

import pytest
from support import TINY_RUN, fake_data_overrides, run_cli, without_timing
from support import compose_train as _cfg
from support import read_rows as _rows

import hw_hparams.train.lifecycle as train_module
import hw_hparams.train.loop as training_module

HISTORY = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"]


def test_cli_run_writes_every_file_of_a_run_folder(tmp_path, fake_root):
    args = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=2", "schedule=cosine"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "outputs" / "run").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert run.name == "batch_size=50,data.val_size=100,epochs=2,model.name=tiny,optim.lr=0.05,schedule.name=cosine"
    rows = _rows(run / "history.csv")
    assert list(rows[0]) == HISTORY and [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05 / 2 * (1 + math.cos(math.pi / 2))])
    for r in rows:
        assert 0 <= float(r["train_acc"]) <= 1 and 0 <= float(r["val_acc"]) <= 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2 and summary["test"] is None
    assert summary["final"]["val_acc"] == float(rows[-1]["val_acc"])
    best = max(rows, key=lambda r: float(r["val_acc"]))
    assert summary["best_val_acc"] == float(best["val_acc"])
    assert summary["config"]["schedule"]["name"] == "cosine" and summary["device"] == "cpu"
    assert {"torch", "torchvision", "hydra"} <= set(summary["versions"])
    stats = json.loads((run / "data_stats.json").read_text())
    assert stats["sizes"] == {"train": 500, "val": 100, "test": 100} and stats["split_seed"] == 0
    assert len(stats["class_proportions"]) == 100 and sum(stats["class_proportions"]) == pytest.approx(1)
    assert (run / "checkpoint.pt").exists() and (run / ".hydra" / "config.yaml").exists()
    assert "epoch 2/2" in (run / "train.log").read_text()
    # output is not a terminal here: no progress bar, one line per epoch, and a last line naming the folder
    assert "batch/s" not in result.stderr + result.stdout and "\r" not in result.stderr + result.stdout
    assert [line.split(" - ")[1].split()[:2] for line in result.stdout.splitlines() if " - epoch " in line] == [
        ["epoch", "1/2"],
        ["epoch", "2/2"],
    ]
    last = rows[-1]
    assert result.stdout.splitlines()[-1].endswith(
        f" - outputs/run/{run.name}: completed after 2/2 epochs; final train loss {float(last['train_loss']):.4f} "
        f"acc {100 * float(last['train_acc']):.2f}%, val loss {float(last['val_loss']):.4f} "
        f"acc {100 * float(last['val_acc']):.2f}%"
    )

    again = run_cli(args, tmp_path)  # a finished run is not trained again
    assert again.returncode == 0 and "nothing to train" in again.stdout
    assert _rows(run / "history.csv") == rows


def test_stopped_and_resumed_run_has_the_same_history(tmp_path, fake_root, monkeypatch):
    overrides = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=3", "augmentation=mixup", "schedule=cosine"]
    cfg = _cfg(overrides)
    train_module.run(cfg, tmp_path / "straight")

    real_evaluate, calls = training_module.evaluate, []

    def evaluate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # inside epoch 2, after its training
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training_module, "evaluate", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_module.run(cfg, tmp_path / "resumed")
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text())["status"] == "interrupted"
    assert len(_rows(tmp_path / "resumed" / "history.csv")) == 1
    monkeypatch.setattr(training_module, "evaluate", real_evaluate)
    train_module.run(cfg, tmp_path / "resumed")

    assert without_timing(_rows(tmp_path / "resumed" / "history.csv")) == without_timing(
        _rows(tmp_path / "straight" / "history.csv")
    )


def test_validation_accuracy_climbs_far_above_chance(tmp_path, learnable_root):
    cfg = _cfg(
        [
            *fake_data_overrides(learnable_root, val_size=500),
            "model=tiny",
            "batch_size=16",
            "trainer.progress=false",
            "epochs=2",
        ]
    )
    summary = train_module.run(cfg, tmp_path / "run")
    assert summary["best_val_acc"] > 0.15  # chance is 0.01; 0.35 here (6 epochs of batch 64: 0.35 in 3x the time)


def test_test_split_only_with_eval_test_and_only_once(tmp_path, fake_root, monkeypatch):
    overrides = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=1"]
    run_dir = tmp_path / "run"
    seen = []
    real_evaluate = training_module.evaluate
    monkeypatch.setattr(
        training_module,
        "evaluate",
        lambda model, split, *a, **k: seen.append(len(split)) or real_evaluate(model, split, *a, **k),
    )
    assert train_module.run(_cfg(overrides), run_dir)["test"] is None
    assert seen == [100]  # validation only (the test split has 100 images too: count calls)
    summary = train_module.run(_cfg([*overrides, "eval_test=true"]), run_dir)
    assert seen == [100, 100] and set(summary["test"]) == {"loss", "acc"}
    assert train_module.run(_cfg([*overrides, "eval_test=true"]), run_dir)["test"] == summary["test"]
    assert seen == [100, 100]


def test_a_folder_of_another_run_is_not_overwritten(tmp_path, fake_root):
    run_dir = tmp_path / "run"
    train_module.run(_cfg([*fake_data_overrides(fake_root), *TINY_RUN, "epochs=1"]), run_dir)
    before = (run_dir / "history.csv").read_bytes()
    from hw_hparams.config.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.lr"):
        train_module.run(_cfg([*fake_data_overrides(fake_root), *TINY_RUN, "epochs=1", "optim.lr=0.01"]), run_dir)
    assert (run_dir / "history.csv").read_bytes() == before


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_multirun_sweeps_learning_rates(tmp_path, fake_root, launcher):
    args = ["-m", "optim.lr=0.05,0.01", "epochs=1", *fake_data_overrides(fake_root), *TINY_RUN, *launcher]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "outputs" / "multirun" / "adhoc"
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert (
        len(folders) == 2 and any("optim.lr=0.05" in f for f in folders) and any("optim.lr=0.01" in f for f in folders)
    )
    for f in folders:
        summary = json.loads((sweep / f / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert f"optim.lr={summary['config']['optim']['lr']}" in f


def test_a_single_run_of_an_experiment_gets_its_own_folder(tmp_path, fake_root):
    args = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=1"]
    assert run_cli(args, tmp_path).returncode == 0
    result = run_cli(["experiment=lr_sweep", *args], tmp_path)  # not the plain run's folder, not refused
    assert result.returncode == 0, result.stderr
    (plain,) = [p for p in (tmp_path / "outputs" / "run").iterdir() if p.name != "lr_sweep"]
    (exp,) = (tmp_path / "outputs" / "run" / "lr_sweep").iterdir()
    assert exp.name == plain.name
    assert json.loads((exp / "summary.json").read_text())["config"]["experiment_name"] == "lr_sweep"
