"""Hydra's own flags on the training command line: `--cfg` as Hydra prints it (with the run folders
resolved), `-m ... --cfg` as a preview of every job of the sweep (Hydra refuses the pair), and flags
and overrides in any order. Mistakes with these flags are rows of test_user_errors.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from support import run_cli

from hw_hparams.config.naming import CONFIG_DIR, task_dict
from hw_hparams.study.sweeps import run_dirs
from hw_hparams.train.__main__ import _hydra_main, main
from hw_hparams.train.preflight import normalize_argv


def _train(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """(exit status, stdout) of `python -m hw_hparams.train *argv`, in-process."""
    monkeypatch.setattr(sys, "argv", ["hw-train", *argv])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr().out
    return code, out


def _hydra_prints(argv: list[str], monkeypatch, capsys) -> str:
    """What Hydra itself prints for `argv` (our entry's checks and printing bypassed)."""
    monkeypatch.setattr(sys, "argv", ["hw-train", *argv])
    _hydra_main()
    return capsys.readouterr().out


def _job(overrides: list[str]) -> dict:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return task_dict(compose("train", overrides=overrides))


def test_a_sweep_preview_prints_every_jobs_config_and_folder_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = ["-m", "optim.lr=0.1,0.2", "trainer.device=cuda", "--cfg", "job"]  # cuda: a preview needs no GPU
    code, out = _train(line, monkeypatch, capsys)
    assert code == 0 and list(tmp_path.iterdir()) == []
    documents = list(yaml.safe_load_all(out))
    assert documents == [_job(["optim.lr=0.1", "trainer.device=cuda"]), _job(["optim.lr=0.2", "trainer.device=cuda"])]
    folders = run_dirs(["optim.lr=0.1,0.2"], Path("outputs/multirun/adhoc"))  # the device names no folder
    headers = [line for line in out.splitlines() if line.startswith("# ")]
    assert headers == [
        "# job 1 of 2: optim.lr=0.1 trainer.device=cuda",
        f"# run folder: {folders[0]}",
        "# job 2 of 2: optim.lr=0.2 trainer.device=cuda",
        f"# run folder: {folders[1]}",
    ]


def test_a_sweep_preview_of_one_package_with_an_experiment(monkeypatch, capsys):
    code, out = _train(["-m", "experiment=lr_sweep", "--cfg", "job", "--package", "optim"], monkeypatch, capsys)
    assert code == 0
    assert [d["lr"] for d in yaml.safe_load_all(out)] == [0.5, 0.05, 0.01]
    assert out.count("# @package optim\n") == 3 and "# job 3 of 3: optim.lr=0.01 experiment=lr_sweep\n" in out


@pytest.mark.optuna
def test_a_search_preview_says_its_jobs_are_the_ends_of_its_ranges(monkeypatch, capsys):
    code, out = _train(["-m", "experiment=lr_wd_search", "--cfg", "job", "-p", "optim.lr"], monkeypatch, capsys)
    assert code == 0 and out.startswith("# hydra/sweeper=search picks its trials as it runs;")
    assert sorted({float(d) for d in yaml.safe_load_all(out)}) == [0.001, 1.0]


def test_cfg_prints_what_hydra_prints_with_the_run_folder_resolved(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for cfg in ("job", "hydra", "all"):
        line = ["--cfg", cfg, "optim.lr=0.1", "schedule=cosine"]
        assert _train(line, monkeypatch, capsys) == (0, _hydra_prints(line, monkeypatch, capsys)), cfg
    # Hydra resolves `--cfg hydra` without the job's keys, which name the run folder: outputs/run/default
    code, out = _train(["--cfg", "hydra", "--resolve", "-p", "hydra.run", "optim.lr=0.1"], monkeypatch, capsys)
    assert code == 0 and yaml.safe_load(out) == {"dir": "outputs/run/optim.lr=0.1"}
    assert list(tmp_path.iterdir()) == []


def test_overrides_may_stand_before_between_and_after_hydras_flags(tmp_path):
    assert normalize_argv(["-m", "optim.lr=0.1", "--cfg", "job", "epochs=2", "-p", "optim"]) == [
        "-m",
        "optim.lr=0.1",
        "epochs=2",
        "--cfg",
        "job",
        "-p",
        "optim",
    ]
    # in a process of its own: --info sets up Hydra's logging
    result = run_cli(["--info", "config", "optim.lr=0.25"], tmp_path)  # optim.lr=0.25: no argument of --info
    assert result.returncode == 0 and "lr: 0.25" in result.stdout, result.stderr
