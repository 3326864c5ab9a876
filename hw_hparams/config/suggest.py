""" "Did you mean ...?": the one rule every command (training, study, analysis) uses for a name it does
not know. Standard library only: analysis/ imports it without the training code (tests/test_imports.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio (2 x matching characters / total) a misspelling must reach: optim.lrr ~
# optim.lr 0.94, cosin ~ cosine 0.91, scheduler ~ schedule 0.94, selct_by ~ select_by 0.94; resnet ~
# mobilenetv2 0.35 is no match.
CLOSE = 0.75
SHOWN = 3  # at most this many names in one hint


def close_names(given: str, known: Iterable[str]) -> list[str]:
    """The names of `known` that `given` most likely meant (at most SHOWN, sorted): the same name in
    another case; else the dotted names that end in `given`'s last part (lr -> optim.lr, optimizer.lr ->
    optim.lr); else the closest spellings (difflib's ratio >= CLOSE, the best ones only)."""
    names = sorted(set(known) - {given})
    low = given.lower()
    same = [n for n in names if n.lower() == low]
    if same:
        return same[:SHOWN]
    last = low.rpartition(".")[2]
    tails = [n for n in names if "." in n and n.lower().rpartition(".")[2] == last]
    if tails:
        return tails[:SHOWN]
    ratios = {n: difflib.SequenceMatcher(None, low, n.lower()).ratio() for n in names}
    best = max(ratios.values(), default=0.0)
    return [n for n in names if ratios[n] == best][:SHOWN] if best >= CLOSE else []


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """' (did you mean a, b?)' with the close names of `known` (close_names), or '' when none is close."""
    near = close_names(given, known)
    return f" (did you mean {', '.join(near)}?)" if near else ""
