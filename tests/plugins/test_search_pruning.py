"""hydra/sweeper=search's trials: each run reports its objective after every epoch and the pruner stops the
hopeless ones where its rule says; a pruned run is final across re-runs and kills; a fused group that loses
a run goes on exactly; a slot takes the next trial while a slower one of its batch still runs; the
dashboard reads the study over HTTP; a fresh install resolves current releases.

The reference for pruning is Optuna's own pruner, asked afresh on an in-memory study that holds what the
search's storage recorded (read with Optuna's API, not through the code under test). Trials are planned
by number (search_plan.by_trial): learning rate 1e-5 cannot lower the training loss in 3 epochs (hopeless
by construction); the first two (the pruner's startup trials) learn slowly at 0.03, the later ones fast
at 0.1, so the median of what completed separates the two kinds with a wide margin.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import fault_inject
import pytest
import search_plan
import yaml
from search_plan import search_args
from support import read_rows, run_cli

TESTS = Path(__file__).resolve().parents[1]
SWEEP = Path("outputs/multirun/adhoc")
HOPELESS = 1e-5
# trial n: lr:seed. Trial 4 (lr 0.101, its own) is interrupted in its second epoch by the first command;
# the second command asks its values again as trial 5, then trial 6 asks trial 2's values (a pruned run).
PLAN = "0.03:0,0.03:1,1e-5:2,0.1:3,0.101:4,0.101:4,1e-5:2"
PRUNER = [
    "hydra/sweeper/pruner=median",
    "hydra.sweeper.pruner.n_startup_trials=2",
    "hydra.sweeper.pruner.n_warmup_steps=2",
]


def env(**extra: str) -> dict[str, str]:
    return search_plan.env(PLAN, **extra)


def load(sweep: Path):
    import optuna

    return optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")


def stamps(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def pruned_search(small_root, tmp_path_factory):
    """One trial at a time (n_jobs=1), median pruner from epoch 2: the first command is interrupted in
    trial 4; the same command for 6 trials (the interrupted one does not count) then finishes it as trial 5
    and asks trial 2's values again as trial 6."""
    cwd = tmp_path_factory.mktemp("pruned_search")
    first = fault_inject.run_cli(
        search_args(small_root, 5, "hydra.sweeper.n_jobs=1", *PRUNER),
        cwd,
        fault="step:3:int:0.101",  # 2 steps an epoch: the first of its second
        env=env(),
    )
    sweep = cwd / SWEEP
    pruned_dir = sweep / next(r["run_dir"] for r in read_rows(sweep / "trials.csv") if r["trial"] == "2")
    before = stamps(pruned_dir)
    again = run_cli(search_args(small_root, 6, "hydra.sweeper.n_jobs=1", *PRUNER), cwd, env=env())
    return {"cwd": cwd, "sweep": sweep, "first": first, "again": again, "pruned_dir": pruned_dir, "before": before}


def reference_verdicts(study, trial) -> list[bool]:
    """Optuna's MedianPruner (the search's settings) at each step `trial` reported, on an in-memory study of
    the trials that ended before it started (trials run one at a time)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    before = optuna.create_study(direction=study.direction, pruner=pruner)
    before.add_trials([t for t in study.get_trials() if t.number < trial.number])
    steps = sorted(trial.intermediate_values)
    return [
        pruner.prune(
            before,
            create_trial(
                state=TrialState.FAIL,  # the pruner reads only the intermediate values
                params=trial.params,
                distributions=trial.distributions,
                intermediate_values={s: trial.intermediate_values[s] for s in steps if s <= step},
            ),
        )
        for step in steps
    ]


@pytest.mark.optuna
def test_hopeless_trials_are_pruned_where_the_pruners_rule_says(pruned_search):
    assert pruned_search["first"].returncode == 130, pruned_search["first"].stderr[-3000:]
    assert pruned_search["again"].returncode == 0, pruned_search["again"].stderr[-3000:]
    from optuna.trial import TrialState

    study = load(pruned_search["sweep"])
    trials = {t.number: t for t in study.get_trials()}
    assert [trials[n].state for n in range(7)] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,  # hopeless: stopped after epoch 2, the first epoch the pruner may judge
        TrialState.COMPLETE,
        TrialState.FAIL,  # interrupted by the first command, asked again as trial 5
        TrialState.COMPLETE,
        TrialState.PRUNED,  # trial 2's values: its pruned run folder, not trained again
    ]
    assert trials[5].params == trials[4].params and trials[6].params == trials[2].params
    for n in (0, 1, 2, 3, 5):  # every epoch reported, at step = epoch
        assert sorted(trials[n].intermediate_values) == ([1, 2] if n == 2 else [1, 2, 3]), n
        verdicts = reference_verdicts(study, trials[n])
        assert verdicts[-1] == (trials[n].state == TrialState.PRUNED) and not any(verdicts[:-1]), (n, verdicts)
    pruned_run = read_rows(pruned_search["pruned_dir"] / "history.csv")
    assert [float(r["train_loss"]) for r in pruned_run] == [trials[2].intermediate_values[s] for s in (1, 2)]
    assert {t.params["optim.lr"] for t in trials.values() if t.state == TrialState.PRUNED} == {HOPELESS}


@pytest.mark.optuna
def test_a_pruned_run_is_final_and_an_interrupted_one_resumes(pruned_search):
    sweep, pruned_dir = pruned_search["sweep"], pruned_search["pruned_dir"]
    summary = json.loads((pruned_dir / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs_completed"] == 2
    assert "pruned by the search after epoch 2 of 3" in summary["message"]
    assert stamps(pruned_dir) == pruned_search["before"]  # the second command wrote nothing there
    log = pruned_search["again"].stdout + pruned_search["again"].stderr
    assert f"{pruned_dir}: run already pruned after 2 epochs; nothing to train" in log, log[-3000:]
    assert "Asking again the 1 trial(s) a previous run left unfinished: [4]" in log
    rows = {int(r["trial"]): r for r in read_rows(sweep / "trials.csv")}
    assert [rows[n]["state"] for n in range(7)] == [
        "COMPLETE",
        "COMPLETE",
        "PRUNED",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
        "PRUNED",
    ]
    assert rows[6]["run_dir"] == rows[2]["run_dir"] == pruned_dir.name
    resumed = sweep / rows[5]["run_dir"]  # trial 4's values, whose run the first command interrupted
    assert json.loads((resumed / "summary.json").read_text())["status"] == "completed"
    assert "resuming after epoch 1 of 3" in (resumed / "train.log").read_text()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["optim.lr"] != HOPELESS


@pytest.mark.optuna
def test_the_analysis_shows_pruned_runs_as_such_never_as_winners(pruned_search, tmp_path):
    from analysis import sweep_report

    sweep_report.write([pruned_search["sweep"]], tmp_path / "res", figures=False, metric="train_loss")
    runs = {r["run_dir"].split("/")[-1]: r for r in read_rows(tmp_path / "res" / "runs.csv")}
    assert runs[pruned_search["pruned_dir"].name]["status"] == "pruned"
    assert runs[pruned_search["pruned_dir"].name]["trial"] in ("2", "6")
    ranking = read_rows(tmp_path / "res" / "tables" / "ranking_train_loss.csv")
    assert ranking[0]["status"] == "completed" and float(ranking[0]["optim.lr"]) != HOPELESS
    assert (ranking[-1]["optim.lr"], ranking[-1]["status"], ranking[-1]["mean"]) == ("1e-05", "1 pruned", "")
    table = (tmp_path / "res" / "tables" / "adhoc.md").read_text()
    assert "| lr 1e-5, constant, no wd, tiny | pruned | 2/3 |" in table and "failed" not in table, table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.optuna
def test_optuna_dashboard_serves_the_study_with_its_pruned_trials(pruned_search):
    """The documented command, on loopback over the finished search; its HTTP API read back."""
    port = _free_port()
    storage = f"sqlite:///{pruned_search['sweep'] / 'optuna.db'}"
    dashboard = Path(sys.executable).with_name("optuna-dashboard")  # the console script, as docs/search.md runs it
    cmd = [str(dashboard), storage, "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, studies = time.monotonic() + 120, None
        while studies is None:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr and server.stderr.read()
                time.sleep(0.5)
        (study,) = [s for s in studies if s["study_name"] == "adhoc"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")
        trials = {t["number"]: t for t in detail["trials"]}
        assert [trials[n]["state"] for n in range(7)] == [
            "Complete",
            "Complete",
            "Pruned",
            "Complete",
            "Fail",
            "Complete",
            "Pruned",
        ]
        assert [v["step"] for v in trials[2]["intermediate_values"]] == [1, 2]
        assert len(trials[0]["intermediate_values"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.optuna
def test_a_fresh_install_resolves_current_releases():
    """The optuna extra's versions as installed: Optuna >= 4 with SQLAlchemy 2 and optuna-dashboard, each
    within pyproject.toml's ranges, and no hydra-optuna-sweeper holding them back."""
    import importlib.metadata as md
    import importlib.util
    import tomllib

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for line in [*extras["optuna"], *extras["mlflow"]]:
        req = Requirement(line)
        assert req.specifier.contains(md.version(req.name), prereleases=True), (line, md.version(req.name))
    assert int(md.version("optuna").split(".")[0]) >= 4 and int(md.version("sqlalchemy").split(".")[0]) >= 2
    assert not any(Requirement(line).name == "hydra-optuna-sweeper" for line in extras["optuna"])
    assert importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None  # nor installed beside it
