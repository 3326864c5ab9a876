"""The study as a graph (issue 19): the plan, sections that train at once, speculation, a kill mid-stage.

The concurrent study is the tiny demo of support.DEMO under `launcher=joblib hydra.launcher.n_jobs=2`
(speculation on by default there); its reference is the same demo under `launcher=basic` (the
session's `demo` fixture: sections one after another, no speculation). Every process runs with one
thread (support.ONE_THREAD; joblib's workers keep it), so equal runs have bitwise equal numbers.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import (
    DEMO,
    ONE_THREAD,
    TINY_RUN,
    fake_data_overrides,
    path_with_tests,
    read_rows,
    run_cli,
    start_cli,
    without_timing,
)

from hw_hparams import homework
from hw_hparams.bench import report as bench_report

# Each schedule run holds at its start until a wd run has started (rendezvous.Meet; tests/ on the jobs' path).
MEET = {"_target_": "rendezvous.Meet", "waits": "schedule_sweep", "for": "wd_sweep", "patience_s": 300}
JOBLIB = ["launcher=joblib", "hydra.launcher.n_jobs=2", "figures=false"] + [
    f"+hydra.callbacks.meet.{k}={v}" for k, v in MEET.items()
]


def _meet_env(cwd: Path) -> dict[str, str]:
    return {**ONE_THREAD, **path_with_tests(), "MEET_DIR": str(cwd / "meet")}


STAGE2 = ("schedule_sweep", "wd_sweep", "mixup")


def _summaries(study: Path, section: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((study / section).glob("*/summary.json"))}


def _plan(args: list[str], tmp_path: Path, capsys) -> str:
    homework.main(
        ["plan=true", f"out={tmp_path / 'outputs'}", f"data.root={tmp_path / 'no-data'}", "data.download=false", *args]
    )
    assert (
        not (tmp_path / "outputs").exists() and not (tmp_path / "no-data").exists()
    )  # nothing written, no dataset needed
    return capsys.readouterr().out


# The stages by hand, from the sections' needs (schedule: lr; wd: lr; mixup: lr and wd) and the experiment configs.
LR = "stage 1: lr_sweep (3 runs): 15 epochs"
TOGETHER = "stage 2: schedule_sweep (2 runs), wd_sweep (2 runs)"
GUESSES = ", mixup at weight_decay=5e-4 (1 run), mixup at weight_decay=1e-4 (1 run): 300 epochs"


@pytest.mark.parametrize(
    "args, n, stages, path",
    [
        (
            ["launcher=fused", "speculate=true"],
            3,
            [
                LR + "; 3 runs in one network",
                TOGETHER + GUESSES + "; 6 runs in one network",
                "stage 3: mixup, the candidate at the chosen weight_decay, evaluates the test split",
            ],
            "315 epochs of one stage (15 + 300)",
        ),
        (
            ["launcher=fused", "speculate=false"],
            3,
            [LR, TOGETHER + ": 300 epochs; 4 runs in one network", "stage 3: mixup (1 run): 300 epochs"],
            "615 epochs of one stage (15 + 300 + 300)",
        ),
        (
            ["launcher=basic"],
            4,
            [
                LR + "; 3 runs one after another",
                "stage 2: schedule_sweep (2 runs): 300 epochs",
                "stage 3: wd_sweep (2 runs)",
                "stage 4: mixup (1 run): 300 epochs",
            ],
            "915 epochs of one stage (15 + 300 + 300 + 300)",
        ),
        (
            ["launcher=joblib", "hydra.launcher.n_jobs=2"],
            3,
            [
                LR + "; 3 runs as jobs at once, 2 at a time",
                TOGETHER + GUESSES + "; 6 runs as jobs at once, 2 at a time",
                "stage 3: mixup, the candidate",
            ],
            "315 epochs of one stage (15 + 300)",
        ),
    ],
)
def test_the_default_studys_plan_and_critical_path(args, n, stages, path, tmp_path, capsys):
    out = _plan(args, tmp_path, capsys)
    assert out.splitlines()[1].endswith(f"; {n} stages"), out
    got = [line.strip() for line in out.splitlines() if line.strip().startswith("stage ")]
    assert len(got) == n and all(g.startswith(s) for g, s in zip(got, stages, strict=True)), out
    assert f"Critical path: {path}" in out


def test_the_plans_estimate_is_the_bench_epoch_times_along_the_critical_path(tmp_path, capsys):
    rows = [
        {"pipeline": "(c) ours, fast (defaults)", "runs": 1, "s_per_epoch": 2.0, "compile_s": 10.0},
        {"pipeline": "(e) 3 runs of (c) fused", "runs": 3, "s_per_epoch": 3.0, "compile_s": 10.0},
        {"pipeline": "(e) 6 runs of (c) fused", "runs": 6, "s_per_epoch": 4.0, "compile_s": 10.0},
    ]
    meta = {"model": "mobilenetv2", "device": "cuda", "device_name": "a GPU", "train": 40000, "val": 10000}
    figures = tmp_path / "bench.json"
    figures.write_text(json.dumps({"meta": meta, "rows": rows}))
    out = _plan(["launcher=fused", f"bench={figures}"], tmp_path, capsys)
    seconds = (15 * 3.0 + 10) + (300 * 4.0 + 10)  # 3 runs fused, then 6 runs fused; one compilation each
    assert f"Estimate: ~{-(-seconds // 60):.0f} min of training" in out, out


def test_the_bench_critical_path_follows_the_plan():
    assert bench_report.study_stages() == (
        ("lr_sweep", 15, 3),
        ("schedule_sweep + wd_sweep + mixup at weight_decay=5e-4 + mixup at weight_decay=1e-4", 300, 6),
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["speculate=maybe"], "speculate='maybe' is not allowed: one of auto, true, false"),
        (["plan=true", "bench=nowhere.json"], "bench='nowhere.json' is not allowed: an existing JSON file"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        homework.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not any(tmp_path.iterdir())


def _start(args: list[str], cwd: Path):
    return start_cli(
        args, cwd, "hw_hparams.homework", _meet_env(cwd), stdout=subprocess.DEVNULL, start_new_session=True
    )


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    """The joblib demo uninterrupted (J); the same command in another folder with J's lr_sweep copied in,
    SIGKILLed (its whole process group) once a run of stage 2 has completed, then run again (K)."""
    j = tmp_path_factory.mktemp("joblib")
    first = run_cli(DEMO + JOBLIB, j, module="hw_hparams.homework", timeout=900, env=_meet_env(j))
    assert first.returncode == 0, first.stderr[-3000:]
    k = tmp_path_factory.mktemp("killed")
    for part in ("data", "lr_sweep"):
        shutil.copytree(j / "outputs" / "t" / part, k / "outputs" / "t" / part)
    proc = _start(DEMO + JOBLIB, k)
    deadline, done = time.monotonic() + 600, []
    while time.monotonic() < deadline and proc.poll() is None:
        done = [
            s
            for section in STAGE2
            for s in _summaries(k / "outputs" / "t", section).values()
            if s["status"] == "completed"
        ]
        if done:
            break
        time.sleep(0.1)
    assert done and proc.poll() is None, (
        f"waited for a completed stage-2 run while the study ran: {proc.poll()}, {proc.stderr.read()[-2000:]}"
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    at_kill = len(
        [
            s
            for section in STAGE2
            for s in _summaries(k / "outputs" / "t", section).values()
            if s["status"] == "completed"
        ]
    )
    again = run_cli(DEMO + JOBLIB, k, module="hw_hparams.homework", timeout=900, env=_meet_env(k))
    assert again.returncode == 0, again.stderr[-3000:]
    return {"j": j / "outputs" / "t", "k": k / "outputs" / "t", "first": first, "at_kill": at_kill, "meet": j / "meet"}


def _window(s: dict) -> tuple[datetime.datetime, datetime.datetime]:
    return datetime.datetime.fromisoformat(s["started_at"]), datetime.datetime.fromisoformat(s["finished_at"])


def test_schedule_and_wd_runs_train_at_the_same_time(concurrent):
    # Each schedule run held at its start until a wd run had started (rendezvous.Meet): one after the other,
    # the study could not have finished. No clocks compared, so this holds on a loaded machine.
    marks = sorted(p.name for p in concurrent["meet"].iterdir())
    met = [m.split(".")[0] for m in marks if m.endswith(".met")]
    assert met == ["schedule_sweep", "schedule_sweep"], f"each schedule run should have met a wd run: {marks}"
    windows = {
        section: [_window(s) for s in _summaries(concurrent["j"], section).values()]
        for section in ("schedule_sweep", "wd_sweep")
    }
    assert all(w[0].tzinfo == datetime.UTC for ws in windows.values() for w in ws)
    lr_end = max(_window(s)[1] for s in _summaries(concurrent["j"], "lr_sweep").values())
    assert all(w[0] > lr_end for ws in windows.values() for w in ws)  # they needed the lr first


def test_the_concurrent_study_chooses_trains_and_tests_as_the_sequential_one(concurrent, demo):
    j, ref = concurrent["j"], demo["study"]
    assert (
        json.loads((j / "choices.json").read_text())["choices"]
        == json.loads((ref / "choices.json").read_text())["choices"]
    )
    for section in ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup"):
        for name in _summaries(
            ref, section
        ):  # every run of the sequential study, trained alike (the guess at the chosen wd too)
            assert without_timing(read_rows(j / section / name / "history.csv")) == without_timing(
                read_rows(ref / section / name / "history.csv")
            )
    tested = {
        f"{sec}/{n}": s["test"]
        for sec in ("lr_sweep", *STAGE2)
        for n, s in _summaries(j, sec).items()
        if s["test"] is not None
    }
    (ref_mix,) = _summaries(ref, "mixup").items()
    assert tested == {
        f"mixup/{ref_mix[0]}": ref_mix[1]["test"]
    }  # exactly one run has test figures: the sequential study's
    assert (j / "mixup" / ref_mix[0] / "train.log").read_text().count("test loss") == 1


def test_the_other_candidate_is_kept_marked_and_named_but_never_tested(concurrent):
    j = concurrent["j"]
    contract = json.loads((j / "choices.json").read_text())
    mixup = _summaries(j, "mixup")
    assert len(mixup) == 2 and len(contract["sections"]["mixup"]) == 1
    (other,) = [x for x in contract["speculative"] if not x["chosen"]]
    (other_dir,) = other["run_dirs"]
    assert (
        mixup[other_dir.split("/", 1)[1]]["test"] is None and mixup[other_dir.split("/", 1)[1]]["status"] == "completed"
    )
    assert other["value"] != contract["choices"]["weight_decay"]["value"]
    report = (j / "report" / "report.md").read_text()
    assert re.search(
        r"The study ran in 3 stages \(launcher joblib\): lr\\_sweep \(3 runs, 1 epoch\); "
        r"then schedule\\_sweep, wd\\_sweep, "
        r"mixup at weight\\_decay=5e-4 and mixup at weight\\_decay=1e-4 together \(6 runs, 2 epochs\)",
        report,
    ), report[:3000]
    assert f"(`{other_dir}`) trained speculatively" in report and "never evaluated on the test split" in report


def test_a_kill_during_the_concurrent_stage_then_the_same_command_gives_the_same_report(concurrent):
    assert 1 <= concurrent["at_kill"] < 6, f"{concurrent['at_kill']} of 6 stage-2 runs had completed at the kill"
    k, j = concurrent["k"], concurrent["j"]
    assert (k / "report" / "report.md").read_text() == (j / "report" / "report.md").read_text()
    assert (k / "choices.json").read_text() == (j / "choices.json").read_text()


def test_speculation_tests_the_candidate_another_metric_picks(concurrent, tmp_path):
    """select_wd_by=train_loss picks the other weight decay in this demo (asserted from the wd runs' own
    numbers): that candidate is tested, the one val_acc picked is not, and the report names it."""
    j = concurrent["j"]
    wd_runs = _summaries(j, "wd_sweep").values()
    by_train_loss = min(wd_runs, key=lambda s: s["final"]["train_loss"])["config"]["optim"]["weight_decay"]
    by_val_acc = json.loads((j / "choices.json").read_text())["choices"]["weight_decay"]["value"]
    assert by_train_loss != by_val_acc, "the premise: train_loss and val_acc pick different weight decays in this demo"
    study = tmp_path / "outputs" / "t"
    for part in ("data", "lr_sweep", "schedule_sweep", "wd_sweep"):
        shutil.copytree(j / part, study / part)
    untested = next(n for n, s in _summaries(j, "mixup").items() if s["test"] is None)  # the candidate at by_train_loss
    shutil.copytree(j / "mixup" / untested, study / "mixup" / untested)
    result = run_cli(
        DEMO + ["launcher=basic", "speculate=true", "select_wd_by=train_loss", "figures=false"],
        tmp_path,
        module="hw_hparams.homework",
        timeout=900,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    mixup = _summaries(study, "mixup")
    tested = {n for n, s in mixup.items() if s["test"] is not None}
    assert tested == {untested} and {s["config"]["optim"]["weight_decay"] for n, s in mixup.items() if n in tested} == {
        by_train_loss
    }
    (other,) = [x for x in json.loads((study / "choices.json").read_text())["speculative"] if not x["chosen"]]
    assert other["value"] == by_val_acc and mixup[other["run_dirs"][0].split("/", 1)[1]]["test"] is None
    assert f"(`{other['run_dirs'][0]}`) trained speculatively" in (study / "report" / "report.md").read_text()


def test_a_stage_sweep_fuses_the_runs_of_different_sections_into_one_network(fake_root, tmp_path):
    """hydra/sweeper=stage: listed jobs of two experiments, one sweep; the fused launcher groups them by shape."""
    jobs = "[['experiment=wd_sweep','optim.weight_decay=1e-4'],['experiment=mixup','augmentation=mixup']]"
    args = [
        "-m",
        "epochs=1",
        *TINY_RUN,
        *fake_data_overrides(fake_root),
        "trainer.device=cpu",
        "hydra/launcher=fused",
        "hydra/sweeper=stage",
        f"hydra.sweeper.jobs={jobs}",
        f"hydra.sweep.dir={tmp_path / 'study'}",
        "hydra.sweep.subdir='${experiment_name}/${hw_run_name:}'",
    ]
    result = run_cli(args, tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Launching 2 jobs as 1 fused group(s) of 2" in result.stdout + result.stderr
    runs = {p.parent.parent.name: json.loads(p.read_text()) for p in (tmp_path / "study").glob("*/*/summary.json")}
    assert set(runs) == {"wd_sweep", "mixup"} and all(s["status"] == "completed" for s in runs.values())
    assert (
        runs["wd_sweep"]["config"]["optim"]["weight_decay"],
        runs["mixup"]["config"]["augmentation"]["mixup_alpha"],
    ) == (1e-4, 0.2)
    assert runs["wd_sweep"]["started_at"] == runs["mixup"]["started_at"]  # one network: they started together
