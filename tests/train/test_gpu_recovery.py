"""A run or a fused group when the GPU fails (train/sizing.py, train/loop.py, train/job.py), checked on
the CPU with the device faked where CUDA would fail (tests/fake_cuda.py): out of memory found in the
exception chain and retried with fewer runs once nothing of the failed attempt is alive, checkpoints
loaded to the CPU, parts sized by the measured memory and sized again, an unrecoverable device error
or an unsound failed capture ending the job in one line (exit 75) with every run resumable.
"""

from __future__ import annotations

import gc
import json
import logging
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fake_cuda import GIB, FakeCuda
from fault_inject import run_cli as run_faulty
from run_compare import assert_same_run
from support import read_rows, run_cli, small_cfg, small_data_overrides, without_timing
from torch._dynamo.backends.registry import lookup_backend

import hw_hparams.engine.group as fastpath
import hw_hparams.train.loop as training_module
import hw_hparams.train.sizing as sizing
from hw_hparams.engine import gpu
from hw_hparams.runs import checkpoint
from hw_hparams.train.job import job_outcome
from hw_hparams.train.lifecycle import run, run_group
from hw_hparams.train.loop import Member


def _history(run_dir: Path) -> list[dict]:
    return without_timing(read_rows(run_dir / "history.csv"))


def _out_of_memory_in_a_capture_error():
    try:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
    except torch.cuda.OutOfMemoryError:
        raise RuntimeError("CUDA error: operation failed due to a previous error during capture") from None


def test_out_of_memory_in_the_chain_retries_with_half_the_runs_once_nothing_of_the_failed_part_is_alive(
    small_root, tmp_path, monkeypatch
):
    configs = [small_cfg(small_root, f"optim.lr={lr}", f"seed={i}") for i, lr in enumerate([0.01, 0.02, 0.005, 0.03])]
    for i, cfg in enumerate(configs):
        run(cfg, tmp_path / f"alone{i}")
    real_build, real_train_epoch, real_release, real_load = (
        training_module.build_group,
        training_module.train_epoch,
        gpu.release,
        checkpoint.load,
    )
    sizes, groups, alive_at_retry, loaded_to = [], [], [], []

    def build_group(*args):
        group = real_build(*args)
        groups.append((weakref.ref(group), weakref.ref(group.model), weakref.ref(group.optimizer)))
        return group

    def train_epoch(group, split, bar=None):
        sizes.append(group.k)
        if group.k > 2 and sizes.count(group.k) == 2:  # in epoch 2, after epoch 1's checkpoints are written
            _out_of_memory_in_a_capture_error()
        return real_train_epoch(group, split, bar)

    def release(device):  # the sizer's first step after the failure: is anything of the failed part alive?
        gc.collect()
        alive_at_retry.append([ref() is not None for refs in groups for ref in refs])
        real_release(device)

    def load(run_dir, device, **kwargs):
        loaded_to.append(torch.device(device).type)
        return real_load(run_dir, device, **kwargs)

    monkeypatch.setattr(training_module, "build_group", build_group)
    monkeypatch.setattr(training_module, "train_epoch", train_epoch)
    monkeypatch.setattr(gpu, "release", release)
    monkeypatch.setattr(checkpoint, "load", load)
    results = run_group([Member(cfg, tmp_path / f"fused{i}") for i, cfg in enumerate(configs)])
    assert [r.summary["status"] for r in results] == ["completed"] * 4, results
    assert sizes == [4, 4, 2, 2]  # 4 fail in epoch 2; then 2 + 2, each resuming after epoch 1
    assert alive_at_retry == [[False, False, False]], "the failed attempt's group was still alive at the retry"
    assert loaded_to == ["cpu"] * 8  # 4 at the job's start, 4 after the out-of-memory
    for i in range(4):
        assert_same_run(tmp_path / f"alone{i}", tmp_path / f"fused{i}", 1e-5, 1, 1e-3)


def _members(n: int) -> list:
    cfg = SimpleNamespace(model=SimpleNamespace(name="tiny"), batch_size=128, trainer=SimpleNamespace(precision="auto"))
    return [SimpleNamespace(cfg=cfg, done=False, outcome=None, run_dir=Path(f"r{i}")) for i in range(n)]


def test_parts_are_sized_by_the_measured_peak_reserved_memory_and_sized_again_when_free_memory_shrinks(
    monkeypatch, caplog
):
    cuda = FakeCuda(free=10 * GIB).install(monkeypatch)
    monkeypatch.setattr(sizing, "_PER_RUN", {})
    monkeypatch.setattr(checkpoint, "load", lambda run_dir, device, **kw: None)
    monkeypatch.setattr(checkpoint, "progress", lambda state: ([], 0.0))
    cuda.peak_per_part = {5: (4 * GIB, 5 * GIB), 2: (int(1.6 * GIB), 2 * GIB), 1: (int(0.8 * GIB), GIB)}
    parts = []

    def train(part):
        parts.append(len(part))
        cuda.part = len(part)
        if len(part) == 10:
            _out_of_memory_in_a_capture_error()
        if parts == [10, 5]:
            cuda.free = 3 * GIB  # another process on the card took memory after the first part
        for m in part:
            m.done = True

    with caplog.at_level(logging.INFO, logger="hw_hparams.train"):
        sizing.train_sized(_members(10), train, torch.device("cuda", 0))
    assert parts == [10, 5, 2, 2, 1]  # halved; measured 1 GiB per run; then 90% of 3 GiB free holds 2
    assert sizing._PER_RUN == {("cuda:0", "tiny", 128, "auto"): GIB}
    said = [r.getMessage() for r in caplog.records]
    assert any(
        "measured 1024 MiB of GPU memory per run (peak reserved; 819 MiB allocated, a fragmentation margin of 25%)" in s
        for s in said
    ), said
    assert any(
        "out of memory training 10 runs as one network (OutOfMemoryError: CUDA out of memory." in s
        and "retrying with 5" in s
        for s in said
    ), said
    parts.clear()
    cuda.free, cuda.peak_per_part[9] = 10 * GIB, (int(7.2 * GIB), 9 * GIB)
    sizing.train_sized(_members(12), train, torch.device("cuda", 0))  # a later group of the same kind: sized at once
    assert parts == [9, 3]


def _in_job(cfg, run_dir: Path) -> int:
    """Run `cfg` as the training command does (job.job_outcome); its exit status."""
    with pytest.raises(SystemExit) as stopped:
        with job_outcome(run_dir, multirun=False):
            run(cfg, run_dir)
    return stopped.value.code


def test_an_unrecoverable_device_error_ends_the_run_in_one_line_and_it_resumes_exactly(
    small_root, tmp_path, monkeypatch, caplog
):
    cfg = small_cfg(small_root, "augmentation=mixup")
    run(cfg, tmp_path / "straight")
    cuda = FakeCuda().install(monkeypatch)
    real_train_epoch, calls = training_module.train_epoch, []

    def train_epoch(group, split, bar=None):
        calls.append(1)
        if len(calls) == 2:  # epoch 2
            cuda.sticky = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
            raise cuda.sticky
        return real_train_epoch(group, split, bar)

    monkeypatch.setattr(training_module, "train_epoch", train_epoch)
    with caplog.at_level(logging.ERROR):
        assert _in_job(cfg, tmp_path / "r") == gpu.EXIT_RESUME
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in line and "illegal memory access" in line and "re-run the same command" in line
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_completed"] == 1
    assert summary["compile"]["fallback"] is None  # not a compiler failure: the next process may compile
    monkeypatch.undo()
    assert run(cfg, tmp_path / "r")["status"] == "completed"
    assert _history(tmp_path / "r") == _history(tmp_path / "straight")


def test_a_failed_capture_that_cannot_be_repaired_stops_the_job_and_its_runs_go_on_eagerly_in_a_fresh_process(
    small_root, tmp_path, monkeypatch, caplog
):
    cfg = small_cfg(small_root)  # trainer.compile=auto
    run(cfg, tmp_path / "eager")
    real_settings = training_module.resolve_settings
    monkeypatch.setattr(  # compile=auto compiles here as on a GPU, unless the run is to go on eagerly
        training_module, "resolve_settings", lambda *a, **kw: real_settings(*a, **{"compile": True, **kw})
    )
    cuda = FakeCuda().install(monkeypatch)
    cuda.can_end_capture = False
    inner = lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        def fail(*args):
            cuda.fail_capture()
            raise torch.AcceleratorError("CUDA error: operation not permitted when stream is capturing")

        return fail

    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    with caplog.at_level(logging.ERROR):
        assert _in_job(cfg, tmp_path / "r") == gpu.EXIT_RESUME
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in line and "INTERNAL ASSERT" in line and "with the eager step" in line
    record = json.loads((tmp_path / "r" / "summary.json").read_text())["compile"]
    assert not record["compiled"] and "train on eagerly in a fresh process" in record["fallback"]
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", inner)  # a fresh process: the GPU works again
    monkeypatch.setattr(gpu, "for_device", lambda device: None)
    assert run(cfg, tmp_path / "r")["status"] == "completed"
    record = json.loads((tmp_path / "r" / "summary.json").read_text())["compile"]
    assert not record["compiled"] and "train on eagerly" in record["fallback"]  # its record says why
    assert _history(tmp_path / "r") == _history(tmp_path / "eager")


@pytest.mark.parametrize("launcher", ["fused", "basic"])
def test_a_gpu_the_process_cannot_use_stops_the_sweep_in_one_line_with_exit_75_and_it_resumes(
    small_root, tmp_path, launcher
):
    args = [
        "-m",
        *small_data_overrides(small_root),
        "model=tiny",
        "epochs=2",
        "batch_size=50",
        "trainer.progress=false",
        "optim.lr=0.01,0.005",
        f"hydra/launcher={launcher}",
        *(["hydra.launcher.max_fused=1"] if launcher == "fused" else []),
    ]
    stopped = run_faulty(args, tmp_path, fault="step:3:gpu:0.01")  # epoch 2 of the first job
    assert stopped.returncode == gpu.EXIT_RESUME, stopped.stderr[-2000:]
    said = [line for line in (stopped.stdout + stopped.stderr).splitlines() if "illegal memory access" in line]
    assert len(said) == 1 and "re-run the same command" in said[0] and "exit 75" in said[0], said
    sweep = tmp_path / "outputs" / "multirun" / "adhoc"
    (first,) = [p for p in sweep.iterdir() if p.is_dir()]  # the sweep stopped there: no later job started
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_completed"] == 1
    again = run_cli(args, tmp_path)
    assert again.returncode == 0 and "resuming after epoch 1 of 2" in again.stdout + again.stderr, again.stderr[-2000:]
    assert {json.loads((p / "summary.json").read_text())["status"] for p in sweep.iterdir() if p.is_dir()} == {
        "completed"
    }
