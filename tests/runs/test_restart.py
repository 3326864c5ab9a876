"""Training a run again from epoch 1 (`trainer.restart=force`): the earlier files kept whole in
<run>/old-N/, the new history a fresh run's and the only one in the folder, in a fused sweep too; a
SLURM job's later attempt resumes what it restarted; a refused command changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_util import STEPS_PER_EPOCH
from support import ONE_THREAD, TINY_RUN, fake_data_overrides, read_rows, run_cli, without_timing
from support import compose_train as cfg
from torch.optim.optimizer import register_optimizer_step_post_hook

import hw_hparams.train.lifecycle as train_module
from hw_hparams.config.errors import ConfigError
from hw_hparams.study.args import parse_args

RUN = [*TINY_RUN, "epochs=2"]


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder (its own: not those kept in old-N/), by relative path -> content."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).parts[0].startswith("old-") and p.name != ".run.lock"
    }


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_force_trains_a_finished_run_again_and_keeps_its_earlier_files_whole(tmp_path, fake_root):
    args = [*fake_data_overrides(fake_root), *RUN]
    assert run_cli(args, tmp_path, env=ONE_THREAD).returncode == 0
    (run,) = (tmp_path / "outputs" / "run").iterdir()
    first = _tree(run)
    again = run_cli(args, tmp_path, env=ONE_THREAD)  # the finished run is not trained again: says how to
    assert "nothing to train (add trainer.restart=force to train it again from epoch 1" in again.stdout
    assert _tree(run) == first

    forced = run_cli([*args, "trainer.restart=force"], tmp_path, env=ONE_THREAD)
    assert forced.returncode == 0, forced.stderr
    said = [line for line in forced.stdout.splitlines() if "trainer.restart=force: training it again" in line]
    assert len(said) == 1 and said[0].endswith(f"(completed after 2 epochs) are in outputs/run/{run.name}/old-1")
    assert _tree(run / "old-1") == first  # every earlier file, byte for byte, .hydra/ and train.log included
    new = read_rows(run / "history.csv")
    assert without_timing(new) == without_timing(read_rows(run / "old-1" / "history.csv"))  # a fresh run's
    log = (run / "train.log").read_text()
    assert log.count(" - epoch 1/2 ") == 1 and log.count(" - epoch 2/2 ") == 1 and "old-1" in log  # not mixed
    assert _summary(run)["status"] == "completed"
    assert _summary(run)["started_at"] > _summary(run / "old-1")["finished_at"]

    second = _tree(run)
    assert run_cli([*args, "trainer.restart=force"], tmp_path, env=ONE_THREAD).returncode == 0
    assert _tree(run / "old-2") == second and _tree(run / "old-1") == first  # each history apart


def test_force_trains_every_run_of_a_fused_sweep_again(tmp_path, fake_root):
    args = ["-m", *fake_data_overrides(fake_root), *TINY_RUN, "epochs=1", "optim.lr=0.05,0.5", "hydra/launcher=fused"]
    assert run_cli(args, tmp_path, env=ONE_THREAD).returncode == 0
    runs = sorted((tmp_path / "outputs" / "multirun" / "adhoc").glob("*optim.lr=*"))
    first = {r: _tree(r) for r in runs}
    result = run_cli([*args, "trainer.restart=force"], tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("trainer.restart=force: training it again from epoch 1") == 2
    for r in runs:
        assert _tree(r / "old-1") == first[r]
        assert without_timing(read_rows(r / "history.csv")) == without_timing(read_rows(r / "old-1" / "history.csv"))
        assert _summary(r)["status"] == "completed"


def test_a_requeued_slurm_job_resumes_the_run_it_restarted(tmp_path, fake_root, monkeypatch):
    """SLURM runs a requeued job's command again, trainer.restart=force included: its later attempt
    resumes the run the first attempt restarted, and ends with an uninterrupted run's history."""
    overrides = [*fake_data_overrides(fake_root), *RUN]
    run = tmp_path / "run"
    train_module.run(cfg(overrides), run)
    first = _tree(run)

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    steps = []

    def stop_in_epoch_2(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == STEPS_PER_EPOCH + 3:
            raise KeyboardInterrupt

    hook = register_optimizer_step_post_hook(stop_in_epoch_2)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_module.run(cfg([*overrides, "trainer.restart=force"]), run)
    finally:
        hook.remove()
    assert _tree(run / "old-1") == first and _summary(run)["epochs_completed"] == 1

    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the same job, requeued: it resumes
    summary = train_module.run(cfg([*overrides, "trainer.restart=force"]), run)
    assert summary["status"] == "completed" and not (run / "old-2").exists()
    assert without_timing(read_rows(run / "history.csv")) == without_timing(read_rows(run / "old-1" / "history.csv"))

    monkeypatch.setenv("SLURM_JOB_ID", "78")  # another job with the same command: trained again
    train_module.run(cfg([*overrides, "trainer.restart=force"]), run)
    assert (run / "old-2" / "history.csv").exists()


@pytest.mark.parametrize(
    "bad, words",
    [
        (["trainer.restart=force", "data.root=nowhere"], ["data.root='nowhere'", "missing"]),
        (["trainer.restart=always"], ["trainer.restart='always' is not allowed: one of false, true, force"]),
    ],
)
def test_a_refused_restart_changes_nothing(tmp_path, fake_root, bad, words):
    args = [*fake_data_overrides(fake_root), *RUN]
    assert run_cli(args, tmp_path, env=ONE_THREAD).returncode == 0
    (run,) = (tmp_path / "outputs" / "run").iterdir()
    before = _tree(run)
    result = run_cli([*args, *bad], tmp_path, env=ONE_THREAD)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr
    assert _tree(run) == before and not list(run.glob("old-*"))


def test_a_study_refuses_force_in_one_line():
    with pytest.raises(ConfigError, match=r"^trainer.restart=force cannot apply to a study .* study=NAME"):
        parse_args(["demo=true", "trainer.restart=force"])
    assert parse_args(["trainer.restart=true"])[1] == ["trainer.restart=true"]  # a lost checkpoint's restart
