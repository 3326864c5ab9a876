"""SLURM's requeue signal inside a run, with submitit's own handler installed as in a SLURM job (no cluster needed).

submitit's `SignalHandler.checkpoint_and_try_requeue` is the real one; only `scontrol requeue`
(`SlurmJobEnvironment._requeue`) is replaced by a child process that, as SLURM does after a requeue,
sends SIGTERM to the job and to itself. These tests pin the submitit behaviour slurm/requeue.py
relies on: the handler class, `JobEnvironment.USR_SIG`, SystemExit after a requeue, an error when
the job timed out too often.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import torch
from reliability_util import (  # noqa: F401 - one_thread: autouse fixture
    EPOCHS,
    STEPS_PER_EPOCH,
    TINY_RUN,
    cfg,
    fake_data_overrides,
    one_thread,
    rows,
    signal_at_step,
    signal_in_checkpoint_write,
    straight_history,
    without_timing,
)

import hw_hparams.train.lifecycle as train_module
from analysis.read.runs import collect
from hw_hparams.runs.interrupt import Interrupted
from hw_hparams.train.job import job_outcome


def _slurm_launcher():
    """The launcher `hydra/launcher=slurm` names, as submitit pickles it into each job."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    from hw_hparams.config.naming import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        launcher = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    return get_class(launcher._target_)(**{k: v for k, v in launcher.items() if k != "_target_"})


@pytest.fixture(scope="module")
def straight(tmp_path_factory, fake_root):
    """An uninterrupted run: (overrides, its history without timings)."""
    overrides = [*fake_data_overrides(fake_root), *TINY_RUN, f"epochs={EPOCHS}", "schedule=cosine"]
    return overrides, straight_history(tmp_path_factory, overrides)


@pytest.fixture
def slurm_job(monkeypatch, tmp_path):
    """This process as attempt 2 of SLURM job 77 run by submitit: submitit's USR2 handler installed.
    Yields a function (max_num_timeout) -> list of `scontrol requeue` calls (their countdowns)."""
    from submitit.core.job_environment import JobEnvironment, SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths
    from submitit.slurm.slurm import SlurmJobEnvironment

    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(k, v)
    for k in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    requeues: list[int] = []

    def scontrol_requeue(self, countdown):
        """`scontrol requeue` as a child process that SLURM's answer, SIGTERM to every process of the job, reaches
        too."""
        subprocess.check_call(["sh", "-c", 'kill -TERM "$PPID" "$$"; sleep 0.2'], timeout=60)
        requeues.append(countdown)

    monkeypatch.setattr(SlurmJobEnvironment, "_requeue", scontrol_requeue)
    sig = getattr(signal, f"SIG{JobEnvironment.USR_SIG}")
    before = signal.getsignal(sig), signal.getsignal(signal.SIGTERM)

    def install(max_num_timeout: int) -> list[int]:
        delayed = DelayedSubmission(_slurm_launcher(), ["epochs=3"], "hydra.sweep.dir", 0, "job_id_for_0", {})
        delayed.set_timeout(1, max_num_timeout)  # a 1-minute limit: submitit calls every signal a timeout
        paths = JobPaths(tmp_path / "submitit" / "%j", job_id="77")
        paths.folder.mkdir(parents=True)
        handler = SignalHandler(SlurmJobEnvironment(), paths, delayed)
        signal.signal(signal.SIGTERM, handler.bypass)  # as submitit's JobEnvironment._handle_signals does
        signal.signal(sig, handler.checkpoint_and_try_requeue)
        return requeues

    yield install
    signal.signal(sig, before[0])
    signal.signal(signal.SIGTERM, before[1])


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_the_requeue_signal_inside_an_epoch_requeues_and_the_next_attempt_resumes_exactly(
    tmp_path, straight, slurm_job
):
    overrides, expected = straight
    requeues = slurm_job(max_num_timeout=3)
    with signal_at_step(signal.SIGUSR2, STEPS_PER_EPOCH + 4), pytest.raises(Interrupted) as info:  # inside epoch 2
        train_module.run(cfg(overrides), tmp_path)
    assert (
        info.value.signum == signal.SIGUSR2 and info.value.not_requeued is None
    )  # SLURM's SIGTERM after the requeue is not the reason
    with pytest.raises(SystemExit) as exit_, job_outcome(tmp_path, multirun=True):  # how the job's process then ends
        raise info.value
    assert exit_.value.code == -1  # submitit's own exit after a requeue (submitit_local requeues on its status)
    assert requeues == [2]  # one `scontrol requeue`; a 1-minute job's signal counts as a timeout: 3 - 1 left
    assert (tmp_path / "submitit" / "77" / "77_submitted.pkl").exists()  # submitit pickled the launcher's checkpoint()
    s = _summary(tmp_path)
    assert s["status"] == "requeued" and s["slurm"] == {"job_id": "77", "attempt": 2}
    assert "after epoch 1 of 3" in s["message"] and "attempt 3 of job 77" in s["message"]
    assert s["epochs_completed"] == 1 == len(rows(tmp_path / "history.csv"))  # epoch 2 was in flight: not counted
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 1

    runs, _ = collect([tmp_path])  # the analysis shows it as requeued, with the epochs it has
    assert (runs.loc[0, "status"], runs.loc[0, "epochs_completed"]) == ("requeued", 1)
    assert "attempt 3" in runs.loc[0, "message"]

    train_module.run(cfg(overrides), tmp_path)  # the next attempt
    assert _summary(tmp_path)["status"] == "completed"
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_the_requeue_signal_during_a_checkpoint_write_waits_until_it_is_written(
    tmp_path, straight, slurm_job, monkeypatch
):
    overrides, expected = straight
    requeues = slurm_job(max_num_timeout=3)
    signal_in_checkpoint_write(monkeypatch, signal.SIGUSR2)
    with pytest.raises(Interrupted):
        train_module.run(cfg(overrides), tmp_path)
    monkeypatch.undo()
    assert len(requeues) == 1
    s = _summary(tmp_path)
    assert s["status"] == "requeued" and s["epochs_completed"] == 2 == len(rows(tmp_path / "history.csv"))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    train_module.run(cfg(overrides), tmp_path)
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_a_job_out_of_requeues_is_interrupted_and_says_why(tmp_path, straight, slurm_job):
    overrides, expected = straight
    requeues = slurm_job(max_num_timeout=0)
    with signal_at_step(signal.SIGUSR2, STEPS_PER_EPOCH + 4), pytest.raises(Interrupted) as info:
        train_module.run(cfg(overrides), tmp_path)
    assert requeues == [] and "timed-out too many times" in info.value.not_requeued
    s = _summary(tmp_path)
    assert s["status"] == "interrupted" and s["epochs_completed"] == 1
    assert (
        "not requeued" in s["message"]
        and "timed-out too many times" in s["message"]
        and "re-run the same command" in s["message"]
    )
    train_module.run(cfg(overrides), tmp_path)
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_outside_a_submitit_job_usr2_is_left_alone(tmp_path, straight, monkeypatch):
    """Without submitit's handler nothing takes USR2 over: the run neither requeues nor changes its handler."""
    for k in ("SUBMITIT_EXECUTOR", "SLURM_JOB_ID"):
        monkeypatch.delenv(k, raising=False)
    seen = []
    before = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(s))
    try:
        with signal_at_step(signal.SIGUSR2, STEPS_PER_EPOCH + 4):
            train_module.run(cfg(straight[0]), tmp_path)
        s = _summary(tmp_path)
        assert seen == [signal.SIGUSR2] and (s["status"], s["slurm"]) == ("completed", None)
    finally:
        signal.signal(signal.SIGUSR2, before)
