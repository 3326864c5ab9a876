"""What a person at a terminal sees: the epoch bar fed by the real training pass (k = 1 and k > 1),
and the commands of the README and the docs run on a pseudo-terminal, as a shell runs them, each
ending as it should with its bars drawn and cleared."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys

import pytest
import torch
from omegaconf import OmegaConf
from support import fake_data_overrides, run_cli, run_in_terminal

import hw_hparams.engine.group as steps
from hw_hparams.data import Normalize, Split
from hw_hparams.runs import progress

CPU = torch.device("cpu")
BATCH = 16
FIGURE = r"-?[\d.]+(?:e[+-]\d+)?"  # a number as the bar writes it: 4.6012, 0.05, 1.7e+15
# One drawn frame of an epoch bar as the terminal receives it (its blocks, or "#" and digits without UTF-8).
# The start of a log line: Hydra's jobs' ([2026-12-05 00:21:44,965][hw_hparams.train]) or the study's ([00:26:17][...]).
LOG_LINE = re.compile(r"\[(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d(?:,\d+)?\]\[[\w.]+\]")
FRAME = re.compile(r"epoch (\d+)/(\d+) +\d+%\|[ \u2588-\u258f#1-9]*\| (?:\?|\d\d:\d\d) left")


def _group(k: int) -> steps.Group:
    """k fresh tiny runs (seeds 0..k-1) on the CPU, with learning rates 0.05, 0.5, 5, ..."""
    settings = steps.resolve_settings(OmegaConf.create({"compile": "false", "precision": "auto"}), CPU, "tiny")
    runs = [steps.RunSpec(seed, 0.05 * 10**seed, "constant", 0.9, 0.0, True, None) for seed in range(k)]
    normalize = Normalize([0.5, 0.45, 0.4], [0.25, 0.25, 0.27], CPU)
    group = steps.build_group("tiny", runs, CPU, normalize, settings, BATCH)
    group.optimizer.set_lr([r.lr for r in runs])
    return group


def _split(n: int) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 100, (n,)))


@pytest.mark.parametrize("k", [1, 3])
def test_the_bar_shows_the_running_figures_of_the_pass_the_engine_trains(k, monkeypatch):
    """Through the real training pass (its float64 [k, 2] sums): after the last batch the bar shows exactly
    the pass's figures (one run: its loss and accuracy; k runs: lowest..highest), then it is wiped."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setattr(progress, "REFRESH_S", 0.0)  # every batch updates the figures
    train = _split(3 * BATCH + 5)  # three full batches and a partial one
    bar = progress.EpochBar(2, 300, batches=4)
    bar.bar.mininterval = 0  # and every batch draws a frame
    metrics = steps.train_epoch(_group(k), train, bar)
    shown = bar.bar.postfix
    bar.close()

    assert bar.bar.n == 4 and len(metrics) == k and all(m.images == len(train) for m in metrics)
    losses, accs = [m.loss for m in metrics], [100 * m.acc for m in metrics]
    if k == 1:
        assert shown == f"loss {losses[0]:.4f} acc {accs[0]:.2f}%"
    else:
        assert shown == (f"{k} runs: loss {min(losses):.3g}..{max(losses):.3g} acc {min(accs):.1f}..{max(accs):.1f}%")
    frames = [f for f in re.split(r"[\r\n]", out.getvalue()) if f.strip()]
    assert all(FRAME.match(f) and f.startswith("epoch 2/300 ") for f in frames), frames
    assert all(len(f) <= 80 for f in frames)  # no terminal size known: 80 columns
    assert len(frames) == 5 and frames[-1].startswith("epoch 2/300 100%|")
    assert frames[-1].endswith(f"| 00:00 left, {shown}")  # the last frame shows the whole pass's figures
    assert out.getvalue().endswith("\r") and out.getvalue().rsplit("\r", 2)[-2].strip() == ""  # wiped


def test_a_group_whose_runs_diverge_counts_them_apart():
    nan, inf = float("nan"), float("inf")
    sums = torch.tensor([[4.5 * 50, 10.0], [nan, 3.0], [4.7 * 50, 20.0], [inf, 0.0]], dtype=torch.float64)
    assert progress.figures(sums, 50) == "4 runs: loss 4.5..4.7 acc 20.0..40.0%, 2 nan"
    assert progress.figures(sums[1:2], 50) == "loss nan acc 6.00%"
    assert progress.figures(sums[[1, 3]], 50) == "2 runs: 2 nan"
    assert progress.figures(torch.tensor([[1.7e15 * 50, 1.0]], dtype=torch.float64), 50) == "loss 1.7e+15 acc 2.00%"


# --- the README's and the docs' commands on a pseudo-terminal---------------------------------------------


def _bars(screen: str) -> list[tuple[int, int]]:
    """(epoch, epochs) of every bar frame drawn on the terminal."""
    return [(int(m[1]), int(m[2])) for m in FRAME.finditer(screen)]


def _lines_over_a_bar(screen: str) -> list[str]:
    """Log lines that begin where the cursor is not at the start of a clean line (in the middle of a bar):
    a line must follow a newline, a wiped bar (tqdm: \\r, spaces, \\r) or an erased line (ESC [K)."""
    bad = []
    for m in LOG_LINE.finditer(screen):
        before = screen[max(0, m.start() - 300) : m.start()]
        if before and not (before.endswith(("\n", "\x1b[K")) or re.search(r"\r +\r$", before)):
            bad.append(screen[max(0, m.start() - 100) : m.end()])
    return bad


def _summaries(folder) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/summary.json"))]


def test_the_readmes_offline_run_at_a_terminal_completes_with_its_bar(tmp_path, fake_root):
    """README, "Three commands", the offline run (smaller): `python -m hw_hparams.train data.root=... epochs=2`."""
    args = [*fake_data_overrides(fake_root), "model=tiny", "epochs=2", "batch_size=50"]
    status, screen = run_in_terminal(args, tmp_path)
    assert status == 0, screen[-3000:]
    (summary,) = _summaries(tmp_path / "outputs" / "run")
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert {1, 2} <= {e for e, _ in _bars(screen)} and {n for _, n in _bars(screen)} == {2}
    assert re.search(rf"\| \d\d:\d\d left, loss {FIGURE} acc {FIGURE}%", screen)  # the running figures
    for epoch in (1, 2):  # each epoch's bar is wiped before its log line, which starts a line of its own
        assert re.search(rf"\r {{10,}}\r\[[^\r\n]*\]\[hw_hparams.train\]\[INFO\] - epoch {epoch}/2  lr ", screen)
    assert "completed after 2/2 epochs" in screen and "Traceback" not in screen
    assert not _lines_over_a_bar(screen)


def test_a_fused_sweep_of_two_at_a_terminal_completes_with_one_bar_for_both(tmp_path, fake_root):
    args = ["-m", *fake_data_overrides(fake_root), "model=tiny", "epochs=2", "batch_size=50"]
    status, screen = run_in_terminal([*args, "optim.lr=0.05,0.5", "hydra/launcher=fused"], tmp_path)
    assert status == 0, screen[-3000:]
    summaries = _summaries(tmp_path / "outputs" / "multirun" / "adhoc")
    assert [(s["status"], s["epochs_completed"]) for s in summaries] == [("completed", 2)] * 2
    assert {1, 2} <= {e for e, _ in _bars(screen)}
    assert re.search(rf"\| \d\d:\d\d left, 2 runs: loss {FIGURE}\.\.{FIGURE} acc {FIGURE}\.\.{FIGURE}%", screen)
    assert "Traceback" not in screen and not _lines_over_a_bar(screen)


def test_the_quickstart_demo_at_a_terminal_completes_with_its_bars(demo):
    """README, Quickstart: `python -m hw_hparams.homework demo=true` at a terminal (the `demo` fixture: sized down,
    its bars on): every run of every section completed, the report written, a bar drawn in each stage."""
    screen, study = demo["screen"], demo["study"]
    runs = [s for section in ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup") for s in _summaries(study / section)]
    assert len(runs) == 8 and all(s["status"] == "completed" for s in runs)
    assert (study / "report" / "report.md").is_file()
    assert {n for _, n in _bars(screen)} == {1, 2}  # the lr sweep's 1-epoch runs and the others' 2 epochs
    assert "sections 4/4, runs 8/8" in screen and "Traceback" not in screen
    assert not _lines_over_a_bar(screen)  # the study's lines come from another process than the bars


def test_the_help_examples_run_offline_as_written(tmp_path):
    """`--help`'s offline examples, joined at their line continuations, run as printed: data generated,
    then trained from it (data.download=false), never fetched."""
    text = run_cli(["--help"], tmp_path).stdout
    block = text.split("Examples (offline", 1)[1].split("On CIFAR-100", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line)[2:] for line in block.splitlines() if line.strip().startswith("python -m ")]
    assert [c[0] for c in commands] == ["hw_hparams.data", "hw_hparams.train", "hw_hparams.train"]
    for module, *args in commands:
        assert module == "hw_hparams.data" or "data.download=false" in args
        result = run_cli(args, tmp_path, module=module)
        assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "outputs").rglob("summary.json")]
    assert len(summaries) == 3 and all(s["status"] == "completed" for s in summaries)
