"""Is a difference between two settings bigger than the noise? Rankings worded accordingly.

A setting's final metric is the mean over its completed runs (seeds). The standard error of a
difference of two means is the spread over seeds (sqrt(s1^2/k1 + s2^2/k2), sample std) when both
settings have two or more runs; otherwise, for an accuracy, the binomial standard error of a
proportion measured on n images (sqrt(p(1-p)/n) per setting); a loss from single runs has none.
A difference counts as beyond noise when it exceeds Z = 2 standard errors (about 95%). A standard
error of 0 (every seed gave the same value; a binomial error at 0% or 100%) measures no noise, so such a
difference is untested, never "infinitely many standard errors".
The best validation accuracy over epochs is an accuracy on the validation split like the final one
(its binomial error ignores that the best of several epochs is picked, which favours it slightly).
Two settings tie when their values are equal as shown (accuracies in % to 2 decimals, losses to 4):
a tie is called a tie, never a lead. Accuracies are fractions here; words show them in % and
differences in percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.read.labels import fmt_loss, fmt_pct, words_list

Z = 2.0
#: A standard error of 0: every run of both settings gave one value (or accuracies of 0% or 100% on one run each).
NO_NOISE = "no measurable noise, a standard error of 0"
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
#: Metric names in words: 'val_acc' -> 'validation accuracy'.
WORDS = {
    f"{s}_{m}": f"{words} {noun}"
    for s, words in SPLIT_WORDS.items()
    for m, noun in (("acc", "accuracy"), ("loss", "loss"))
} | {"best_val_acc": "best validation accuracy"}
#: Which split's size n a binomial standard error uses, by metric.
SPLIT = {f"{s}_acc": s for s in SPLIT_WORDS} | {"best_val_acc": "val"}


@dataclass(frozen=True)
class Estimate:
    """One setting's final `metric`: mean, sample std (nan for k < 2) and count k of finite runs."""

    setting: str
    mean: float
    std: float
    k: int
    status: str = "completed"


@dataclass(frozen=True)
class Gap:
    """best - other in the metric's units (positive: best is better); se nan when unknown, 0 when the runs
    show no noise at all (every seed the same value, or a binomial error at 0% or 100%): then the gap is
    untested, neither within nor beyond noise."""

    diff: float
    se: float
    basis: str

    @property
    def tested(self) -> bool:
        return math.isfinite(self.se) and self.se > 0

    @property
    def within_noise(self) -> bool:
        return self.tested and abs(self.diff) <= Z * self.se

    @property
    def beyond_noise(self) -> bool:
        return self.tested and abs(self.diff) > Z * self.se

    def z_text(self) -> str:
        """'2.3 standard errors', '<0.1 standard errors' (never 0.0 for a difference), for a tested gap."""
        z = abs(self.diff) / self.se
        return "<0.1 standard errors" if 0 < z < 0.05 else f"{z:.1f} standard errors"


def higher_is_better(metric: str) -> bool:
    return metric.endswith("_acc")


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p (fraction) measured on n images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n and n > 0 else math.nan


def estimates(runs: pd.DataFrame, metric: str, labels: dict[str, str] | None = None) -> list[Estimate]:
    """Per setting of `runs`: its final `metric` over completed runs, best first (a setting
    with no finite value last, with its statuses). Ties go to the lower validation loss."""
    out, tie = [], {}
    for setting, part in runs.groupby("setting", sort=False):
        done = part[part["status"] == "completed"]
        vals = pd.to_numeric(done[metric], errors="coerce")
        vals = vals[vals.map(math.isfinite)]
        k = len(vals)
        status = "/".join(sorted(set(part["status"].astype(str)) - {"completed"})) or "completed"
        name = (labels or {}).get(setting, setting)
        mean, std = float(vals.mean()) if k else math.nan, float(vals.std(ddof=1)) if k > 1 else math.nan
        out.append(Estimate(name, mean, std, k, status))
        tie[name] = pd.to_numeric(done["val_loss"], errors="coerce").mean()
    sign = 1 if higher_is_better(metric) else -1

    def rank(e: Estimate):
        t = tie[e.setting]
        return (e.k == 0, -sign * e.mean if e.k else 0.0, t if math.isfinite(t) else math.inf)

    return sorted(out, key=rank)


def gap(best: Estimate, other: Estimate, metric: str, sizes: dict | None) -> Gap:
    """The difference best - other (signed so that positive favours `best`) and its standard error."""
    diff = (best.mean - other.mean) * (1 if higher_is_better(metric) else -1)
    if best.k > 1 and other.k > 1:
        se = math.sqrt(best.std**2 / best.k + other.std**2 / other.k)
        seeds = f"{best.k} seeds each" if best.k == other.k else f"{best.k} and {other.k} seeds"
        return Gap(diff, se, f"spread over {seeds}")
    split = SPLIT.get(metric)
    n = int((sizes or {}).get(split) or 0) if split else 0
    if n:
        se = math.hypot(binomial_se(best.mean, n), binomial_se(other.mean, n))
        return Gap(diff, se, f"binomial, {n} {SPLIT_WORDS.get(split, split)} images")
    return Gap(diff, math.nan, "")


def shown(metric: str, value: float) -> str:
    """A metric's value as the report shows it: '45.10%' for an accuracy, '1.2345' for a loss."""
    return f"{fmt_pct(value)}%" if higher_is_better(metric) else fmt_loss(value)


def equal_as_shown(metric: str, a: float, b: float) -> bool:
    """Whether two values of `metric` read the same in the report (the definition of a tie)."""
    return shown(metric, a) == shown(metric, b)


def tied(a: Estimate, b: Estimate, metric: str) -> bool:
    """Whether `a` and `b` both have a value and those values tie (equal_as_shown)."""
    return bool(a.k and b.k) and equal_as_shown(metric, a.mean, b.mean)


def diff_text(metric: str, diff: float) -> str:
    """'1.10 points' for an accuracy difference, '0.1234' for a loss difference."""
    return f"{fmt_pct(abs(diff))} points" if metric.endswith("_acc") else fmt_loss(abs(diff))


def ties(ests: Sequence[Estimate], metric: str) -> list[list[Estimate]]:
    """`ests` (best first) cut into runs of settings tied with each other (noise.tied)."""
    out: list[list[Estimate]] = []
    for e in ests:
        if out and tied(out[-1][0], e, metric):
            out[-1].append(e)
        else:
            out.append([e])
    return out


def _entry(metric: str, group: Sequence[Estimate]) -> str:
    """'lr 0.05 (45.10%)', 'lr 0.05 (1.2345)' for a loss, 'lr 0.5 (diverged)' without a value, and
    tied settings together: 'wd 1e-4 and wd 5e-4 (99.75% each)'."""
    e = group[0]
    if len(group) > 1:
        return f"{words_list([g.setting for g in group])} ({shown(metric, e.mean)} each)"
    return f"{e.setting} ({e.status if e.k == 0 else shown(metric, e.mean)})"


def noise_clause(best: Estimate, other: Estimate, metric: str, sizes: dict | None) -> str:
    """One sentence: is best's lead over `other` beyond the noise, within it, or unknown?"""
    if other.k == 0:
        return f"{other.setting} has no finite final value ({other.status})."
    g = gap(best, other, metric, sizes)
    lead = f"The lead over {other.setting} ({diff_text(metric, g.diff)})"
    if not math.isfinite(g.se):
        return f"{lead} is untested: one run per setting gives no noise estimate for a {WORDS[metric]}."
    if not g.tested:
        return f"{lead} is untested: {NO_NOISE} ({g.basis}), so there is no noise to measure it against."
    se = diff_text(metric, g.se)
    if g.within_noise:
        return f"{lead} is within noise (standard error {se}, {g.basis}): these runs do not tell the two apart."
    return f"{lead} is {g.z_text()} ({se}, {g.basis}), beyond noise."


def ranking_sentence(ests: Sequence[Estimate], metric: str, sizes: dict | None) -> str:
    """'Validation accuracy: highest for lr 0.05 (45.10%), then lr 0.01 (44.90%), lr 0.5
    (diverged). The lead over lr 0.01 (0.20 points) is within noise (...): ...'"""
    if not ests or ests[0].k == 0:
        return f"{WORDS[metric].capitalize()}: no run completed with a finite value."
    first, *rest = ties(ests, metric)
    word = "highest" if higher_is_better(metric) else "lowest"
    lead = f"a tie between {_entry(metric, first)}" if len(first) > 1 else f"{word} for {_entry(metric, first)}"
    text = f"{WORDS[metric].capitalize()}: {lead}"
    if rest:
        text += ", then " + ", ".join(_entry(metric, g) for g in rest)
    text += "."
    if rest:
        text += " " + noise_clause(ests[0], rest[0][0], metric, sizes)
    return text
