"""`python -m hw_hparams.homework demo=true`: choices follow the runs' own numbers; the test split once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import shown_lines
from support import stamps as _stamps

from hw_hparams import homework
from hw_hparams.study import run as study_run
from hw_hparams.study.selection import Metric, choose

SECTIONS = ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup")


def _summaries(folder: Path) -> dict[Path, dict]:
    return {p.parent: json.loads(p.read_text()) for p in sorted(folder.glob("*/summary.json"))}


def _best(runs: dict[Path, dict], key: tuple[str, str], sweep_order: list[float]) -> float:
    """Highest final val_acc among completed runs; ties go to the lower final val_loss, then to sweep order."""
    done = sorted(
        (s for s in runs.values() if s["status"] == "completed"),
        key=lambda s: sweep_order.index(s["config"][key[0]][key[1]]),
    )
    best = max(done, key=lambda s: (s["final"]["val_acc"], -s["final"]["val_loss"]))  # max keeps the first of equals
    return best["config"][key[0]][key[1]]


def test_each_choice_is_the_best_validation_accuracy_of_its_own_sweep(demo):
    study = demo["study"]
    lr_runs = _summaries(study / "lr_sweep")
    assert [d.name for d in lr_runs] == [
        f"data.val_size=50,epochs=1,model.name=tiny,optim.lr={v}" for v in ("0.01", "0.05", "0.5")
    ]
    lr = _best(lr_runs, ("optim", "lr"), [0.5, 0.05, 0.01])
    later = [s for section in SECTIONS[1:] for s in _summaries(study / section).values()]
    assert len(later) == 5 and {s["config"]["optim"]["lr"] for s in later} == {lr}
    assert {s["config"]["epochs"] for s in _summaries(study / "lr_sweep").values()} == {1}
    assert {s["config"]["epochs"] for s in later} == {2}
    wd = _best(_summaries(study / "wd_sweep"), ("optim", "weight_decay"), [5e-4, 1e-4])
    (mix,) = _summaries(study / "mixup").values()
    assert (mix["config"]["optim"]["weight_decay"], mix["config"]["augmentation"]["mixup_alpha"]) == (wd, 0.2)
    choices = json.loads((study / "choices.json").read_text())["choices"]
    assert (choices["lr"]["value"], choices["weight_decay"]["value"]) == (lr, wd)


def test_the_test_split_is_evaluated_once_for_the_final_run_only(demo):
    study = demo["study"]
    tested = {
        d.parent.name: s["test"]
        for section in SECTIONS
        for d, s in _summaries(study / section).items()
        if s["test"] is not None
    }
    assert list(tested) == ["mixup"]
    (mix_dir,) = _summaries(study / "mixup")
    assert (mix_dir / "train.log").read_text().count("test loss") == 1
    report = demo["report"]
    assert f"**{100 * tested['mixup']['acc']:.2f}% test accuracy**" in report


def test_the_study_says_each_finished_run_with_its_overall_progress(demo):
    lines = [
        line for line in shown_lines(demo["screen"]) if "[hw_hparams.homework] sections " in line and " | " in line
    ]
    assert [re.search(r"runs (\d+)/8", line)[1] for line in lines] == [str(i) for i in range(1, 9)], lines
    assert all(
        re.search(
            r"elapsed \d+:\d\d:\d\d, ~\d+:\d\d:\d\d left \| \w+/\S+: completed after \d+/\d+ epochs; final train loss",
            line,
        )
        for line in lines
    )
    assert "sections 4/4, runs 8/8" in lines[-1] and "~0:00:00 left" in lines[-1]
    assert [re.search(r"sections (\d)/4", line)[1] for line in lines] == ["0", "0", "1", "1", "2", "2", "3", "4"]
    written = (demo["study"] / "homework.log").read_text()  # the same lines where output is not a terminal
    assert all(line.split("] ", 1)[1] in written for line in lines) and "epoch 1/" not in written


def test_the_study_prints_only_its_own_log_lines(demo):
    """Libraries' chatter (fontTools logs ~500 INFO lines while matplotlib writes the PDF figures) stays out of what
    the terminal shows; Hydra's own lines (HYDRA: a sweep's "Launching 3 jobs locally", on stdout) stay."""
    shown = "\n".join(shown_lines(demo["screen"]))
    names = set(re.findall(r"^\[[^\]]+\]\[([\w.]+)\]", shown, re.M))
    assert "hw_hparams.homework" in names and all(
        n.split(".")[0] in ("hw_hparams", "hydra_plugins", "analysis", "HYDRA") for n in names
    ), names


def test_rerun_launches_nothing_and_evaluates_nothing_again(demo):
    log = demo["again"].stdout + demo["again"].stderr
    for section in SECTIONS:
        assert f"{section}: all " in log and "finished; nothing to run" in log
    assert "hw_hparams.train" not in log  # no sweep was launched
    assert _stamps(demo["study"]) == demo["before"]
    (mix_dir,) = _summaries(demo["study"] / "mixup")
    assert (mix_dir / "train.log").read_text().count("test loss") == 1


def test_report_holds_every_part_in_the_assignments_order(demo):
    report, out = demo["report"], demo["study"] / "report"
    heads = [
        "## Data Preprocessing",
        "random_split(",
        "class\\_",
        "Table 1.** Channel statistics",
        "def crop_flip",
        "## Learning Rate",
        "- Training loss: ",  # "lowest for ..." or, on the tiny demo's few images, "a tie between ..."
        "- Validation accuracy: ",
        "## Learning Rate Schedule",
        r"\cos\frac{\pi e}{T}",
        "## Weight Decay",
        "## Data Augmentation",
        "figures/beta_pdf.png",
        "## Test Accuracy",
    ]
    positions = [report.find(h) for h in heads]
    assert -1 not in positions and positions == sorted(positions), dict(zip(heads, positions))
    assert report.count("> **TODO(author):**") >= 6
    tex = (out / "paper.tex").read_text()
    blocks = re.findall(r"^```python\n(.*?)\n```$", report, re.M | re.S)
    blocks += re.findall(r"\\begin\{lstlisting\}\n(.*?)\n\\end\{lstlisting\}", tex, re.S)
    assert len(blocks) == 6
    for block in blocks:
        compile(block, "<excerpt>", "exec")  # whole statements of the code that ran, never half of one
    for name in ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup", "beta_pdf", "lr_schedule", "class_proportions"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0 and (
            out / "figures" / f"{name}.pdf"
        ).stat().st_size > 0
    for name in ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup", "data_stats"):
        assert (out / "tables" / f"{name}.md").exists() and (out / "tables" / f"{name}.tex").exists()


def test_selection_averages_seeds_skips_unfinished_runs_and_breaks_ties_by_val_loss(tmp_path):
    def run(name, lr, status, val_acc, val_loss, train_loss=1.0):
        d = tmp_path / name
        d.mkdir()
        final = {"train_loss": train_loss, "train_acc": 0.5, "val_loss": val_loss, "val_acc": val_acc}
        (d / "summary.json").write_text(
            json.dumps({"status": status, "final": final, "epochs_completed": 1, "config": {"optim": {"lr": lr}}})
        )
        return d

    dirs = [
        run("a", 0.5, "diverged", 0.9, 0.1),
        run("b0", 0.05, "completed", 0.40, 2.0),
        run("b1", 0.05, "completed", 0.50, 2.0),
        run("c", 0.01, "completed", 0.45, 1.5),
        run("d", 0.1, "failed", 0.99, 0.1),
    ]
    c = choose(dirs, "optim.lr", Metric.val_acc)
    assert c.value == 0.01  # 0.05 averages 0.45 too; the tie goes to the lower validation loss
    assert c.scores[0.05] == pytest.approx(0.45) and c.runs[0.05] == 2 and c.statuses[0.5] == ["diverged"]
    assert choose(dirs, "optim.lr", Metric.val_loss).value == 0.01
    assert choose(dirs[:1], "optim.lr", Metric.val_acc) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["select_by=best"], "select_by='best' is not allowed: one of train_loss, train_acc, val_loss, val_acc"),
        (["optim.lr=0.1"], "optim.lr is set by the study itself"),
        (["hydra/launcher=joblib"], "use launcher=..."),
        (["model=tiny,mobilenetv2"], "only seed may be swept"),
        (["demo_val=500", "demo_train=400"], "demo_train=400 is not allowed: must be > demo_val (500)"),
        (["study=a/b"], "study='a/b' is not allowed"),
        (
            ["paper_style=kit/aaai25.sty"],
            "paper_style='kit/aaai25.sty' is not allowed: an existing AAAI author-kit style file named aaai*.sty",
        ),
        (
            ["demo=true", "launcher=nope"],
            "hydra/launcher=nope is not an option: choose one of basic, fused, joblib, slurm",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        homework.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "outputs").exists()


def test_an_edited_paper_stops_the_study_before_anything_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "outputs" / "homework-demo"
    tex = study / "report" / "paper.tex"
    tex.parent.mkdir(parents=True)
    tex.write_text("\\documentclass{article}\n% the author's own edits\n")
    with pytest.raises(SystemExit) as exit_:
        homework.main(["demo=true"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert f"{Path('outputs/homework-demo/report/paper.tex')} differs from what the last build wrote" in err
    assert "python -m analysis.paper outputs/homework-demo --force" in err
    assert [p.name for p in study.iterdir()] == ["report"] and [p.name for p in tex.parent.iterdir()] == ["paper.tex"]
    assert tex.read_text() == "\\documentclass{article}\n% the author's own edits\n"


def test_a_demo_never_lands_in_the_real_studys_folders():
    from hw_hparams.study.args import parse_args

    assert parse_args(["demo=true"])[0].study == "homework-demo"
    assert parse_args([])[0].study == "homework"
    assert parse_args(["demo=true", "study=mine"])[0].study == "mine"


@pytest.mark.parametrize(
    "device, cuda_present, launcher",
    [
        ("cuda", False, "fused"),
        ("cuda:1", False, "fused"),
        ("auto", True, "fused"),
        ("auto", False, "basic"),
        ("cpu", True, "basic"),
    ],
)
def test_launcher_auto_fuses_on_cuda_only(device, cuda_present, launcher, monkeypatch):
    """BENCHMARKS.md, "Fused runs on the CPU": fused runs were slower than runs in turn on the CPU."""
    from types import SimpleNamespace

    monkeypatch.setattr(study_run.torch.cuda, "is_available", lambda: cuda_present)
    assert study_run.auto_launcher(SimpleNamespace(trainer=SimpleNamespace(device=device))) == launcher


def test_the_demo_sweeps_under_the_launcher_auto_picks(tmp_path):
    settings, overrides = homework.parse_args(["demo=true", f"out={tmp_path}"])
    study = study_run.prepare(settings, overrides)
    assert study.launcher == ["hydra/launcher=basic"], study.launcher
