"""Hard kills: SIGKILL a training run at many instants, re-run it each time, lose and double nothing.

The harness (tests/kill_harness.py, also usable by hand) does the killing and the checking; here it
runs at CI size, and its checks are shown to catch a doubled epoch and a half-written checkpoint.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import kill_harness
import pytest
from reliability_util import HERE
from support import LONG_PATIENCE_S


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kill_harness")
    result = subprocess.run(
        [sys.executable, str(HERE / "kill_harness.py"), "--kills", "18", "--seed", "0", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=LONG_PATIENCE_S,
    )
    return workdir, result


def test_sigkill_at_random_instants_then_rerun_equals_the_uninterrupted_run(harness_run):
    workdir, result = harness_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["kills"] >= 18
    assert set(report["by_kind"]) == set(kill_harness.KINDS) and min(report["by_kind"].values()) >= 1, report


def test_the_final_check_catches_a_doubled_epoch_and_a_half_written_checkpoint(harness_run, tmp_path):
    workdir, _ = harness_run
    ref = workdir / "reference"
    doubled = tmp_path / "doubled"
    shutil.copytree(ref, doubled)
    lines = (doubled / "history.csv").read_text().splitlines(keepends=True)
    (doubled / "history.csv").write_text("".join(lines[:-1] + lines[-2:-1]))  # epoch E-1 twice, no epoch E
    with pytest.raises(AssertionError):
        kill_harness.check_completed(doubled, ref)
    half = tmp_path / "half"
    shutil.copytree(ref, half)
    data = (half / "checkpoint.pt").read_bytes()
    (half / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception):  # noqa: B017 - torch.load's error for a cut file varies by torch version
        kill_harness.check_completed(half, ref)
    with pytest.raises(zipfile.BadZipFile):
        kill_harness.check_after_kill(half, kill_harness.without_timing(kill_harness.read_history(ref / "history.csv")))
    kill_harness.check_completed(ref, ref)  # and passes an intact folder
