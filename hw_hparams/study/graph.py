"""The study as a graph of sections, and its plan: which sections train together, stage by stage.

Each section names the choices it needs (SECTIONS); a stage starts every section whose needs are
met, at once, where the launcher trains runs at once (`together`), and one section after another
where it does not (`basic`). With speculation the final section does not wait for the choice it
may guess (SPECULATED, the weight decay): it trains under every candidate of that choice alongside
the section that makes it; once the choice is made, the candidate with the chosen value alone
evaluates the test split, in a last stage that trains nothing. `stages` is the one definition of
the plan: the homework runs it, `plan=true` prints it, the bench's critical path follows it.
Pure logic: no Hydra, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Decision:
    """A choice the study makes: the value of config `key` picked from `section`'s runs by the
    final-epoch metric the homework setting `metric_setting` names."""

    name: str  # its name in choices.json
    key: str
    section: str
    metric_setting: str


@dataclass(frozen=True)
class Section:
    """A section of the study: an experiment config (conf/experiment/<name>.yaml) and the choices it needs."""

    name: str
    needs: tuple[str, ...] = ()
    final: bool = False  # the final configuration: it alone evaluates the test split


DECISIONS = (
    Decision("lr", "optim.lr", "lr_sweep", "select_by"),
    Decision("weight_decay", "optim.weight_decay", "wd_sweep", "select_wd_by"),
)
SECTIONS = (
    Section("lr_sweep"),
    Section("schedule_sweep", needs=("lr",)),
    Section("wd_sweep", needs=("lr",)),
    Section("mixup", needs=("lr", "weight_decay"), final=True),
)
SPECULATED = "weight_decay"  # the one choice the final section may start without, under each candidate
DECISION = {d.name: d for d in DECISIONS}
FINAL = next(s.name for s in SECTIONS if s.final)


@dataclass(frozen=True)
class Part:
    """One section's sweep in a stage; `guess`: the value it assumes for a choice not yet made."""

    section: str
    guess: Optional[tuple[str, Any]] = None


@dataclass(frozen=True)
class Stage:
    """Parts that train at once (a `test` stage: the final part evaluates the test split, nothing trains)."""

    parts: tuple[Part, ...]
    test: bool = False


def stages(together: bool, speculate: bool, candidates: dict[str, list]) -> list[Stage]:
    """The study's stages in order. `together`: the launcher trains a stage's runs at once;
    `candidates`: each speculated choice's values (the swept values of the section that makes it)."""
    known: set[str] = set()
    done: set[str] = set()
    out: list[Stage] = []
    guessed = False
    while len(done) < len(SECTIONS):
        ready: list[Part] = []
        for s in SECTIONS:
            missing = set(s.needs) - known
            if s.name in done:
                continue
            if not missing:
                ready.append(Part(s.name))
            elif (
                speculate and s.final and missing == {SPECULATED} and set(_needs(DECISION[SPECULATED].section)) <= known
            ):
                ready += [Part(s.name, (SPECULATED, v)) for v in candidates[SPECULATED]]
                guessed = True
        assert ready, f"sections {sorted(set(s.name for s in SECTIONS) - done)} need choices no section makes"
        out += [Stage(tuple(ready))] if together else [Stage((p,)) for p in ready]
        done |= {p.section for p in ready}
        known |= {d.name for d in DECISIONS if d.section in done}
    if guessed:
        out.append(Stage((Part(FINAL),), test=True))
    return out


def _needs(section: str) -> tuple[str, ...]:
    return next(s.needs for s in SECTIONS if s.name == section)


def critical_path_epochs(plan: list[Stage], epochs: Callable[[Part], list[int]]) -> list[int]:
    """Each training stage's length in epochs (the longest run of its parts; a test stage trains none).
    `epochs(part)`: the epochs of each of the part's runs."""
    return [max((e for p in st.parts for e in epochs(p)), default=0) for st in plan if not st.test]


def stage_seconds(batches: list[tuple[int, int]], per_run_s: Callable[[int], float], compile_s: float) -> float:
    """Seconds of one stage whose runs train in `batches` one after another, each (epochs, runs at once);
    `per_run_s(k)`: the seconds of one epoch of each run with k runs sharing the device; one
    compilation per batch."""
    return sum(e * per_run_s(k) + compile_s for e, k in batches if e > 0)


def per_run_times(rows: list[dict], kinds: tuple[str, ...]) -> tuple[dict[int, float], float]:
    """({k: s/epoch of each run with k runs together}, the largest compile + capture s) from the
    measured rows whose pipeline starts with one of `kinds`, e.g. ("(c)", "(e)"): one run and fused."""
    measured = [r for r in rows if "error" not in r and r["pipeline"].startswith(kinds)]
    return {r["runs"]: r["s_per_epoch"] for r in measured}, max((r["compile_s"] for r in measured), default=0.0)


def epoch_time_at(per_run: dict[int, float], k: int) -> tuple[float, str]:
    """Per-run s/epoch with `k` runs sharing the device: measured at k, else at the next larger
    measured k' (slower, so an upper bound), else the largest measured K scaled by k/K (the device
    busy all the time: aggregate throughput no better than at K)."""
    larger = [m for m in per_run if m >= k]
    if larger:
        m = min(larger)
        return per_run[m], ("measured" if m == k else f"measured at k={m} (upper bound)")
    m = max(per_run)
    return per_run[m] * k / m, f"k={m} scaled by {k}/{m}"


def minutes(seconds: float) -> str:
    """'42 s', '7 min' (rounded up), '3 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    m = math.ceil(seconds / 60)
    return f"{m} min" if m < 120 else f"{m // 60} h {m % 60:02d} min"
