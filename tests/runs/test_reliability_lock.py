"""Two processes on one run folder: the second refuses in one line; a killed holder blocks nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from reliability_util import TINY_RUN, assert_one_error_line, fake_data_overrides, rows, run_many, start_train
from support import finish, wait_until

from hw_hparams.runs.format import LOCK as LOCK_NAME
from hw_hparams.runs.lock import RunLocked, run_lock

# Holds the lock until the test kills it (or closes its stdin): no sleep that a slow test could outlast.
HOLD = (
    "import sys; from pathlib import Path; from hw_hparams.runs.lock import run_lock\n"
    "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.read()"
)


def test_a_second_training_process_on_the_same_folder_refuses_in_one_line(tmp_path, fake_root):
    run_dir = tmp_path / "run"
    args = [*fake_data_overrides(fake_root), *TINY_RUN, "epochs=1000", f"hydra.run.dir={run_dir}"]
    first = start_train(args, tmp_path)
    wait_until(
        lambda: (run_dir / "history.csv").exists() and rows(run_dir / "history.csv"),
        "the first run's first epoch",
        alive=first,
    )
    [second] = run_many([(args, tmp_path)])
    assert second.returncode == 2
    line = assert_one_error_line(
        second, f"pid {first.pid} on {socket.gethostname()}", "two processes must not train one run"
    )
    assert str(run_dir) in line
    assert first.poll() is None  # the first one goes on, undisturbed
    first.send_signal(signal.SIGTERM)
    finish(first, "the first run after SIGTERM")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == len(rows(run_dir / "history.csv"))
    assert (run_dir / ".hydra").is_dir() and not (run_dir / LOCK_NAME).exists()


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"pid {holder.pid} on ") as info:
            with run_lock(tmp_path):
                pass
        assert "\n" not in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # left behind by the killed process, but no longer locked
    with run_lock(tmp_path):
        assert f"pid {os.getpid()} " in (tmp_path / LOCK_NAME).read_text()
    assert not (tmp_path / LOCK_NAME).exists()
