"""Run folders: one name per setting, one list of keys that do not make a run, and a refused command
changes nothing in a run folder. Expected names are written out by hand (the reference)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import fault_inject
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import TINY_RUN, fake_data_overrides, run_cli

from hw_hparams.config import naming
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import job_folder
from hw_hparams.config.roles import flat, run_invariant
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.runs.folder import check_same_run
from hw_hparams.train.preflight import check_overrides


def folders(overrides: list[str], multirun: bool = False) -> list[str]:
    """The run folder (relative to the working folder) of every job of a command line."""
    return [str(job_folder(cfg, multirun)) for cfg in check_overrides(overrides, multirun, limit=None)]


@pytest.mark.parametrize(
    "spellings, name",
    [
        (["lr=lr0.5", "optim.lr=0.5", "optim.lr=5e-1", "optim.lr=0.50"], "optim.lr=0.5"),
        (
            [
                "regularization=wd5e-4",
                "optim.weight_decay=5e-4",
                "optim.weight_decay=0.0005",
                "regularization=wd5e-4 optim.weight_decay=5.0e-4",
            ],
            "optim.lr=0.05,optim.weight_decay=5e-4",
        ),
        (["schedule=cosine", "schedule.name=cosine"], "optim.lr=0.05,schedule.name=cosine"),
        (
            ["augmentation=none", "augmentation.crop_flip=false", "augmentation.crop_flip=False"],
            "augmentation.crop_flip=false,optim.lr=0.05",
        ),
        (["augmentation=mixup", "augmentation.mixup_alpha=0.2"], "augmentation.mixup_alpha=0.2,optim.lr=0.05"),
        (["model=tiny", "model.name=tiny"], "model.name=tiny,optim.lr=0.05"),
        # keys that do not change what a run computes never name it
        (
            [
                "",
                "data.verify_checksums=false",
                "trainer.compile=false",
                "trainer.device=cpu",
                "trainer.progress=true",
                "data.root=/elsewhere",
                "data.download=false",
                "eval_test=true",
                "trainer.restart=true",
                "lr=lr0.05",
                "seed=0",
            ],
            "optim.lr=0.05",
        ),
    ],
)
def test_every_spelling_of_a_setting_names_one_folder(spellings, name):
    for line in spellings:
        assert folders(line.split()) == [f"outputs/run/{name}"], line


def test_a_sweep_names_jobs_like_single_runs_and_an_experiment_names_what_it_sweeps():
    assert folders(["optim.lr=0.5,0.01", "augmentation.crop_flip=False"], multirun=True) == [
        "outputs/multirun/adhoc/augmentation.crop_flip=false,optim.lr=0.5",
        "outputs/multirun/adhoc/augmentation.crop_flip=false,optim.lr=0.01",
    ]
    assert folders(["experiment=lr_sweep"], multirun=True) == [
        f"outputs/multirun/lr_sweep/optim.lr={v}" for v in ("0.5", "0.05", "0.01")
    ]
    assert folders(["experiment=schedule_sweep", "lr=lr0.01"], multirun=True) == [
        f"outputs/multirun/schedule_sweep/optim.lr=0.01,schedule.name={s}" for s in ("constant", "cosine")
    ]
    assert folders(["experiment=wd_sweep", "optim.weight_decay=0.0005"], multirun=True) == [
        "outputs/multirun/wd_sweep/optim.lr=0.05,optim.weight_decay=5e-4"
    ]
    assert folders(["experiment=mixup", "augmentation=cropflip,mixup"], multirun=True) == [
        f"outputs/multirun/mixup/augmentation.mixup_alpha={a},optim.lr=0.05" for a in ("null", "0.2")
    ]
    assert folders(["experiment=lr_sweep", "optim.lr=0.5", "epochs=2"]) == [
        "outputs/run/lr_sweep/epochs=2,optim.lr=0.5"
    ]


@pytest.mark.parametrize(
    "value, text",
    [
        (0.05, "0.05"),
        (5e-4, "5e-4"),
        (0.0005, "5e-4"),
        (1e-4, "1e-4"),
        (0.5, "0.5"),
        (0.01, "0.01"),
        (1.0, "1"),
        (123456.0, "123456"),
        (2.5e-7, "2.5e-7"),
        (0.1 + 0.2, "0.30000000000000004"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (15, "15"),
        ("cosine", "cosine"),
        ("a/b,c=d e", "a%2Fb%2Cc%3Dd%20e"),
    ],
)
def test_values_have_one_spelling(value, text):
    assert naming.spell(value) == text


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_spelled_float_reads_back_as_the_same_float(x):
    assert float(naming.spell(x)) == x


# One changed value per config key. Every key of the composed config must be here, so that a new key
# cannot join the config without a decision on whether it makes a run.
OTHER_VALUE = {
    "epochs": "3",
    "batch_size": "64",
    "seed": "1",
    "eval_test": "true",
    "experiment_name": "elsewhere",
    "optim.lr": "0.1",
    "optim.momentum": "0.5",
    "optim.weight_decay": "1e-3",
    "schedule.name": "cosine",
    "augmentation.crop_flip": "false",
    "augmentation.mixup_alpha": "0.4",
    "data.root": "/other",
    "data.download": "false",
    "data.val_size": "500",
    "data.split_seed": "3",
    "data.verify_checksums": "false",
    "model.name": "tiny",
    "trainer.device": "cpu",
    "trainer.progress": "true",
    "trainer.compile": "false",
    "trainer.precision": "bf16",
    "trainer.restart": "true",
    "trainer.tf32": "false",
    "objective.metric": "val_loss",
    "objective.at": "best",
    "search.trial": "3",
    "search.storage": "sqlite:////s/optuna.db",
    "search.study": "st",
    "logger.dir": "/trackers",
    "logger.study": "s",
    "logger.tensorboard.enabled": "true",
    "logger.mlflow.enabled": "true",
    "logger.mlflow.tracking_uri": "sqlite:////t/m.db",
    "logger.mlflow.experiment": "e",
    "logger.wandb.enabled": "true",
    "logger.wandb.mode": "online",
    "logger.wandb.project": "p",
    "logger.wandb.entity": "me",
}


def test_one_list_of_run_invariant_keys_serves_the_name_and_the_resume_check(tmp_path):
    (base,) = check_overrides([])
    config = naming.task_dict(base)
    assert set(flat(config)) == set(OTHER_VALUE), "classify every config key here and in hw_hparams/config/roles.py"
    name = job_folder(base, multirun=False)
    for key, value in OTHER_VALUE.items():
        (changed,) = check_overrides([f"{key}={value}"])
        other = naming.task_dict(changed)
        same_folder = job_folder(changed, multirun=False) == name or key == "experiment_name"
        try:
            check_same_run(tmp_path, config, other)
            resumable = True
        except ConfigError as err:
            resumable = False
            assert key in str(err)
        assert same_folder == resumable == run_invariant(key), key
    assert str(job_folder(check_overrides(["experiment_name=elsewhere"])[0], False)).startswith(
        "outputs/run/elsewhere/"
    )


def test_the_parsers_and_sweeper_we_mirror_behave_as_we_rely_on():
    """Pins Hydra's private command-line parser (overrides.parse_command_line) and checks naming.expand
    against Hydra's basic sweeper, which runs the jobs whose folders preflight checks."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = get_args_parser().parse_args(["-m", "a=1", "b=x,y", "--cfg", "job"])
    assert (args.multirun, args.overrides, args.cfg, args.help, args.info) == (
        True,
        ["a=1", "b=x,y"],
        "job",
        False,
        None,
    )
    line = ["optim.lr=0.5,0.05", "seed=0,1", "model=tiny", "augmentation.crop_flip=false", "optim.lr=0.1,0.2"]
    reference = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(line), None)[0]
    assert naming.expand(line) == reference


# --- a refused command changes nothing ------------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_and_unfinished(tmp_path_factory):
    """A finished run (1 epoch) and an interrupted one (1 of 3 epochs), each with .hydra/ and train.log."""
    cwd = tmp_path_factory.mktemp("refusals")
    data, small = cwd / "data", cwd / "small"
    write_fake_cifar100(data, train=300, test=50, seed=0)
    write_fake_cifar100(small, train=60, test=10, seed=0)
    base = [*fake_data_overrides(data, val_size=100), *TINY_RUN, "trainer.device=cpu"]
    assert run_cli([*base, "epochs=1"], cwd).returncode == 0
    stopped = fault_inject.run_cli([*base, "epochs=3"], cwd, fault="step:6:term")  # inside epoch 2 (4 steps each)
    assert stopped.returncode == 143, stopped.stderr
    runs = {json.loads((p / "summary.json").read_text())["status"]: p for p in (cwd / "outputs" / "run").iterdir()}
    assert set(runs) == {"completed", "interrupted"} and all(
        (p / ".hydra" / "config.yaml").exists() and (p / "train.log").exists() for p in runs.values()
    )
    return cwd, base, small, runs


def test_refused_commands_leave_every_file_of_a_run_byte_for_byte(finished_and_unfinished, tmp_path):
    cwd, base, small, runs = finished_and_unfinished
    done, stopped = runs["completed"], runs["interrupted"]
    before = {run: _digest(run) for run in (done, stopped)}
    everything = sorted(p for p in (cwd / "outputs").rglob("*"))

    def at(run: Path) -> str:
        return f"hydra.run.dir='{run}'"

    refused = [  # (command line, words of its one error line)
        ([*base, "epochs=1", "optim.lr=0.01", at(done)], ["optim.lr=0.05", "not 0.01"]),
        ([*base, "epochs=1", "data.val_size=100000", at(done)], ["data.val_size=100", "not 100000"]),
        ([*base, "epochs=1", "model=mobilenetv2", at(done)], ["model.name"]),
        ([*base, "epochs=3", at(done)], ["epochs=1", "not 3"]),
        ([*base, "epochs=3", "data.val_size=100000", at(stopped)], ["data.val_size"]),
        (
            [*base, "epochs=3", f"data.root={small}"],
            ["data.val_size=100 is not allowed"],
        ),  # needs the data: val_size > 59
        ([*base, "epochs=3", "seed=-1", at(stopped)], ["seed=-1 is not allowed"]),
        (
            [
                *base,
                "-m",
                "epochs=1,3",
                "optim.lr=0.05",
                f"hydra.sweep.dir='{cwd}/outputs/run'",
                f"hydra.sweep.subdir='{done.name}'",
            ],
            ["epochs=1", "not 3"],
        ),
    ]
    for args, words in refused:
        result = run_cli(args, cwd)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and all(w in lines[0] for w in words), (args, result.stderr)
    # a live process holding the unfinished run
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'a'); "  # held until killed
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(stopped / ".run.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli([*base, "epochs=3"], cwd)
        assert result.returncode == 2 and "is in use by" in result.stderr, result.stderr
    finally:
        holder.kill()
        holder.wait()
    (stopped / ".run.lock").unlink()
    assert {run: _digest(run) for run in (done, stopped)} == before
    assert sorted(p for p in (cwd / "outputs").rglob("*")) == everything  # and no new folder anywhere
