"""experiment=lr_wd_search (hydra/sweeper=search, Optuna): the best trial is the best run folder, the
same command continues the study instead of doubling it, failed trials count toward max_failure_rate.

Trial counts and parameters are read from the Optuna storage with sqlite3, run metrics from the run
folders with csv; neither through the code under test.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import fault_inject
import pytest
import yaml
from support import TINY_RUN, read_rows, run_cli, small_data_overrides

SWEEP = Path("outputs/multirun/lr_wd_search")


def base(small_root: Path) -> list[str]:
    """The search's command on small_root's data: 2 steps a trial."""
    return [
        "-m",
        "experiment=lr_wd_search",
        *TINY_RUN,
        *small_data_overrides(small_root),
        "epochs=1",
        "trainer.device=cpu",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
    ]


def db_trials(sweep: Path) -> dict[int, tuple[str, dict[str, float]]]:
    """{trial number: (state, {param: value})} from the study's SQLite storage."""
    with sqlite3.connect(sweep / "optuna.db") as con:
        states = dict(con.execute("select trial_id, state from trials"))
        numbers = dict(con.execute("select trial_id, number from trials"))
        params: dict[int, dict[str, float]] = {t: {} for t in numbers}
        for trial_id, name, value in con.execute("select trial_id, param_name, param_value from trial_params"):
            params[trial_id][name] = value
    return {numbers[t]: (states[t], params[t]) for t in numbers}


def final(run_dir: Path, metric: str) -> float:
    with open(run_dir / "history.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1][metric])


def read_rows_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def run_folders(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/summary.json"))


@pytest.fixture(scope="module")
def search(small_root, tmp_path_factory):
    """A 4-trial search, 2 trials per batch fused into one network, minimizing the final training loss;
    then the same command again."""
    cwd = tmp_path_factory.mktemp("search")
    args = [*base(small_root), "hydra.sweeper.n_trials=4", "objective.metric=train_loss", "hydra/launcher=fused"]
    first = run_cli(args, cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.stat().st_mtime_ns for p in (cwd / SWEEP).glob("*/history.csv")}
    trials_before = db_trials(cwd / SWEEP)
    again = run_cli(args, cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    return {
        "cwd": cwd,
        "sweep": cwd / SWEEP,
        "first": first,
        "again": again,
        "before": before,
        "trials_before": trials_before,
    }


@pytest.mark.optuna
def test_best_value_is_the_best_run_folder(search):
    sweep = search["sweep"]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    losses = {d: final(d, "train_loss") for d in run_folders(sweep)}
    best = min(losses, key=losses.get)
    assert result["best_value"] == losses[best]
    config = yaml.safe_load((best / ".hydra" / "config.yaml").read_text())
    assert result["best_params"] == {
        "optim.lr": config["optim"]["lr"],
        "optim.weight_decay": config["optim"]["weight_decay"],
    }


@pytest.mark.optuna
def test_each_batch_trains_as_one_network(search):
    log = search["first"].stdout + search["first"].stderr
    assert log.count("Launching 2 jobs as 1 fused group(s) of 2") == 2, log[-3000:]


@pytest.mark.optuna
def test_the_same_command_continues_the_study(search):
    trials = db_trials(search["sweep"])
    assert len(trials) == 4 and trials == search["trials_before"]
    assert {state for state, _ in trials.values()} == {"COMPLETE"}
    assert {p: p.stat().st_mtime_ns for p in search["sweep"].glob("*/history.csv")} == search["before"]
    log = search["again"].stdout + search["again"].stderr
    assert "4 trial(s) finished, 0 to go of n_trials=4" in log, log[-3000:]


@pytest.mark.optuna
def test_more_trials_continue_from_where_it_stopped(search, small_root):
    args = [*base(small_root), "hydra.sweeper.n_trials=6", "objective.metric=train_loss"]
    res = run_cli(args, search["cwd"])
    assert res.returncode == 0, res.stderr[-3000:]
    trials = db_trials(search["sweep"])
    assert sorted(trials) == list(range(6))
    for number in range(4):  # the first four are the first run's, untouched
        assert trials[number] == search["trials_before"][number]
    assert len(run_folders(search["sweep"])) == len({tuple(sorted(p.items())) for _, p in trials.values()})


@pytest.mark.optuna
def test_analysis_reads_the_search_with_trial_numbers(search, tmp_path):
    from analysis import sweep_report

    sweep_report.write([search["sweep"]], tmp_path / "res", figures=False)
    rows = read_rows(tmp_path / "res" / "runs.csv")
    trials = db_trials(search["sweep"])
    assert rows and all(r["trial"] != "" for r in rows)
    for r in rows:
        _, params = trials[int(r["trial"])]
        assert float(r["optim.lr"]) == params["optim.lr"]
        assert float(r["optim.weight_decay"]) == params["optim.weight_decay"]


@pytest.mark.optuna
def test_a_failing_trial_does_not_end_the_search(small_root, tmp_path):
    # 2 steps a trial: the 4th step is the second trial's.
    args = [*base(small_root), "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.5"]
    res = fault_inject.run_cli(args, tmp_path, fault="step:4:raise")
    assert res.returncode == 0, res.stderr[-3000:]
    states = [state for state, _ in db_trials(tmp_path / SWEEP).values()]
    assert sorted(states) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    assert (tmp_path / SWEEP / "optimization_results.yaml").is_file()
    rows = read_rows(tmp_path / SWEEP / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]


@pytest.mark.optuna
def test_too_many_failed_trials_end_the_search(small_root, tmp_path):
    """Every trial diverges (lr 1e30): a batch with 2 of 2 failed exceeds max_failure_rate 0.5."""
    args = [
        *base(small_root),
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0.5",
        "optim.lr=choice(1e30)",
    ]
    res = run_cli(args, tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "no objective" in res.stderr and "diverged" in res.stderr, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    states = [state for state, _ in db_trials(tmp_path / SWEEP).values()]
    assert states == ["FAIL", "FAIL"]  # the second batch never started
    assert not (tmp_path / SWEEP / "optimization_results.yaml").exists()


def test_a_missing_extra_is_one_line(monkeypatch, tmp_path, capsys):
    from hw_hparams.train import preflight as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "optuna_missing", lambda: True)
    with pytest.raises(SystemExit) as exit_:
        cli.preflight(["-m", "experiment=lr_wd_search", "trainer.device=cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert 'pip install -e ".[optuna]"' in err
    assert not (tmp_path / "outputs").exists()


@pytest.mark.optuna
def test_an_interrupted_search_asks_its_unfinished_trials_again(small_root, tmp_path):
    """SIGINT in the second trial's training: both trials of that batch stay running in the study; the
    same command again marks them failed and asks their values again, reusing and resuming their folders."""
    args = [*base(small_root), "hydra.sweeper.n_trials=2"]
    first = fault_inject.run_cli(args, tmp_path, fault="step:4:int")
    assert first.returncode == 130, first.stderr[-3000:]
    assert [s for s, _ in db_trials(tmp_path / SWEEP).values()] == ["RUNNING", "RUNNING"]
    statuses = sorted(read_rows_json(d)["status"] for d in run_folders(tmp_path / SWEEP))
    assert statuses == ["completed", "interrupted"]
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = db_trials(tmp_path / SWEEP)
    assert [trials[n][0] for n in sorted(trials)] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert [trials[n][1] for n in (2, 3)] == [trials[n][1] for n in (0, 1)]
    assert sorted(read_rows_json(d)["status"] for d in run_folders(tmp_path / SWEEP)) == ["completed", "completed"]
    log = again.stdout + again.stderr
    assert log.count("nothing to train") == 1, log[-3000:]  # the completed trial's folder, reused
