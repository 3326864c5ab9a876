"""hydra/launcher=slurm's parts that need no cluster: job states from squeue, sacct's warnings once, no sbatch.

The watcher tests run submitit's own SlurmInfoWatcher logic (`update`, `is_done`, `read_info`) and
pin the submitit internals slurm/watch.py relies on (`SlurmJob.watcher`, the sacct warning's words).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from reliability_util import assert_one_error_line
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob
from support import run_cli

from hw_hparams.slurm import watch


def _fake_command(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_squeue_states_read_as_sacct_states_and_an_unlisted_job_has_ended():
    watcher = watch.SqueueWatcher(delay_s=60)
    for job_id in ("12_0", "12_1", "12_2", "13"):
        watcher.register_job(job_id)
    # `squeue --states=all --format=%i|%T|%N` as slurm 22.05 prints it: a running task, the pending rest of the array
    watcher._info_dict.update(watcher.read_info(b"12_0|RUNNING|vm\n12_[1-2%1]|PENDING|\n"))
    assert [watcher.get_state(j, mode="cache") for j in ("12_0", "12_1", "12_2")] == ["RUNNING", "PENDING", "PENDING"]
    assert [watcher.is_done(j, mode="cache") for j in ("12_0", "12_1", "13")] == [False, False, True]
    assert watcher.get_state("13", mode="cache") == watch.GONE
    assert watcher._make_command()[:4] == ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N"]


def test_sacct_failures_show_once_in_one_line(caplog):
    class NoAccounting(SlurmInfoWatcher):
        def _make_command(self):
            return ["sh", "-c", "echo 'Slurm accounting storage is disabled' >&2; exit 1"]

    watch.fold_sacct_warnings()
    watch.fold_sacct_warnings()  # once per process, however often a sweep launches
    watcher = NoAccounting(delay_s=60)
    watcher.register_job("5")
    with caplog.at_level(logging.INFO, logger="submitit"):
        for _ in range(4):
            watcher.update()  # submitit's own poll, which warns on every failed sacct call
    said = [r.getMessage() for r in caplog.records if "sacct" in r.getMessage()]
    assert len(said) == 1 and "Bypassing sacct error" in said[0] and "repeats of this warning are not shown" in said[0]
    assert "\n" not in said[0] and watcher.num_calls == 4


@pytest.mark.parametrize(
    "sacct, squeue", [("echo 'Slurm accounting storage is disabled' >&2; exit 1", True), ("exit 0", False)]
)
def test_job_states_come_from_squeue_only_where_sacct_cannot_answer(tmp_path, monkeypatch, caplog, sacct, squeue):
    _fake_command(tmp_path, "sacct", sacct)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(SlurmJob, "watcher", SlurmInfoWatcher(delay_s=600))  # submitit's, restored after the test
    with caplog.at_level(logging.INFO, logger="hw_hparams.slurm"):
        watch.watch_without_accounting()
    assert isinstance(SlurmJob.watcher, watch.SqueueWatcher) == squeue
    assert (
        "sacct cannot answer here (Slurm accounting storage is disabled): job states come from squeue" in caplog.text
    ) == squeue


def test_without_sbatch_a_slurm_sweep_is_one_line_and_exit_2_before_anything_is_written(tmp_path, fake_root):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(os.sys.executable, bin_dir / "python")
    args = [
        "-m",
        "epochs=1",
        "model=tiny",
        f"data.root={fake_root}",
        "data.verify_checksums=false",
        "data.val_size=100",
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    env_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = str(bin_dir)  # no sbatch, as on a laptop
        result = run_cli(args, tmp_path)
    finally:
        os.environ["PATH"] = env_path
    assert result.returncode == 2
    assert_one_error_line(result, "hydra/launcher=slurm needs SLURM's sbatch and srun on PATH", "hydra/launcher=basic")
    assert not (tmp_path / "sweep").exists()


def test_the_launcher_class_pickles_by_value_as_a_requeue_pickles_it():
    # submitit's requeue (inside the job) pickles the launcher with cloudpickle, which took its class by value
    # there, with every global its methods name: a threading.Lock among them stopped every requeue
    # ("cannot pickle '_thread.lock' object"), so no SLURM run outlived its time limit.
    import cloudpickle

    from hydra_plugins.hw_hparams_slurm import slurm_launcher

    cloudpickle.register_pickle_by_value(slurm_launcher)
    try:
        cloudpickle.dumps(slurm_launcher.SlurmLauncher)
    finally:
        cloudpickle.unregister_pickle_by_value(slurm_launcher)
