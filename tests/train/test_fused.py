"""Fused runs: k runs trained as one network give each run the numbers it has alone; the fused
launcher keeps every run's folder, files, lock and status; a group is as robust as single runs.

Tolerance. A fused network computes each copy exactly in exact arithmetic (test_training_parts
checks forward and backward in float64 to 1e-10). In float32 the fused layers (a batched matmul
for the 1x1 convolutions, a grouped convolution for the stem, batched matmuls for the classifier)
sum in another order, and training in train-mode BatchNorm over small batches amplifies the
rounding step by step: the tiny CNN agrees to ~1e-7; MobileNetV2 in this test's case (2 SGD steps at
batch 25, lr 0.01-0.002, epoch-mean losses) to ~1e-4 in its losses and ~1e-3 in its parameters.
The bounds below are those figures with a margin. At batch 32 and lr 0.05 the drift is as large as
float32's own from float64: ~1e-3 in the loss after 2 steps, 2e-2..3e-2 after 3-6 steps, 3e-2 in the
weights after 6, against 4e-11 in float64 (benchmarks/fused_drift.py, BENCHMARKS.md, 2026-12-02).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_inject import run_cli as run_faulty
from run_compare import assert_same_run, parameters
from support import ONE_THREAD, PATIENCE_S, compose_train, fake_data_overrides, read_rows, run_cli, without_timing

import hw_hparams.train.loop as training_module
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.train.lifecycle import run, run_group
from hw_hparams.train.loop import Member

# Runs that differ in everything a group allows: lr, schedule, weight decay, momentum, mixup on/off, crop/flip, seed.
SETTINGS = [
    ["optim.lr=0.01", "seed=1"],
    ["optim.lr=0.005", "schedule=cosine", "augmentation=mixup", "optim.weight_decay=5e-4"],
    ["optim.lr=0.002", "optim.momentum=0.5", "augmentation=none", "seed=3"],
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fused_data")
    write_fake_cifar100(root, train=200, test=20, seed=0)  # 150 training images (3 batches of 50), 50 for validation
    return root


@pytest.fixture(scope="module")
def mobilenet_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fused_mobilenet_data")
    write_fake_cifar100(root, train=70, test=20, seed=0)  # 50 training images (2 batches of 25), 20 for validation
    return root


def _base(data: Path, model: str = "tiny", epochs: int = 2, batch_size: int = 50, val_size: int = 50) -> list[str]:
    return [
        *fake_data_overrides(data, val_size=val_size),
        f"model={model}",
        f"epochs={epochs}",
        f"batch_size={batch_size}",
        "trainer.progress=false",
    ]


@pytest.mark.parametrize(
    "model, epochs, loss_rtol, images, param_rtol",
    [
        ("tiny", 2, 1e-5, 1, 1e-3),  # 3 steps per epoch
        ("mobilenetv2", 1, 1e-3, 2, 2e-2),  # 2 steps; dropout 0.2 included: each run's masks from its own generator
    ],
)
def test_a_fused_run_has_the_history_and_weights_it_has_alone(
    data, mobilenet_data, tmp_path, model, epochs, loss_rtol, images, param_rtol
):
    # MobileNetV2 on 50 images in 2 batches of 25: drift 8e-5 in the losses, 9e-4 in the parameters (2026-12-05)
    base = _base(data, model, epochs) if model == "tiny" else _base(mobilenet_data, model, epochs, 25, val_size=20)
    configs = [compose_train(base + s) for s in SETTINGS]
    for i, cfg in enumerate(configs):
        run(cfg, tmp_path / f"alone{i}")
    results = run_group([Member(cfg, tmp_path / f"fused{i}") for i, cfg in enumerate(configs)])
    assert [r.summary["status"] for r in results] == ["completed"] * 3
    for i in range(3):
        assert_same_run(tmp_path / f"alone{i}", tmp_path / f"fused{i}", loss_rtol, images, param_rtol)
        for name in ("summary.json", "history.csv", "data_stats.json", "checkpoint.pt", "train.log"):
            assert (tmp_path / f"fused{i}" / name).is_file()
        log = (tmp_path / f"fused{i}" / "train.log").read_text()  # its own lines, not the others'
        assert log.count(" epoch 1/") == 1 and f"fused{i}:" in log


def test_a_run_that_diverges_stops_alone_and_the_others_go_on_unchanged(data, tmp_path):
    good = compose_train(_base(data) + SETTINGS[0])
    bad = compose_train(_base(data) + ["optim.lr=1e30"])
    run(good, tmp_path / "alone")
    bad_run, good_run = run_group([Member(bad, tmp_path / "bad"), Member(good, tmp_path / "good")])
    bad_result, good_result = bad_run.summary, good_run.summary
    assert bad_result["status"] == "diverged" and bad_result["epochs_completed"] == 1
    assert read_rows(tmp_path / "bad" / "history.csv")[-1]["val_loss"] == "nan"
    assert good_result["status"] == "completed"
    assert_same_run(tmp_path / "alone", tmp_path / "good", 1e-5, 1, 1e-3)


def test_a_fused_run_resumes_alone_and_runs_stopped_alone_resume_fused(data, tmp_path, monkeypatch):
    configs = [compose_train(_base(data, epochs=3) + s) for s in SETTINGS[:2]]
    for i, cfg in enumerate(configs):
        run(cfg, tmp_path / f"straight{i}")
    real_evaluate, calls = training_module.evaluate, []

    def stop_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the validation pass of epoch 2
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training_module, "evaluate", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):  # fused, stopped in epoch 2: every run of the group says so
        run_group([Member(cfg, tmp_path / f"fused{i}") for i, cfg in enumerate(configs)])
    for i, cfg in enumerate(configs):
        summary = json.loads((tmp_path / f"fused{i}" / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["epochs_completed"] == 1
        calls.clear()
        with pytest.raises(KeyboardInterrupt):  # and alone, stopped in epoch 2 too
            run(cfg, tmp_path / f"alone{i}")
    monkeypatch.setattr(training_module, "evaluate", real_evaluate)
    for i, cfg in enumerate(configs):  # the fused ones resume alone
        assert run(cfg, tmp_path / f"fused{i}")["status"] == "completed"
        assert_same_run(tmp_path / f"straight{i}", tmp_path / f"fused{i}", 1e-5, 1, 1e-3)
    results = run_group([Member(cfg, tmp_path / f"alone{i}") for i, cfg in enumerate(configs)])  # the lone ones, fused
    assert [r.summary["status"] for r in results] == ["completed"] * 2
    for i in range(2):
        assert_same_run(tmp_path / f"straight{i}", tmp_path / f"alone{i}", 1e-5, 1, 1e-3)


def _sweep(data: Path, extra: list[str]) -> list[str]:
    return ["-m", *_base(data), "optim.lr=0.01,0.005", "seed=0,1", "hydra/launcher=fused", *extra]


def _jobs(cwd: Path) -> dict[str, Path]:
    sweep = cwd / "outputs" / "multirun" / "adhoc"
    return {p.name: p for p in sweep.iterdir() if p.is_dir()} if sweep.exists() else {}


def test_the_fused_launcher_keeps_every_run_folder_and_a_rerun_trains_nothing(data, tmp_path):
    (tmp_path / "fused").mkdir()
    (tmp_path / "basic").mkdir()
    fused = run_cli(_sweep(data, ["hydra.launcher.max_fused=3"]), tmp_path / "fused")
    assert fused.returncode == 0, fused.stderr[-3000:]
    assert "Launching 4 jobs as 2 fused group(s) of 3, 1" in fused.stdout + fused.stderr
    basic = run_cli(_sweep(data, ["hydra/launcher=basic"]), tmp_path / "basic")
    assert basic.returncode == 0, basic.stderr[-3000:]
    jobs, alone = _jobs(tmp_path / "fused"), _jobs(tmp_path / "basic")
    assert set(jobs) == set(alone) and len(jobs) == 4  # the same folder names as under the basic launcher
    for name, folder in jobs.items():
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in alone[name].iterdir())
        assert sorted(p.name for p in (folder / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
        overrides = (folder / ".hydra" / "overrides.yaml").read_text()
        assert overrides == (alone[name] / ".hydra" / "overrides.yaml").read_text()
        assert_same_run(alone[name], folder, 1e-5, 1, 1e-3)
    stamps = {p: p.stat().st_mtime_ns for folder in jobs.values() for p in folder.rglob("*") if p.is_file()}
    again = run_cli(_sweep(data, []), tmp_path / "fused")
    assert again.returncode == 0 and (again.stdout + again.stderr).count("nothing to train") == 4, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    more = run_cli(_sweep(data, []) + ["optim.lr=0.01,0.005,0.02"], tmp_path / "fused")  # mixed finished and new
    out = more.stdout + more.stderr
    assert (
        more.returncode == 0
        and out.count("nothing to train") == 4
        and "Launching 6 jobs as 1 fused group(s) of 6" in out
    )
    assert len(_jobs(tmp_path / "fused")) == 6 and {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_sigkill_inside_a_fused_epoch_then_the_same_command_ends_as_uninterrupted(data, tmp_path):
    (tmp_path / "straight").mkdir()
    (tmp_path / "killed").mkdir()
    args = _sweep(data, [])
    # One thread in every process, as run_faulty has: float sums on two threads need not match one thread's.
    assert run_cli(args, tmp_path / "straight", env=ONE_THREAD).returncode == 0
    killed = run_faulty(args, tmp_path / "killed", fault="step:5:kill")  # epoch 2 (3 steps per epoch), all four runs
    assert killed.returncode == -signal.SIGKILL
    assert {json.loads((p / "summary.json").read_text())["status"] for p in _jobs(tmp_path / "killed").values()} == {
        "running"
    }
    again = run_cli(args, tmp_path / "killed", env=ONE_THREAD)
    assert again.returncode == 0, again.stderr[-2000:]
    straight = _jobs(tmp_path / "straight")
    for name, folder in _jobs(tmp_path / "killed").items():
        assert without_timing(read_rows(folder / "history.csv")) == without_timing(
            read_rows(straight[name] / "history.csv")
        )
        assert torch.equal(
            parameters(folder, False), parameters(straight[name], False)
        )  # the same group again: bit for bit


def test_sigterm_marks_every_run_of_the_group_interrupted_and_the_rerun_finishes(data, tmp_path):
    args = _sweep(data, [])
    stopped = run_faulty(args, tmp_path, fault="step:5:term")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    summaries = [json.loads((p / "summary.json").read_text()) for p in _jobs(tmp_path).values()]
    assert len(summaries) == 4 and {(s["status"], s["epochs_completed"]) for s in summaries} == {("interrupted", 1)}
    again = run_cli(args, tmp_path)
    assert again.returncode == 0 and again.stdout.count("resuming after epoch 1 of 2") == 4, again.stderr[-2000:]


def test_for_any_other_hydra_app_the_fused_launcher_is_the_basic_launcher(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        "import hydra, pathlib\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "@hydra.main(config_path=None, config_name=None, version_base='1.3')\n"
        "def main(cfg):\n"
        "    pathlib.Path(HydraConfig.get().runtime.output_dir, 'ran.txt').write_text(str(cfg.x))\n"
        "    return cfg.x * 2\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )
    outputs = {}
    for launcher in ("basic", "fused"):
        result = subprocess.run(
            [sys.executable, str(app), "-m", "+x=1,2,3", f"hydra/launcher={launcher}", f"hydra.sweep.dir={launcher}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=PATIENCE_S,
        )
        assert result.returncode == 0, result.stderr
        outputs[launcher] = sorted((p.parent.name, p.read_text()) for p in (tmp_path / launcher).glob("*/ran.txt"))
    assert outputs["fused"] == outputs["basic"] == [("0", "1"), ("1", "2"), ("2", "3")]
