"""Experiment configs are the assignment's sections; sweeps land in stable folders; launchers run them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from support import fake_data_overrides, run_cli

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import CONFIG_DIR
from hw_hparams.config.overrides import command_jobs
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.engine import device
from hw_hparams.study.sweeps import run_dirs
from hw_hparams.train.preflight import check_overrides, normalize_argv

# The assignment's settings, section by section (batch 128 and SGD momentum 0.9 everywhere).
SECTIONS = {
    "lr_sweep": dict(epochs=15, lr={0.5, 0.05, 0.01}, schedule={"constant"}, wd={0.0}, mixup={None}),
    "schedule_sweep": dict(epochs=300, lr={0.05}, schedule={"constant", "cosine"}, wd={0.0}, mixup={None}),
    "wd_sweep": dict(epochs=300, lr={0.05}, schedule={"cosine"}, wd={5e-4, 1e-4}, mixup={None}),
    "mixup": dict(epochs=300, lr={0.05}, schedule={"cosine"}, wd={5e-4}, mixup={0.2}),
}
SWEPT = {
    "lr_sweep": "optim.lr",
    "schedule_sweep": "schedule",
    "wd_sweep": "optim.weight_decay",
    "mixup": "augmentation",
}
CPU = ["model=tiny", "trainer.progress=false", "trainer.device=cpu"]


def _compose(overrides, hydra=False):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def _job_configs(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return [compose("train", overrides=job) for job in command_jobs(list(overrides), multirun=True)]


@pytest.mark.parametrize("section", SECTIONS)
def test_experiment_configs_compose_to_the_assignments_settings(section):
    want = SECTIONS[section]
    cfg = _compose([f"experiment={section}"], hydra=True)
    assert cfg.experiment_name == section
    assert list(cfg.hydra.sweeper.params) == [SWEPT[section]]
    jobs = _job_configs([f"experiment={section}"])
    assert len(jobs) == max(len(v) for k, v in want.items() if k != "epochs")
    for job in jobs:
        assert (job.epochs, job.batch_size, job.optim.momentum, job.augmentation.crop_flip) == (
            want["epochs"],
            128,
            0.9,
            True,
        )
    assert {j.optim.lr for j in jobs} == want["lr"]
    assert {j.schedule.name.value for j in jobs} == want["schedule"]
    assert {j.optim.weight_decay for j in jobs} == want["wd"]
    assert {j.augmentation.mixup_alpha for j in jobs} == want["mixup"]


def test_command_line_overrides_beat_the_experiment_including_swept_keys():
    assert [j.optim.lr for j in _job_configs(["experiment=lr_sweep", "optim.lr=0.5"])] == [0.5]
    assert [j.optim.lr for j in _job_configs(["experiment=lr_sweep", "optim.lr=0.2,0.1"])] == [0.2, 0.1]
    jobs = _job_configs(["experiment=schedule_sweep", "epochs=2", "optim.lr=0.5", "seed=0,1"])
    assert [(j.epochs, j.optim.lr, j.schedule.name.value, j.seed) for j in jobs] == [
        (2, 0.5, "constant", 0),
        (2, 0.5, "constant", 1),
        (2, 0.5, "cosine", 0),
        (2, 0.5, "cosine", 1),
    ]


def test_both_spellings_of_an_experiment_and_one_line_errors_for_swept_values():
    assert normalize_argv(["-m", "+experiment=lr_sweep", "epochs=2"]) == ["-m", "experiment=lr_sweep", "epochs=2"]
    assert normalize_argv(["epochs=2", "--multirun", "optim.lr=0.1,0.2"]) == [
        "--multirun",
        "epochs=2",
        "optim.lr=0.1,0.2",
    ]
    with pytest.raises(ConfigError, match=r"^optim.weight_decay=-1.0 is not allowed"):
        check_overrides(["experiment=wd_sweep", "optim.weight_decay=1e-4,-1"], multirun=True)
    with pytest.raises(
        ConfigError,
        match=r"^experiment=lr_swep is not an option: "
        r"choose one of lr_sweep, lr_wd_search, mixup, schedule_sweep, wd_sweep \(did you mean lr_sweep\?\)$",
    ):
        check_overrides(["experiment=lr_swep"], multirun=True)


def test_sweep_folders_are_named_by_experiment_and_job_overrides():
    sweep = lambda o: str(_compose(o, hydra=True).hydra.sweep.dir)  # noqa: E731
    assert {sweep([f"experiment={s}"]) for s in SECTIONS} == {f"outputs/multirun/{s}" for s in SECTIONS}
    assert sweep(["optim.lr=0.1"]) == "outputs/multirun/adhoc"
    # Excluded keys (where the data is, the device, eval_test) do not change a job's folder.
    names = [
        p.name
        for p in run_dirs(
            ["experiment=lr_sweep", "epochs=2", "data.root=/x", "trainer.device=cpu", "eval_test=true"], Path("s")
        )
    ]
    assert names == ["epochs=2,optim.lr=0.5", "epochs=2,optim.lr=0.05", "epochs=2,optim.lr=0.01"]


def test_cuda_job_devices_spread_jobs_over_gpus(monkeypatch):
    # k consecutive jobs share a GPU, round robin: job n -> (n // k) % n_gpus.
    assert [device.gpu_for_job(n, 2, 3) for n in range(8)] == [0, 0, 1, 1, 2, 2, 0, 0]
    assert [device.gpu_for_job(n, 1, 2) for n in range(4)] == [0, 1, 0, 1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    made_current = []  # pick_device makes the job's GPU the current one (no GPU here to really do it)
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    assert device.job_num() == 0  # outside a sweep
    cfg = _compose([], hydra=True)
    with open_dict(cfg):
        cfg.hydra.job.num = 5
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # restored after the test
    HydraConfig.instance().set_config(cfg)  # what Hydra does in every job of a sweep
    assert device.job_num() == 5
    assert device.pick_device("cuda:job") == torch.device("cuda", 1)
    assert device.pick_device("cuda:job/2") == torch.device("cuda", 2)
    assert made_current == [torch.device("cuda", 1), torch.device("cuda", 2)]
    check_overrides(["trainer.device=cuda:job/3"])
    with pytest.raises(ConfigError, match="^trainer.device='cuda:job/0' is not allowed"):
        check_overrides(["trainer.device=cuda:job/0"])


def test_slurm_launcher_requeues_the_same_job():
    import submitit

    from hydra_plugins.hw_hparams_slurm.slurm_launcher import SlurmLauncher

    launcher = _compose(["hydra/launcher=slurm"], hydra=True).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hw_hparams_slurm.slurm_launcher.SlurmLauncher"
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0 and launcher.gpus_per_node == 1
    params = {k: v for k, v in launcher.items() if k != "_target_"}
    job = (["optim.lr=0.5"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    resubmission = SlurmLauncher(**params).checkpoint(*job)  # what submitit calls on USR2 before requeueing
    assert isinstance(resubmission, submitit.helpers.DelayedSubmission)
    assert isinstance(resubmission.function, SlurmLauncher) and resubmission.args == job


@pytest.mark.parametrize("variant, gpu_line", [("slurm", "#SBATCH --gpus-per-node=1"), ("slurm_cpu", None)])
def test_the_job_script_sbatch_checks_is_the_one_submitit_submits(variant, gpu_line, tmp_path):
    """SlurmLauncher.setup runs `sbatch --test-only` on the script its executor makes (submitit's private
    `_make_submission_file_text`, pinned here): the launcher's settings, as the plugin passes them."""
    from hydra_plugins.hw_hparams_slurm.slurm_launcher import SlurmLauncher

    launcher = _compose(
        [f"hydra/launcher={variant}", "hydra.launcher.partition=p1", "hydra.launcher.timeout_min=7"], hydra=True
    ).hydra.launcher
    params = {k: v for k, v in launcher.items() if k != "_target_"} | {"submitit_folder": str(tmp_path / "%j")}
    script = SlurmLauncher(**params).executor()._executor._make_submission_file_text("true", "check")
    lines = set(script.splitlines())
    assert {
        "#SBATCH --partition=p1",
        "#SBATCH --time=7",
        f"#SBATCH --cpus-per-task={launcher.cpus_per_task}",
        f"#SBATCH --mem={launcher.mem_gb}GB",
        f"#SBATCH --signal=USR2@{launcher.signal_delay_s}",
    } <= lines
    assert [l for l in lines if "gpus" in l] == ([gpu_line] if gpu_line else [])
    assert not list(tmp_path.iterdir())  # building the script writes nothing


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep_data")
    write_fake_cifar100(root, train=150, test=20, seed=0)
    return root


def _finished(run_dir: Path) -> dict:
    import json

    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "completed" and s["epochs_completed"] == s["epochs"], (run_dir, s["status"])
    return s


def test_submitit_local_runs_a_two_job_sweep_and_a_rerun_trains_nothing(small_data, tmp_path):
    args = ["-m", "experiment=wd_sweep", "epochs=1", *CPU, *fake_data_overrides(small_data, val_size=50)]
    first = run_cli(args + ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    sweep = tmp_path / "outputs" / "multirun" / "wd_sweep"
    assert (sweep / ".submitit").is_dir()
    want = {
        f"data.val_size=50,epochs=1,model.name=tiny,optim.lr=0.05,optim.weight_decay={wd}" for wd in ("5e-4", "1e-4")
    }
    runs = {p.name: _finished(p) for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert set(runs) == want
    assert {r["config"]["optim"]["weight_decay"] for r in runs.values()} == {5e-4, 1e-4}
    assert all(
        r["config"]["schedule"]["name"] == "cosine" and math.isclose(r["config"]["optim"]["lr"], 0.05)
        for r in runs.values()
    )
    stamps = {
        p: p.stat().st_mtime_ns for name in want for p in (sweep / name / "history.csv", sweep / name / "checkpoint.pt")
    }

    again = run_cli(
        [a.replace("experiment=", "+experiment=") for a in args], tmp_path
    )  # other launcher, other spelling
    assert again.returncode == 0, again.stderr[-2000:]
    assert (again.stdout + again.stderr).count("nothing to train") == 2
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")} == want
