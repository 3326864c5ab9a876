"""Sweeps: a re-run trains only what is missing; a failed or diverged job stops nothing; the analysis
of what is there still works and shows the diverged run as diverged."""

from __future__ import annotations

import json
import re

import support
from fault_inject import run_cli
from reliability_util import STEPS_PER_EPOCH, TINY_RUN, fake_data_overrides, file_states, rows

LRS = ["0.05", "0.02", "1e30", "0.01"]  # jobs 0..3; 1e30 diverges (non-finite loss) in epoch 1


def _jobs(sweep) -> dict[str, object]:
    """learning rate (as in LRS) -> job folder."""
    by_lr = {float(re.search(r"optim\.lr=([^,]+)", d.name)[1]): d for d in sweep.iterdir() if d.is_dir()}
    return {lr: by_lr[float(lr)] for lr in LRS if float(lr) in by_lr}


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_sweep_resumes_what_is_missing_goes_past_failures_and_divergence(tmp_path, fake_root):
    args = ["-m", f"optim.lr={','.join(LRS)}", "epochs=2", *fake_data_overrides(fake_root), *TINY_RUN]
    sweep = tmp_path / "outputs" / "multirun" / "adhoc"

    # 1. SIGTERM inside epoch 2 of job 1: the sweep stops there (exit 143), job 0 done, jobs 2-3 never started.
    first = run_cli(args, tmp_path, fault=f"step:{STEPS_PER_EPOCH + 3}:term:0.02")
    assert first.returncode == 143, first.stderr
    jobs = _jobs(sweep)
    assert set(jobs) == {"0.05", "0.02"}
    assert _summary(jobs["0.05"])["status"] == "completed"
    assert _summary(jobs["0.02"])["status"] == "interrupted" and len(rows(jobs["0.02"] / "history.csv")) == 1
    done = file_states(jobs["0.05"])

    # 2. Re-run with job 3 crashing: job 0 untouched, job 1 resumed, job 2 diverges, job 3 fails; exit 1, no traceback.
    second = run_cli(args, tmp_path, fault="step:1:raise:0.01")
    out = second.stdout + second.stderr
    assert second.returncode == 1 and "Traceback" not in out, out
    failed_lines = [l for l in second.stdout.splitlines() if "failed: RuntimeError: injected fault" in l]
    assert len(failed_lines) == 1, second.stdout
    assert any("failed: RuntimeError: injected fault" in l for l in second.stderr.splitlines())  # Hydra's last word
    jobs = _jobs(sweep)
    assert file_states(jobs["0.05"]) == done
    assert "resuming after epoch 1 of 2" in second.stdout
    statuses = {lr: _summary(d)["status"] for lr, d in jobs.items()}
    assert statuses == {"0.05": "completed", "0.02": "completed", "1e30": "diverged", "0.01": "failed"}
    diverged = rows(jobs["1e30"] / "history.csv")
    assert (
        diverged and diverged[-1]["val_loss"] == "nan" and _summary(jobs["1e30"])["epochs_completed"] == len(diverged)
    )

    # 3. The analysis of what is there works, and shows the diverged run as diverged.
    out_dir = tmp_path / "analysis"
    analysis = support.run_cli([str(sweep), "--out", str(out_dir)], tmp_path, module="analysis")
    assert analysis.returncode == 0, analysis.stderr
    runs = (out_dir / "runs.csv").read_text()
    assert "diverged" in runs and "failed" in runs
    assert any("diverged" in p.read_text() for p in (out_dir / "tables").glob("*.md"))

    # 4. Re-run without the fault: only job 3 trains; the finished and the diverged jobs are not touched.
    before = {lr: file_states(jobs[lr]) for lr in ("0.05", "0.02", "1e30")}
    third = run_cli(args, tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("nothing to train") == 3
    assert {lr: file_states(jobs[lr]) for lr in before} == before
    assert _summary(jobs["0.01"])["status"] == "completed"

    # 5. A finished sweep run again trains nothing and rewrites nothing.
    before = {lr: file_states(d) for lr, d in jobs.items()}
    fourth = run_cli(args, tmp_path)
    assert fourth.returncode == 0 and fourth.stdout.count("nothing to train") == 4
    assert {lr: file_states(d) for lr, d in jobs.items()} == before
