"""Ctrl-C (SIGINT) and SIGTERM (what SLURM sends before it preempts a job) as one exception.

Inside `handle_signals()`, either signal raises `Interrupted` (a KeyboardInterrupt) in the main
thread at the next Python instruction, so the epoch in progress is abandoned, except inside a
`deferred()` block (a checkpoint and the files that describe it being written): there the signal
waits until the block ends. `exit_code(err)` is the shell's convention, 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = {"depth": 0, "pending": None}


def _on_signal(signum, frame) -> None:
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals():
    """Turn SIGINT and SIGTERM into `Interrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _state.update(depth=0, pending=None)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT/SIGTERM until the block ends, then raise `Interrupted` for the first one held."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if not _state["depth"] and _state["pending"]:
        signum, _state["pending"] = _state["pending"], None
        raise Interrupted(signum)


def signal_name(err: KeyboardInterrupt) -> str:
    """SIGINT or SIGTERM (a plain KeyboardInterrupt is Ctrl-C: SIGINT)."""
    return signal.Signals(getattr(err, "signum", signal.SIGINT)).name


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(getattr(err, "signum", signal.SIGINT))
