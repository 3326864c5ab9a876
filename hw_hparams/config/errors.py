"""The one exception type for mistakes a user can fix, and the one way they are reported: `error: ...` in one
line on stderr (`say`), exit status 2 (`fail`), also for argparse's usage mistakes (`OneLineParser`)."""

import argparse
import sys
from typing import NoReturn


class ConfigError(ValueError):
    """A value or a place a user can fix; `str(err)` is the one line we print."""


def say(message: str) -> None:
    """Print `error: message` as one line on stderr (whitespace and line breaks folded)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


def fail(message: str) -> NoReturn:
    """`say(message)` and exit with status 2."""
    say(message)
    sys.exit(2)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line (`error: ...`, exit 2) instead of the usage text."""

    def error(self, message: str) -> None:
        fail(f"{message} (see {self.prog} --help)")
