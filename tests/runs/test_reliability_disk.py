"""A full disk or an unwritable output folder: a clear one-line error, the last checkpoint intact,
and the run resumes once there is room again."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
from fault_inject import run_cli
from reliability_util import TINY_RUN, assert_one_error_line, cfg, fake_data_overrides, one_thread, rows, without_timing  # noqa: F401 - autouse

import hw_hparams.train.lifecycle as train_module

EPOCHS = 4


@pytest.fixture(scope="module")
def straight(tmp_path_factory, fake_root):
    overrides = [*fake_data_overrides(fake_root), *TINY_RUN, f"epochs={EPOCHS}"]
    run_dir = tmp_path_factory.mktemp("straight")
    train_module.run(cfg(overrides), run_dir)
    return overrides, without_timing(rows(run_dir / "history.csv"))


def _disk_full(monkeypatch, run_dir, after: int, only: str = ""):
    """os.fsync fails with ENOSPC from the `after`+1-th write of a file directly in `run_dir` whose name
    contains `only`. Other files are neither counted nor failed: a compiler cache written by a thread an
    earlier test left running, or the command's record in `run_dir/.hydra/` (written only under Hydra)."""
    real_fsync, writes = os.fsync, []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.dirname(path) == str(run_dir) and only in os.path.basename(path):
            writes.append(path)
            if len(writes) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _epoch(path) -> int:
    return torch.load(path, weights_only=False)["epoch"]


@pytest.mark.parametrize("only", [".checkpoint.pt.", ""], ids=["checkpoint write fails", "every write fails"])
def test_a_full_disk_keeps_both_checkpoints_and_the_run_resumes(tmp_path, straight, monkeypatch, only):
    overrides, expected = straight
    _disk_full(
        monkeypatch, tmp_path, after=2 if only else 2 + 3 * 2, only=only
    )  # fails in epoch 3 (3 writes per epoch)
    with pytest.raises(OSError) as info:
        train_module.run(cfg(overrides), tmp_path)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert _epoch(tmp_path / "checkpoint.pt") == 2 and _epoch(tmp_path / "checkpoint.prev.pt") == 1  # both intact
    assert len(rows(tmp_path / "history.csv")) == 2
    summary = json.loads((tmp_path / "summary.json").read_text())  # whole, whichever write failed
    assert summary["epochs_completed"] == 2
    if only:  # the summary could still be written: it says why
        assert summary["status"] == "failed" and "No space left on device" in summary["message"]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name or p.name == ".run.lock"]
    train_module.run(cfg(overrides), tmp_path)  # room again: it resumes after epoch 2
    assert without_timing(rows(tmp_path / "history.csv")) == expected


def test_the_cli_says_disk_full_in_one_line_and_an_unwritable_output_folder_before_starting(tmp_path, straight):
    overrides, _ = straight
    run_dir = tmp_path / "run"
    full = run_cli([*overrides, f"hydra.run.dir={run_dir}"], tmp_path, fault="write:2:enospc:checkpoint")
    assert full.returncode == 1 and "Traceback" not in full.stdout + full.stderr
    said = [l for l in full.stdout.splitlines() if "failed" in l]
    assert len(said) == 1 and "No space left on device" in said[0] and "re-run the same command to resume" in said[0]
    assert _epoch(run_dir / "checkpoint.pt") == 1

    (tmp_path / "a_file").write_text("")
    blocked = run_cli([*overrides, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"], tmp_path)
    assert blocked.returncode == 2
    assert_one_error_line(blocked, "cannot create the run folder", "a_file is not a writable folder", "hydra.run.dir=")
