"""What the analysis CLIs share: usage mistakes, user errors and warnings as one line each (exit 2)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .runs import AnalysisError


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake as one line (`error: ...`, exit 2), not the usage text."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_cli(task: Callable[[], Any]) -> Any:
    """`task()` with each warning as one line (`warning: ...`); an AnalysisError is printed as one
    line (`error: ...`) and gives None, on which the caller exits 2."""
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
    try:
        return task()
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
