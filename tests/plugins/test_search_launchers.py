"""hydra/sweeper=search under each launcher: a hopeless trial pruned through the study from the basic
launcher's process, a joblib worker and a fused group (SLURM: tests/slurm/test_slurm_search.py); a fused
group that loses a run goes on exactly; a slot takes the next trial while a slower one of its batch still runs.

The planned trials (search_plan.by_trial): two that learn at lr 0.03, then lr 1e-5 (hopeless: it cannot lower
the training loss in 3 epochs) beside lr 0.1; the median pruner (2 startup trials, judging from epoch 2)
stops the hopeless one after epoch 2, whichever process trains it.
"""

from __future__ import annotations

import pytest
import rendezvous
import search_plan
from run_compare import assert_same_run
from search_plan import search_args
from support import PATIENCE_S, compose_train, read_rows, run_cli, small_data_overrides

SWEEP = "outputs/multirun/adhoc"
MEDIAN = [
    "hydra/sweeper/pruner=median",
    "hydra.sweeper.pruner.n_startup_trials=2",
    "hydra.sweeper.pruner.n_warmup_steps=2",
]


@pytest.mark.optuna
@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra.sweeper.n_jobs=1"],
        ["hydra.sweeper.n_jobs=1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1"],
        ["hydra.sweeper.n_jobs=2", "hydra/launcher=fused"],  # trials 2 and 3 as one network, then trial 3 alone
    ],
    ids=["basic", "joblib", "fused"],
)
def test_the_hopeless_trial_is_pruned_under_each_launcher(small_root, tmp_path, launcher):
    import optuna
    from optuna.trial import TrialState

    res = run_cli(
        [*search_args(small_root, 4, *launcher), *MEDIAN], tmp_path, env=search_plan.env("0.03:0,0.03:1,1e-5:2,0.1:3")
    )
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = tmp_path / SWEEP
    study = optuna.load_study(study_name="adhoc", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED, TrialState.COMPLETE]
    assert [len(t.intermediate_values) for t in study.get_trials()] == [3, 3, 2, 3]
    assert [r["state"] for r in read_rows(sweep / "trials.csv")] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    if "hydra/launcher=fused" in launcher:
        log = res.stdout + res.stderr
        assert "1 run(s) left the fused group; it goes on with 1" in log, log[-3000:]


class Scripted:
    """A trial whose pruner stops the run after epoch `at` (None: never), standing in for a study."""

    def __init__(self, at: int | None) -> None:
        self.at, self.number, self.epochs = at, 0, 0

    def report(self, rows: list[dict]) -> None:
        self.epochs = len(rows)

    def should_prune(self) -> bool:
        return self.at is not None and self.epochs >= self.at


def test_a_fused_group_that_loses_a_run_goes_on_exactly(small_root, tmp_path, monkeypatch):
    """Three runs fused, the second pruned after epoch 1: the other two go on as a group of two, each
    with the history and weights it has alone (the fused runs' tolerances, tests/train/test_fused.py)."""
    from hw_hparams.train import lifecycle
    from hw_hparams.train.lifecycle import run, run_group
    from hw_hparams.train.loop import Member

    base = [*small_data_overrides(small_root), "model=tiny", "epochs=3", "batch_size=50", "trainer.progress=false"]
    configs = [compose_train([*base, f"optim.lr={lr}", f"seed={s}"]) for lr, s in ((0.05, 0), (0.02, 1), (0.01, 2))]
    for i, cfg in enumerate(configs):
        run(cfg, tmp_path / f"alone{i}")
    monkeypatch.setattr(lifecycle.trial, "of_job", lambda cfg, hydra_cfg: Scripted(1 if cfg.seed == 1 else None))
    outcomes = run_group([Member(cfg, tmp_path / f"fused{i}") for i, cfg in enumerate(configs)])
    assert [o.summary["status"] for o in outcomes] == ["completed", "pruned", "completed"]
    assert outcomes[1].summary["epochs_completed"] == 1
    for i in (0, 2):
        assert_same_run(tmp_path / f"alone{i}", tmp_path / f"fused{i}", 1e-5, 1, 1e-3)
        assert "1 run(s) left the fused group; it goes on with 2" in (tmp_path / f"fused{i}" / "train.log").read_text()
    alone, pruned = read_rows(tmp_path / "alone1" / "history.csv"), read_rows(tmp_path / "fused1" / "history.csv")
    assert len(pruned) == 1 and abs(float(pruned[0]["train_loss"]) - float(alone[0]["train_loss"])) < 1e-5


@pytest.mark.optuna
def test_a_free_slot_takes_the_next_trial_while_a_slower_one_of_its_batch_still_runs(small_root, tmp_path):
    """joblib, 2 slots, 3 trials: trial 0 holds at its start until trial 2 has started, which only a slot freed
    by trial 1 can start; behind a batch barrier trial 2 would wait for trial 0, which would give up."""
    args = [
        *search_args(small_root, 3, "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
        *rendezvous.overrides(waits="0", for_="2", key="search.trial"),
    ]
    args[args.index("epochs=3")] = "epochs=1"
    res = run_cli(
        args, tmp_path, env=search_plan.env("0.03:0,0.03:1,0.03:2", MEET_DIR=str(tmp_path / "meet")), timeout=PATIENCE_S
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list((tmp_path / "meet").glob("0.*.met"))) == 1, sorted(p.name for p in (tmp_path / "meet").iterdir())
    assert not list((tmp_path / "meet").glob("*.gave-up"))
    assert [r["state"] for r in read_rows(tmp_path / SWEEP / "trials.csv")] == ["COMPLETE"] * 3
