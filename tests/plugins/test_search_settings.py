"""hydra/sweeper=search's settings: each named pruner (and any by `_target_`) is Optuna's own class with its
overrides applied, in the sweeper's config and in the job's (where the run asks it); a sampler by `_target_`;
a study written by the old hydra-optuna-sweeper's Optuna ends the command in one line saying how to upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from support import CONFIG_DIR, TINY_RUN, fake_data_overrides, run_cli

import hw_hparams.config.schema  # noqa: F401 - registers the config's schema, as the command does
from hw_hparams.plugins import register_plugins

register_plugins()  # hydra/sweeper=search and its pruners, as the command registers them


def sweeper(*overrides: str):
    """hydra.sweeper as `python -m hw_hparams.train -m hydra/sweeper=search overrides` composes it."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/sweeper=search", *overrides], return_hydra_config=True)
    return cfg.hydra.sweeper


@pytest.mark.optuna
@pytest.mark.parametrize(
    "name, cls, overrides, attrs",
    [
        ("none", "NopPruner", [], {}),
        ("median", "MedianPruner", ["hydra.sweeper.pruner.n_warmup_steps=3"], {"_n_warmup_steps": 3}),
        (
            "successive_halving",
            "SuccessiveHalvingPruner",
            ["hydra.sweeper.pruner.reduction_factor=2"],
            {"_reduction_factor": 2},
        ),
        ("hyperband", "HyperbandPruner", ["hydra.sweeper.pruner.max_resource=10"], {"_max_resource": 10}),
        ("wilcoxon", "WilcoxonPruner", ["hydra.sweeper.pruner.p_threshold=0.05"], {"_p_threshold": 0.05}),
    ],
)
def test_each_named_pruner_is_optunas_with_its_overrides(name, cls, overrides, attrs):
    import optuna

    pruner = instantiate(sweeper(f"hydra/sweeper/pruner={name}", *overrides).pruner)
    assert type(pruner) is getattr(optuna.pruners, cls)
    assert {k: getattr(pruner, k) for k in attrs} == attrs


@pytest.mark.optuna
def test_any_pruner_and_sampler_by_target():
    import optuna

    node = sweeper(
        "hydra.sweeper.pruner._target_=optuna.pruners.PercentilePruner",
        "+hydra.sweeper.pruner.percentile=25.0",
        "hydra.sweeper.sampler._target_=optuna.samplers.QMCSampler",
        "hydra.sweeper.sampler.seed=3",
    )
    pruner, sampler = instantiate(node.pruner), instantiate(node.sampler)
    assert type(pruner) is optuna.pruners.PercentilePruner and pruner._percentile == 25.0
    assert type(sampler) is optuna.samplers.QMCSampler and sampler._seed == 3


@pytest.mark.optuna
def test_the_job_asks_the_pruner_of_the_sweepers_config(tmp_path):
    """runs/trial.py's of_job: a job's trial carries the pruner of its Hydra config, as the sweeper built it."""
    import optuna

    from hw_hparams.runs import trial

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/sweeper=search",
                "hydra/sweeper/pruner=hyperband",
                "search.trial=0",
                f"search.storage={storage}",
                "search.study=s",
            ],
            return_hydra_config=True,
        )
    job_trial = trial.of_job(cfg, cfg.hydra)
    assert type(job_trial.trial.study.pruner) is optuna.pruners.HyperbandPruner and job_trial.number == 0


@pytest.mark.optuna
def test_a_study_of_the_old_sweeper_is_one_line_on_how_to_upgrade(fake_root, tmp_path):
    """An optuna.db whose schema an older Optuna wrote (stamped at Optuna 2.6's revision, as optuna 2.10 left it)."""
    import optuna
    from optuna.storages import RDBStorage

    sweep = tmp_path / "outputs" / "multirun" / "adhoc"
    sweep.mkdir(parents=True)
    url = f"sqlite:///{sweep / 'optuna.db'}"
    optuna.create_study(study_name="adhoc", storage=url)
    RDBStorage(url)._version_manager._set_alembic_revision("v2.6.0.a")
    before = sorted(p.name for p in sweep.iterdir())
    args = ["-m", "hydra/sweeper=search", *TINY_RUN, *fake_data_overrides(fake_root), "epochs=1", "trainer.device=cpu"]
    res = run_cli([*args, "optim.lr=interval(0.01, 0.1)", "hydra.sweeper.n_trials=1"], tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    (line,) = [x for x in res.stderr.splitlines() if "optuna storage upgrade" in x]
    assert line.endswith(f"upgrade it in place with: optuna storage upgrade --storage {url}"), line
    assert sorted(p.name for p in sweep.iterdir()) == before
    assert not list(Path(tmp_path / "outputs").rglob("summary.json"))


@pytest.mark.optuna
@pytest.mark.parametrize(
    "override, said",
    [
        (
            "hydra.sweeper.pruner._target_=optuna.pruners.MedianPrunr",
            "error: hydra.sweeper.pruner._target_=optuna.pruners.MedianPrunr is not a class that imports: give an "
            "Optuna pruner (optuna.pruners.*) or your own (did you mean optuna.pruners.MedianPruner?)",
        ),
        (
            "hydra/sweeper/pruner=medain",
            "error: hydra/sweeper/pruner=medain is not an option: choose one of hyperband, median, none, "
            "successive_halving, wilcoxon (did you mean median?)",
        ),
    ],
)
def test_a_misspelled_pruner_is_one_line_and_exit_2_before_anything_is_written(fake_root, tmp_path, override, said):
    args = ["-m", "hydra/sweeper=search", *TINY_RUN, *fake_data_overrides(fake_root), "trainer.device=cpu"]
    res = run_cli([*args, "optim.lr=interval(0.01, 0.1)", override], tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == said, res.stderr[-3000:]
    assert not (tmp_path / "outputs").exists()
