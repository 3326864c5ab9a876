"""The shared waits of the tests (support.wait_until, support.finish, rendezvous.Meet) say what they waited for."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import finish, wait_until


def test_wait_until_returns_the_condition_s_value_and_fails_naming_what_it_waited_for():
    calls = []
    assert wait_until(lambda: calls.append(1) or (len(calls) >= 3 and "ready"), "three calls", interval=0) == "ready"
    with pytest.raises(AssertionError, match=r"waited 0 s for the moon: it did not happen"):
        wait_until(lambda: False, "the moon", timeout=0.01, interval=0)


def test_wait_until_stops_as_soon_as_the_process_it_watches_has_exited():
    proc = subprocess.Popen(
        [sys.executable, "-c", "print('bye'); raise SystemExit(3)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(AssertionError, match=r"for a file, but the process exited with 3 first:\nbye"):
        wait_until(lambda: False, "a file", alive=proc)


def test_finish_kills_a_process_that_outlasts_its_timeout_and_says_which():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(AssertionError, match=r"the sleeper did not end within 1 s; killed it"):
        finish(proc, "the sleeper", timeout=1)
    assert proc.returncode is not None
    done = finish(
        subprocess.Popen([sys.executable, "-c", "print(2)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "two",
    )
    assert (done.returncode, done.stdout) == (0, "2\n")


def test_the_rendezvous_holds_a_run_until_the_other_section_starts_and_fails_when_it_never_does(tmp_path, monkeypatch):
    from omegaconf import OmegaConf
    from rendezvous import Meet

    monkeypatch.setenv("MEET_DIR", str(tmp_path))
    meet = Meet(waits="schedule_sweep", patience_s=0.2, **{"for": "wd_sweep"})
    with pytest.raises(RuntimeError, match="a schedule_sweep run waited 0 s for a wd_sweep run to start"):
        meet.on_job_start(OmegaConf.create({"experiment_name": "schedule_sweep"}))  # one section after the other
    assert not list(tmp_path.glob("*.met")) and len(list(tmp_path.glob("schedule_sweep.*.gave-up"))) == 1
    meet.on_job_start(OmegaConf.create({"experiment_name": "wd_sweep"}))  # does not wait
    meet.on_job_start(OmegaConf.create({"experiment_name": "schedule_sweep"}))
    assert len(list(tmp_path.glob("schedule_sweep.*.met"))) == 1
    # A second job in the same worker process (joblib's workers run several jobs each) has a mark of its own.
    meet.on_job_start(OmegaConf.create({"experiment_name": "schedule_sweep"}))
    assert len(list(tmp_path.glob("schedule_sweep.*.met"))) == 2
