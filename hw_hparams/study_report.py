"""outputs/<study>/report/: every table and figure of `analysis`, plus report.md in the assignment's order.

report.md gives the data split code, class proportions and channel statistics, each section's table
and figures, the choices made with the numbers behind them, the answers the data can give
(final-epoch metrics from each run's summary.json, i.e. the last history.csv row), the cosine
equation, the Beta(0.2, 0.2) density and the final test accuracy. Prose that needs judgement is
left as `> TODO(author): ...` lines. choices.json holds the choices in machine-readable form.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import analysis
from analysis.figures import plot_section
from analysis.labels import fmt_loss, fmt_num, fmt_pct

from .data import crop_flip, split_indices
from .data.augment import Normalize
from .run_folder import DATA_STATS, atomic_write_bytes, read_json, read_summary as summary_of, write_json
from .selection import Metric, choose, config_value

WORDS = {"val_acc": "validation accuracy", "val_loss": "validation loss", "train_loss": "training loss", "train_acc": "training accuracy"}
COSINE = (r"$$\eta_e = \eta_{\min} + \frac{1}{2}\left(\eta_0 - \eta_{\min}\right)\left(1 + \cos\frac{\pi e}{T}\right),"
          r" \qquad e = 0, 1, \dots, T-1,\ \ \eta_{\min} = 0$$")
TODO = "> TODO(author): "


def _value_text(metric: str, value: float) -> str:
    return f"{fmt_pct(value)}%" if metric.endswith("_acc") else fmt_loss(value)


def ranking(dirs: list[Path], key: str, metric: Metric, label: str) -> str:
    """'Highest final validation accuracy: **lr 0.05** (lr 0.5: 40.20%; lr 0.05: 45.10%; ...).'

    The winner is what `selection.choose` picks (same averaging over seeds and tie-breaking).
    """
    word = ("Highest" if metric.higher_is_better else "Lowest") + f" final {WORDS[metric.value]}"
    c = choose(dirs, key, metric)
    if c is None:
        return f"{word}: no completed run."
    parts = [f"{label} {fmt_num(v)}: " + (_value_text(metric.value, m) if math.isfinite(m) else "/".join(sorted(set(c.statuses[v]))))
             for v, m in c.scores.items()]
    tie = sum(1 for m in c.scores.values() if m == c.scores[c.value]) > 1
    return f"{word}: **{label} {fmt_num(c.value)}** ({'; '.join(parts)}){' (tie broken by ' + ('validation accuracy' if metric == Metric.val_loss else 'validation loss') + ')' if tie else ''}."


def runs_with(dirs: list[Path], key: str, value) -> list[Path]:
    """The runs among `dirs` whose config has `key` == `value`."""
    return [d for d in dirs if (s := summary_of(d)) and config_value(s["config"], key) == value]


def mean_final(dirs: list[Path], metric: str) -> float:
    """Mean final `metric` over the completed runs among `dirs` (nan: none)."""
    vals = [s["final"][metric] for s in map(summary_of, dirs) if s and s["status"] == "completed" and s["final"]]
    return sum(vals) / len(vals) if vals else math.nan


def _figures(report: Path, *names: str) -> str:
    drawn = [n for n in names if (report / "figures" / f"{n}.png").exists()]
    return "\n".join(f"![{n}](figures/{n}.png)" for n in drawn) or "_(figures not drawn: figures=false)_"


def _table(report: Path, name: str) -> str:
    path = report / "tables" / f"{name}.md"
    return path.read_text() if path.exists() else f"_(no table {name})_\n"


def _code(*objects) -> list[str]:
    return ["```python", "\n\n".join(inspect.getsource(o).rstrip() for o in objects), "```"]


def _class_table(stats: dict, cols: int = 5) -> str:
    cells = [f"{n}: {100 * p:.2f}%" for n, p in zip(stats["class_names"], stats["class_proportions"])]
    rows = [cells[i:i + cols] + [""] * (cols - len(cells[i:i + cols])) for i in range(0, len(cells), cols)]
    return "\n".join(["| " + " | ".join(["class: share"] * cols) + " |", "|" + "---|" * cols, *("| " + " | ".join(r) + " |" for r in rows)])


def data_section(stats: dict, report: Path) -> list[str]:
    sizes, props = stats["sizes"], stats["class_proportions"]
    split_line = next(line.strip() for line in inspect.getsource(inspect.getmodule(split_indices)).splitlines() if "random_split(" in line)
    return [
        "## 2 Data preprocessing", "",
        f"The {sizes['train'] + sizes['val']} training images are split into {sizes['train']} for training and "
        f"{sizes['val']} for validation with seed {stats['split_seed']} (`split_indices` in `hw_hparams/data/cifar.py`; "
        "for CIFAR-100 `n` = 50000, `val_size` = 10000, `seed` = 0):", "",
        "```python", split_line, "```", "",
        f"Class proportions of the training split ({len(props)} classes): min {100 * min(props):.2f}%, "
        f"max {100 * max(props):.2f}%; a uniform share is {100 / len(props):.2f}%.", "",
        _figures(report, "class_proportions"), "", _class_table(stats), "", _table(report, "data_stats"),
        "Augmentation and preprocessing: a random 32x32 crop of the image zero-padded by 4 pixels and a horizontal "
        "flip with probability 0.5, then normalisation with the channel statistics above; the same as torchvision's "
        "`RandomCrop(32, padding=4)`, `RandomHorizontalFlip(0.5)`, `ToTensor()`, `Normalize(mean, std)`, done batch-wise "
        "on the device:", "", *_code(crop_flip, Normalize), "",
    ]


def lr_section(outcome, report: Path) -> list[str]:
    dirs, lr = outcome.sections["lr_sweep"], outcome.lr
    return [
        "## 3 Learning rate", "", _table(report, "lr_sweep"), _figures(report, "lr_sweep_loss", "lr_sweep_acc"), "",
        *(f"- {ranking(dirs, 'optim.lr', m, 'lr')}" for m in (Metric.train_loss, Metric.train_acc, Metric.val_loss, Metric.val_acc)),
        f"- **Used from here on: lr {fmt_num(lr.value)}**, the best final {WORDS[lr.metric.value]} "
        f"(`select_by={lr.metric.value}`).", "",
        TODO + "describe the curves; discuss why each learning rate behaves as it does.", "",
    ]


def schedule_section(outcome, report: Path) -> list[str]:
    dirs = outcome.sections["schedule_sweep"]
    constant, cosine = (mean_final(runs_with(dirs, "schedule.name", n), "val_acc") for n in ("constant", "cosine"))
    return [
        "## 4 Learning-rate schedule", "",
        "Cosine annealing lowers the learning rate from its initial value to zero along half a cosine period: slowly "
        "at first, fastest mid-training, slowly again at the end. With initial rate $\\eta_0$ and $T$ epochs, epoch $e$ "
        "trains with", "", COSINE, "",
        "(`torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=0)`, stepped once per epoch; "
        f"here $\\eta_0$ = {fmt_num(outcome.lr.value)}).", "",
        TODO + "the intuition in your own words.", "",
        _figures(report, "lr_schedule"), "", _table(report, "schedule_sweep"),
        _figures(report, "schedule_sweep_loss", "schedule_sweep_acc"), "",
        f"- {ranking(dirs, 'schedule.name', Metric.val_acc, 'schedule')}",
        f"- {ranking(dirs, 'schedule.name', Metric.train_loss, 'schedule')}",
        "- Sections 5 and 6 use cosine annealing, as the assignment prescribes"
        + (" (the constant rate did better here: say so in the discussion)." if constant > cosine else "."), "",
        TODO + "describe the findings; discuss the difference between the two schedules.", "",
    ]


def wd_section(outcome, report: Path) -> list[str]:
    dirs, wd = outcome.sections["wd_sweep"], outcome.wd
    gaps = []
    for v in wd.scores:
        runs = runs_with(dirs, "optim.weight_decay", v)
        gaps.append(f"wd {fmt_num(v)}: {fmt_loss(mean_final(runs, 'val_loss') - mean_final(runs, 'train_loss'))}")
    return [
        "## 5 Weight decay", "", _table(report, "wd_sweep"), _figures(report, "wd_sweep_loss", "wd_sweep_acc"), "",
        f"- {ranking(dirs, 'optim.weight_decay', Metric.val_acc, 'wd')}",
        f"- {ranking(dirs, 'optim.weight_decay', Metric.train_loss, 'wd')}",
        f"- Final validation loss minus training loss (generalisation gap): {'; '.join(gaps)}.",
        f"- **Used for mixup: wd {fmt_num(wd.value)}**, the best final {WORDS[wd.metric.value]} (`select_wd_by={wd.metric.value}`).", "",
        TODO + "illustrate the regularisation effect from the curves; discuss it.", "",
    ]


def mixup_section(outcome, report: Path) -> list[str]:
    mix = outcome.sections["mixup"]
    base = runs_with(outcome.sections["wd_sweep"], "optim.weight_decay", outcome.wd.value)
    return [
        "## 6 Data augmentation: mixup", "",
        "Mixup trains on $\\tilde x = \\lambda x_i + (1-\\lambda) x_j$ with the loss "
        "$\\lambda \\ell(\\tilde x, y_i) + (1-\\lambda) \\ell(\\tilde x, y_j)$, one $\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)$ "
        "per batch. For $\\alpha$ = 0.2 the density $p(\\lambda) = \\lambda^{\\alpha-1}(1-\\lambda)^{\\alpha-1} / B(\\alpha, \\alpha)$ "
        "puts most mass near 0 and 1, so most batches are mixed only mildly:", "",
        _figures(report, "beta_pdf"), "", _table(report, "mixup"),
        _figures(report, "mixup_loss", "mixup_acc", "mixup_effect_loss", "mixup_effect_acc"), "",
        f"- Against the same setting without mixup (lr {fmt_num(outcome.lr.value)}, cosine, wd {fmt_num(outcome.wd.value)}, "
        f"section 5): final validation accuracy {fmt_pct(mean_final(base, 'val_acc'))}% -> {fmt_pct(mean_final(mix, 'val_acc'))}%, "
        f"validation loss {fmt_loss(mean_final(base, 'val_loss'))} -> {fmt_loss(mean_final(mix, 'val_loss'))}, training loss "
        f"{fmt_loss(mean_final(base, 'train_loss'))} -> {fmt_loss(mean_final(mix, 'train_loss'))} (under mixup, training "
        "loss and accuracy are measured on the mixed batches; accuracy is lambda-weighted).", "",
        TODO + "describe the effects shown in the figures; discuss why mixup acts this way.", "",
    ]


def final_test_section(outcome, report: Path) -> tuple[list[str], dict]:
    final = [(d, summary_of(d)) for d in outcome.sections["mixup"]]
    tests = [s["test"] for _, s in final if s and s["test"]]
    result = {"acc": sum(t["acc"] for t in tests) / len(tests), "loss": sum(t["loss"] for t in tests) / len(tests)} if tests else None
    where = ", ".join(f"`{Path(os.path.relpath(d, report)).as_posix()}`" for d, _ in final)
    if result is None:
        text = "The final run did not complete, so the test split was not evaluated."
    else:
        config = final[0][1]["config"]
        setting = analysis.setting_label({"lr": outcome.lr.value, "schedule": config["schedule"]["name"],
                                          "weight_decay": outcome.wd.value, "mixup_alpha": config["augmentation"]["mixup_alpha"]})
        seeds = f", mean of {len(tests)} runs" if len(tests) > 1 else ""
        text = (f"The final configuration ({setting}) reaches **{fmt_pct(result['acc'])}% test accuracy** (test loss "
                f"{fmt_loss(result['loss'])}{seeds}), evaluated once, after all the choices above, in {where}.")
    return ["### Test accuracy", "", text, "", TODO + "what this accuracy means for similar images in the future.", ""], result


def _mixup_figure(outcome, report: Path) -> None:
    """figures/mixup_effect_{loss,acc}: the final setting with and without mixup on one plot."""
    base = runs_with(outcome.sections["wd_sweep"], "optim.weight_decay", outcome.wd.value)
    runs, hist = analysis.collect([*base, *outcome.sections["mixup"]])
    runs["section"], hist["section"] = "mixup_effect", "mixup_effect"
    plot_section(hist, runs, "with and without mixup", report / "figures", "mixup_effect")


def write_report(study, outcome, command: str) -> Path:
    """Write <study>/report/ (analysis output, report.md, choices.json); returns report.md's path."""
    s, report = study.settings, study.root / "report"
    every = [d for dirs in outcome.sections.values() for d in dirs]
    analysis.write_all(every, report, figures=s.figures)
    if s.figures:
        _mixup_figure(outcome, report)
    stats = read_json(every[0] / DATA_STATS)
    model = summary_of(every[0])["config"]["model"]["name"]
    title = "demo on generated data" if s.demo else f"{model} on CIFAR-100"
    head = [f"# Hyperparameter study: {title}", ""]
    if s.demo:
        head += [f"> **Demo**: generated images in CIFAR-100's format, `model=tiny`, every section's epochs scaled by "
                 f"{s.demo_epoch_scale}. The numbers show the pipeline working, nothing about MobileNetV2 or CIFAR-100.", ""]
    head += [f"Produced by `{command}` from the run folders in `{Path(os.path.relpath(study.root, report)).as_posix()}/`. "
             "Numbers are final-epoch values (`summary.json`, the last `history.csv` row) unless stated otherwise; "
             "`runs.csv` and `history.csv` hold every run and epoch, `tables/` the tables (Markdown, LaTeX), "
             "`figures/` the figures (PNG, PDF).", "",
             TODO + "introduction: optimisation versus regularisation, and what this study varies.", ""]
    test_lines, test = final_test_section(outcome, report)
    md = head + data_section(stats, report) + lr_section(outcome, report) + schedule_section(outcome, report) \
        + wd_section(outcome, report) + mixup_section(outcome, report) + test_lines
    path = report / "report.md"
    atomic_write_bytes(path, "\n".join(md).encode())
    write_json(report / "choices.json", {
        "lr": {"value": outcome.lr.value, "by": outcome.lr.metric.value, "scores": {fmt_num(k): v for k, v in outcome.lr.scores.items()}},
        "weight_decay": {"value": outcome.wd.value, "by": outcome.wd.metric.value,
                         "scores": {fmt_num(k): v for k, v in outcome.wd.scores.items()}},
        "final_runs": [str(d) for d in outcome.sections["mixup"]], "test": test,
    })
    return path
