"""What the analysis CLIs share: usage mistakes and user errors as one line, exit status 2."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, TypeVar

from .runs import AnalysisError

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake as one line (`error: ...`, exit 2), not the usage text."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the CLIs: 'warning: <message>', one line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def run_cli(task: Callable[[], T]) -> T | None:
    """`task()` with warnings as one line each; an AnalysisError is printed as `error: ...`
    (one line) and gives None (the caller exits 2)."""
    warnings.showwarning = warning_line
    try:
        return task()
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
