"""What the analysis CLIs share: user errors and warnings as one line each (exit 2); usage mistakes are
hw_hparams.config.errors.OneLineParser's, as in every command."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from analysis.read.runs import AnalysisError
from hw_hparams.config.errors import say


def run_cli(task: Callable[[], Any]) -> Any:
    """`task()` with each warning as one line (`warning: ...`); an AnalysisError is printed as one
    line (`error: ...`) and gives None, on which the caller exits 2."""
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
    try:
        return task()
    except AnalysisError as e:
        say(str(e))
        return None
