"""The one exception type for mistakes a user can fix, and an argument parser that reports them in one line."""

import argparse
import sys


class ConfigError(ValueError):
    """A value or a place a user can fix; `str(err)` is the one line we print."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line (`error: ...`, exit 2) instead of the usage text."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
