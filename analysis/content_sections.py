"""The four experiment sections of the report: learning rate, schedule, weight decay, mixup.

Each states its setup, shows a table and a figure, ranks the settings on the final-epoch metrics
the assignment asks about (saying whether the lead is beyond the noise of the split, noise.py),
names the study's choice, and leaves the discussion to the author.
"""

from __future__ import annotations

import pandas as pd

from analysis.noise import WORDS, estimates, gap, ranking_sentence, shown, ties
from analysis.read.labels import fmt_loss, fmt_num, hparam_word, section_title, words_list
from analysis.read.study import StudyData
from analysis.render.curves import MIXED, section_figure, setting_words
from analysis.render.document import Bold, Bullets, Cite, Code, Equation, Heading, Math, Para, Ref, Table, Todo
from analysis.render.figures import beta_figure, lr_schedule_figure, mixup_alphas
from analysis.render.tables import MISSING, REPORT_METRICS, metrics_table

COSINE = r"\eta_e = \frac{\eta_0}{2}\left(1 + \cos\frac{\pi e}{T}\right), \qquad e = 0, 1, \dots, T-1"
RANKED = ("val_acc", "val_loss", "train_loss")  # the metrics a section ranks its settings on


def _ranked(runs: pd.DataFrame, metric: str) -> list:
    """estimates of `metric` per setting of `runs`, best first, named by what differs between them."""
    return estimates(runs, metric, setting_words(runs)[0])


def section_table(runs: pd.DataFrame, name: str, title: str) -> Table:
    """Final-epoch metrics per setting: the setting named by what differs, accuracies in %,
    losses with one precision; a Runs column with seeds, a Status column when not all completed."""
    labels, shared = setting_words(runs)
    t = metrics_table(runs, name, (), metrics=REPORT_METRICS, labels=labels, counts="runs", with_n=False)
    note = (
        (f" Shared by all runs: {', '.join(shared)}." if shared else "")
        + (" With several runs: mean ± sample standard deviation." if "Runs" in t.header else "")
        + (f" {MISSING}: no finite value." if any(MISSING in c for row in t.rows for c in row) else "")
    )
    t.caption = (f"{title}: final-epoch losses (cross-entropy) and accuracies (in %) per setting.{note}",)
    return t


def _experiment(
    s: StudyData, section: str, intro: tuple, runs: pd.DataFrame, hist: pd.DataFrame, metrics=RANKED
) -> list:
    """Heading-less core of a section: intro, table, figure, then its settings ranked on each of `metrics`."""
    rankings = Bullets([(ranking_sentence(_ranked(runs, m), m, s.sizes),) for m in metrics])
    if runs.empty:
        return [Para(f"No runs of {section} were found."), rankings]
    title = section_title(section)
    table, figure = section_table(runs, section, title), section_figure(runs, hist, section)
    return [
        Para(*intro, " ", Ref(table.label), " lists the final-epoch metrics and ", Ref(figure.label), " the curves."),
        table,
        figure,
        rankings,
    ]


def _choice_text(s: StudyData, name: str, col: str) -> tuple:
    """'The study continues with lr 0.05, the best final validation accuracy.' (+ noise caveat)."""
    c = s.choice(name)
    if c is None:
        return ()
    ests = _ranked(s.part(c.section)[0], c.metric)
    word, metric = hparam_word(col, c.value), WORDS.get(c.metric, c.metric)
    top = ties(ests, c.metric)[0] if ests else []
    if len(top) > 1 and word in {e.setting for e in top}:
        others = words_list([e.setting for e in top if e.setting != word])
        breaker = "higher validation accuracy" if c.metric == "val_loss" else "lower validation loss"
        how = (
            f"the study breaks a tie by the {breaker}"
            if len({e.mean for e in top}) == 1
            else "the study compares the unrounded values"
        )
        return (
            "The study continues with ",
            Bold(word),
            f", which ties with {others} on the final {metric} ({shown(c.metric, top[0].mean)} each): {how}.",
        )
    text = ["The study continues with ", Bold(word), f", the best final {metric}."]
    if len(ests) > 1 and ests[1].k:
        g = gap(ests[0], ests[1], c.metric, s.sizes)
        if ests[0].setting != word and word in {e.setting for e in ests}:
            text.append(f" These runs now rank {ests[0].setting} first: the runs changed after the choice.")
        elif g.within_noise:
            text.append(
                f" Its lead over {ests[1].setting} is within noise, so {ests[1].setting} would "
                "have been as defensible a choice."
            )
    return tuple(text)


def lr_section(s: StudyData) -> list:
    runs, hist = s.part("lr_sweep")
    lrs = [fmt_num(v) for v in pd.unique(runs["lr"].dropna())]
    intro = (f"One run per initial learning rate ({words_list(lrs)}), otherwise identical.",)
    return [
        Heading("Learning Rate"),
        *_experiment(s, "lr_sweep", intro, runs, hist, ("train_loss", "train_acc", "val_loss", "val_acc")),
        Para(*_choice_text(s, "lr", "lr")),
        Todo(
            "learning-rate",
            "describe the curves; which learning rate is best for training and for validation, "
            "and why each behaves as it does.",
        ),
    ]


def schedule_section(s: StudyData) -> list:
    runs, hist = s.part("schedule_sweep")
    lr = s.choice("lr")
    eta0 = fmt_num(lr.value) if lr else "the chosen rate"
    epochs = ", ".join(fmt_num(v) for v in pd.unique(runs["epochs"].dropna())) or "T"
    rates = lr_schedule_figure(s.hist, s.runs)
    blocks = [
        Heading("Learning Rate Schedule"),
        Para(
            "Cosine annealing ",
            Cite("loshchilov2017sgdr"),
            " lowers the learning rate from its initial "
            "value to zero along half a cosine period: slowly at first, fastest in the middle of "
            "training, slowly again at the end. Epoch ",
            Math("e"),
            " of ",
            Math("T"),
            " trains with",
        ),
        Equation(COSINE),
        Para(
            "where ",
            Math(r"\eta_0"),
            f" = {eta0} is the learning rate chosen above and ",
            Math("T"),
            f" = {epochs} epochs (stepped once per epoch, as PyTorch's ",
            Code("CosineAnnealingLR"),
            " with a minimum of 0); ",
            Ref(rates.label),
            " shows the rates the runs used.",
        ),
        rates,
        Todo("cosine-intuition", "the intuition behind cosine annealing in your own words."),
    ]
    intro = (f"Both schedules start from lr {eta0}; everything else is unchanged.",)
    blocks += _experiment(s, "schedule_sweep", intro, runs, hist)
    ests = _ranked(runs, "val_acc")
    text = "The weight-decay and mixup runs use cosine annealing, as the assignment prescribes"
    if len(ests) > 1 and ests[0].k and ests[1].k and ests[0].setting != "cosine":
        if any(e.setting == "cosine" for e in ties(ests, "val_acc")[0]):
            text += f"; {ests[0].setting} reached the same validation accuracy here."
        elif (g := gap(ests[0], ests[1], "val_acc", s.sizes)).within_noise:
            text += f"; {ests[0].setting} reached a validation accuracy within noise of it here."
        elif g.beyond_noise:
            text += f", although {ests[0].setting} reached the clearly higher validation accuracy here."
        else:
            text += f", although {ests[0].setting} reached a higher validation accuracy here (untested against noise)."
    blocks.append(Para(text + ("" if text.endswith(".") else ".")))
    blocks.append(Todo("schedule", "describe the findings; discuss why the two schedules differ."))
    return blocks


def wd_section(s: StudyData) -> list:
    runs, hist = s.part("wd_sweep")
    wds = [hparam_word("weight_decay", v) for v in pd.unique(runs["weight_decay"].dropna())]
    blocks = [
        Heading("Weight Decay"),
        Para(
            "Weight decay subtracts ",
            Math(r"\eta\lambda w"),
            " from the weights at every step ",
            Cite("zhang2019weightdecay"),
            ".",
        ),
        *_experiment(s, "wd_sweep", (f"Two runs with cosine annealing, {words_list(wds)}.",), runs, hist),
    ]
    labels, _ = setting_words(runs)
    gaps = []
    for setting, part in runs.groupby("setting", sort=False):
        done = part[part["status"] == "completed"]
        gaps.append(f"{labels.get(setting, setting)}: {fmt_loss((done['val_loss'] - done['train_loss']).mean())}")
    blocks += [
        Para(f"Final validation loss minus training loss (the generalisation gap): {'; '.join(gaps)}."),
        Para(*_choice_text(s, "weight_decay", "weight_decay")),
        Todo("weight-decay", "illustrate the regularisation effect from the curves and discuss it."),
    ]
    return blocks


def _beta_words(alpha: float) -> str:
    """What the density of Beta(alpha, alpha) does to a batch, in words."""
    if alpha < 1:
        return "puts most of the mass near 0 and 1, so most batches are mixed only mildly"
    if alpha == 1:
        return "is uniform on [0, 1], so every mixing weight is as likely"
    return "concentrates around 0.5, so most batches are mixed strongly"


def mixup_section(s: StudyData) -> list:
    final = s.contract.final_section
    runs, hist = s.final_part()
    alphas = mixup_alphas(runs)  # the alphas the final runs used
    blocks: list = [Heading("Data Augmentation")]
    if alphas:
        alpha, density = fmt_num(alphas[0]), beta_figure(runs)
        blocks += [
            Para(
                "Mixup ",
                Cite("zhang2018mixup"),
                " trains on convex combinations of two examples, ",
                Math(r"\tilde x = \lambda x_i + (1-\lambda) x_j"),
                ", with the loss ",
                Math(r"\lambda\,\ell(\tilde x, y_i) + (1-\lambda)\,\ell(\tilde x, y_j)"),
                "; one ",
                Math(r"\lambda \sim \mathrm{Beta}(\alpha, \alpha)"),
                " is drawn per batch. For ",
                Math(rf"\alpha = {alpha}"),
                " its density (",
                Ref(density.label),
                f") {_beta_words(alphas[0])}.",
            ),
            density,
        ]
        intro = (
            f"The final configuration adds mixup (α = {alpha}) to the best setting so far; it is compared "
            "with the same setting without mixup (from the weight-decay runs).",
        )
    else:
        intro = ("No run of the final configuration trained with mixup.",)
    blocks += _experiment(s, final, intro, runs, hist)
    if alphas:
        blocks.append(Para(f"{MIXED}, so they are not comparable with the runs without mixup."))
    blocks.append(Todo("mixup", "describe the effects shown in the figure; discuss why mixup acts this way."))
    return blocks
