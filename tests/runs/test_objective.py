"""The training entrypoint's return value (its objective, for Hydra's search sweepers), per
objective.metric / objective.at, and for a diverged and a failed run; checked against the run's own
history.csv and summary.json, read here with the csv and json modules."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write
from support import TINY_RUN, fake_data_overrides, run_cli

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import CONFIG_DIR
from hw_hparams.runs.objective import NoObjective
from hw_hparams.train import lifecycle as train
from hw_hparams.train.job import JobFailed


def job(overrides: list[str], run_dir: Path, multirun: bool = False):
    """The training task (TrainJob) as Hydra calls it for one job whose folder is `run_dir`."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return train.TrainJob()(task)


@pytest.fixture(scope="module")
def finished(fake_root, tmp_path_factory):
    """A tiny 3-epoch run with the test split evaluated: (overrides, run folder, history rows, summary)."""
    run_dir = tmp_path_factory.mktemp("objective") / "run"
    overrides = [
        *TINY_RUN,
        *fake_data_overrides(fake_root),
        "epochs=3",
        "eval_test=true",
        "trainer.device=cpu",
        "optim.lr=0.05",
    ]
    job(overrides, run_dir)
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return overrides, run_dir, rows, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("metric", ["val_acc", "val_loss", "train_acc", "train_loss"])
@pytest.mark.parametrize("at", ["final", "best"])
def test_returns_the_objective_per_metric_and_at(finished, metric, at):
    overrides, run_dir, rows, _ = finished
    values = [float(r[metric]) for r in rows]
    expected = values[-1] if at == "final" else (max(values) if metric.endswith("_acc") else min(values))
    got = job([*overrides, f"objective.metric={metric}", f"objective.at={at}"], run_dir)
    assert isinstance(got, float) and got == expected, (metric, at, got, values)


def test_returns_test_metrics_and_defaults_to_final_val_acc(finished):
    overrides, run_dir, rows, summary = finished
    assert job([*overrides, "objective.metric=test_acc"], run_dir) == summary["test"]["acc"]
    assert job([*overrides, "objective.metric=test_loss"], run_dir) == summary["test"]["loss"]
    assert job(overrides, run_dir) == float(rows[-1]["val_acc"])


def test_a_diverged_run_returns_no_number(fake_root, tmp_path):
    run_dir = tmp_path / "run"
    got = job([*TINY_RUN, *fake_data_overrides(fake_root), "epochs=2", "trainer.device=cpu", "optim.lr=1e30"], run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    assert isinstance(got, NoObjective)
    with pytest.raises(ValueError, match="diverged"):  # what hydra-optuna-sweeper's float() of the return meets
        float(got)
    assert "diverged" in str(got) and str(run_dir) in str(got)


def test_a_failed_run_raises_so_hydra_records_a_failed_job(fake_root, tmp_path, monkeypatch):
    def crash(members, data, device):
        raise RuntimeError("injected crash")

    monkeypatch.setattr(train, "train_members", crash)
    with pytest.raises(JobFailed, match="injected crash"):
        job(
            [*TINY_RUN, *fake_data_overrides(fake_root), "epochs=1", "trainer.device=cpu"],
            tmp_path / "run",
            multirun=True,
        )


def test_objective_keys_are_checked(tmp_path):
    from support import compose_train

    from hw_hparams.runs.objective import check

    with pytest.raises(ConfigError, match="eval_test=true"):
        check(compose_train(["objective.metric=test_acc"]))
    with pytest.raises(ConfigError, match="objective.at=best"):
        check(compose_train(["objective.metric=test_loss", "objective.at=best", "eval_test=true"]))
    res = run_cli(["objective.metric=val_f1"], tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "objective.metric" in res.stderr and "val_acc" in res.stderr, res.stderr
    assert not (tmp_path / "outputs").exists()


def test_objective_is_not_part_of_the_run_folder_name():
    from support import compose_train

    from hw_hparams.config.naming import run_name, task_dict

    names = {
        run_name(task_dict(compose_train([f"objective.metric={m}", "objective.at=best"])), None)
        for m in ("val_acc", "train_loss")
    }
    assert names == {run_name(task_dict(compose_train([])), None)}
