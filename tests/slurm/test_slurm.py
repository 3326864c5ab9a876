"""Through sbatch on a real SLURM cluster (`sudo .ci/slurm-cluster.sh up` starts a one-node one here).

Every test is marked `slurm`: without a cluster they are skipped, with the reason; under HW_CI=1
(.ci/run) a missing cluster fails them. Jobs run on the CPU, one thread each, on generated data,
and are compared with the same command under the basic launcher (histories without epoch times).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from reliability_util import assert_one_error_line
from support import (
    DEMO,
    LONG_PATIENCE_S,
    ONE_THREAD,
    PATIENCE_S,
    fake_data_overrides,
    finish,
    path_with_tests,
    read_rows,
    start_cli,
    wait_until,
    without_timing,
)

from analysis.read.runs import collect
from hw_hparams.data.fake import write_fake_cifar100

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("cluster")]  # cluster: conftest.py

CPU_JOB = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
TINY = ["model=tiny", "batch_size=50", "trainer.progress=false", "trainer.device=cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("slurm_data")
    write_fake_cifar100(root, train=450, test=20, seed=0)
    return fake_data_overrides(root, val_size=50)


def _start(args: list[str], cwd: Path, module: str = "hw_hparams.train", env: dict | None = None):
    """`python -m module args` in the background (support.start_cli): one CPU thread, `env` added (jobs inherit the
    environment through sbatch)."""
    return start_cli(args, cwd, module, env=ONE_THREAD | (env or {}))


def _finish(proc, timeout: float = PATIENCE_S) -> subprocess.CompletedProcess:
    """Wait for a command started by `_start`; fail naming it after `timeout` seconds."""
    return finish(proc, f"`{' '.join(map(str, proc.args[1:]))}`", timeout)


def _runs(sweep: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted(sweep.glob("*/summary.json"))}


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _history(run_dir: Path) -> list[dict]:
    return without_timing(read_rows(run_dir / "history.csv"))


# The first two attempts of the requeue test's job sleep 1 s after each optimizer step (tests/slow_steps.py).
SLOW = ["+hydra.callbacks.slow._target_=slow_steps.SlowSteps", "+hydra.callbacks.slow.seconds=1"]
SLOW += ["+hydra.callbacks.slow.attempts=2"]


def test_a_one_minute_time_limit_requeues_at_least_twice_and_resumes_to_the_uninterrupted_history(tmp_path, data):
    # slurmctld looks at time limits every 30 s and sends --signal up to 30 s early: with signal_delay_s=10
    # USR2 comes 20-50 s after a start (after submitit's handler is in place), so an attempt trains at most
    # ~50 s. In its first two attempts the job sleeps 1 s after each of its 16 x 8 optimizer steps (400
    # training images in batches of 50): 128 s of training that two attempts cannot finish however fast the
    # machine is, so SLURM's time limit requeues it at least twice; the third attempt trains at full speed.
    # The sleeps change no number: the reference run beside it has none.
    run = ["epochs=16", *TINY, *data]
    reference = _start([*run, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path)
    limit = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=10"]
    slurm = _start(
        ["-m", *run, *CPU_JOB, *limit, *SLOW, f"hydra.sweep.dir={tmp_path / 'slurm'}"], tmp_path, env=path_with_tests()
    )
    seen, snapshot = {}, tmp_path / "requeued_snapshot"

    def ended() -> bool:  # and meanwhile, what a user's `cat summary.json` shows
        for run_dir in _runs(tmp_path / "slurm").values():
            s = _summary(run_dir)
            if s["status"] == "requeued" and s["slurm"]["attempt"] not in seen:
                seen[s["slurm"]["attempt"]] = (
                    s["epochs_completed"],
                    len(read_rows(run_dir / "history.csv")),
                    s["message"],
                )
                if not snapshot.exists():
                    shutil.copytree(run_dir, snapshot)
        return slurm.poll() is not None

    wait_until(ended, "the requeued SLURM job to finish", timeout=LONG_PATIENCE_S, interval=0.5)
    slurm, reference = _finish(slurm), _finish(reference)
    assert slurm.returncode == 0 and reference.returncode == 0, slurm.stderr[-3000:] + reference.stderr[-2000:]
    (run_dir,) = _runs(tmp_path / "slurm").values()
    s = _summary(run_dir)
    assert s["status"] == "completed" and s["slurm"]["attempt"] >= 3, (s["slurm"], seen)
    assert len(seen) >= 2 and all(
        done == rows and f"attempt {a + 1} of job" in msg for a, (done, rows, msg) in seen.items()
    ), seen
    assert _history(run_dir) == _history(tmp_path / "reference")  # every epoch once: none lost, none counted twice
    log = "".join(p.read_text() for p in (tmp_path / "slurm" / ".submitit").rglob("*_log.*"))
    # each requeue that stopped training says so; a USR2 before training started is submitit's alone
    assert 2 <= log.count("requeued by SLURM (SIGUSR2") <= s["slurm"]["attempt"] - 1 and "Traceback" not in log
    runs, _ = collect([snapshot])  # the analysis of a requeued run
    assert runs.loc[0, "status"] == "requeued" and runs.loc[0, "epochs_completed"] == len(
        read_rows(snapshot / "history.csv")
    )


def test_scancel_leaves_the_run_interrupted_and_the_same_command_resumes_it(tmp_path, data):
    run = ["epochs=8", *TINY, *data]
    reference = _start([*run, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path)
    command = ["-m", *run, *CPU_JOB, f"hydra.sweep.dir={tmp_path / 'slurm'}"]
    slurm = _start(command, tmp_path)
    runs = wait_until(
        lambda: (r := _runs(tmp_path / "slurm")) and _summary(next(iter(r.values())))["epochs_completed"] >= 1 and r,
        "the SLURM job's first epoch",
        alive=slurm,
        interval=0.2,
    )
    (run_dir,) = runs.values()
    subprocess.run(["scancel", _summary(run_dir)["slurm"]["job_id"]], check=True)
    cancelled = _finish(slurm)
    assert cancelled.returncode == 1 and "Traceback" not in cancelled.stdout + cancelled.stderr, cancelled.stderr[
        -3000:
    ]
    s = _summary(run_dir)
    assert s["status"] == "interrupted" and "interrupted by SIGTERM" in s["message"] and s["epochs_completed"] < 8
    said = [line for line in cancelled.stderr.splitlines() if "ended without a result" in line]
    assert said and all(
        "CANCELLED" in line and f"{run_dir} is interrupted: interrupted by SIGTERM" in line for line in said
    ), cancelled.stderr

    again = _finish(_start(command, tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        _summary(run_dir)["status"] == "completed"
        and f"resuming after epoch {s['epochs_completed']} of 8" in (run_dir / "train.log").read_text()
    )
    assert _finish(reference).returncode == 0
    assert _history(run_dir) == _history(tmp_path / "reference")


def test_the_whole_study_through_slurm_reports_the_local_demos_numbers(tmp_path, demo):
    """The same demo command as the session's `demo` study (one thread per process), on the cluster: every sweep
    through sbatch, one job per run, has the histories and figures of the basic launcher's runs."""
    on_slurm = [
        *DEMO,
        "figures=false",
        "launcher=slurm",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
    ]
    slurm = _finish(_start(on_slurm, tmp_path, module="hw_hparams.homework"), timeout=LONG_PATIENCE_S)
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    want, got = demo["study"], tmp_path / "outputs" / "t"
    assert (
        json.loads((got / "choices.json").read_text())["choices"]
        == json.loads((want / "choices.json").read_text())["choices"]
    )
    runs = sorted(p.parent.relative_to(want) for p in want.glob("*/*/summary.json"))
    on_cluster = sorted(p.parent.relative_to(got) for p in got.glob("*/*/summary.json"))
    # on the cluster mixup also trained under the other weight-decay candidate (speculate=auto), never tested
    (extra,) = set(on_cluster) - set(runs)
    assert len(runs) == 8 and set(runs) < set(on_cluster)
    assert extra.parts[0] == "mixup" and _summary(got / extra)["test"] is None
    for run in runs:
        a, b = _summary(want / run), _summary(got / run)
        assert (b["status"], b["final"], b["test"]) == (a["status"], a["final"], a["test"]) and b["slurm"][
            "attempt"
        ] == 1, run
        assert _history(got / run) == _history(want / run) and a["slurm"] is None, run
    assert len({_summary(got / run)["slurm"]["job_id"] for run in on_cluster}) == len(on_cluster)  # a job each
    said = slurm.stdout + slurm.stderr
    launched = [line for line in said.splitlines() if "[hw_hparams.study.sweeps]" in line and "running:" in line]
    sacct = [line for line in said.splitlines() if "sacct" in line]
    assert launched and len(sacct) == len(launched) and all("sacct cannot answer here" in line for line in sacct)
    assert "Bypassing" not in said and "Traceback" not in said  # said once per sweep, not per poll


@pytest.mark.parametrize(
    "launcher, words",
    [
        (
            ["hydra/launcher=slurm"],
            [
                "hydra.launcher.gpus_per_node=1 is refused by sbatch",
                "Invalid generic resource",
                "hydra/launcher=slurm_cpu",
            ],
        ),
        (
            [*CPU_JOB, "hydra.launcher.partition=nope"],
            ["hydra.launcher.partition='nope' is refused by sbatch", "Invalid partition name", "choose one of"],
        ),
    ],
    ids=["gpu-on-a-cpu-partition", "bad-partition"],
)
def test_a_job_sbatch_refuses_is_one_line_and_exit_2_before_anything_is_written(tmp_path, data, launcher, words):
    result = _finish(
        _start(["-m", "epochs=1", *TINY, *data, *launcher, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    )
    assert result.returncode == 2
    assert_one_error_line(result, *words)
    assert not (tmp_path / "sweep").exists()


def test_a_refusal_only_the_real_submission_sees_is_one_line_and_exit_2(tmp_path, data):
    """sbatch --test-only passes but the submission is refused (here: a site limit, faked by an sbatch in front of
    the real one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f"""#!/bin/sh
case " $* " in *" --test-only "*) exec {shutil.which("sbatch")} "$@";; esac
echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy """
        """(job submit limit, user's size and/or time limits)" >&2
exit 1
"""
    )
    (bin_dir / "sbatch").chmod(0o755)
    env_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{env_path}"
        result = _finish(
            _start(["-m", "epochs=1", *TINY, *data, *CPU_JOB, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
        )
    finally:
        os.environ["PATH"] = env_path
    assert result.returncode == 2
    assert_one_error_line(result, "hydra.launcher.qos=None is refused by sbatch", "Job violates accounting/QOS policy")
