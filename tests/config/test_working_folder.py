"""Relative paths mean the folder a command ran in, also when Hydra runs the job in its run folder
(`hydra.job.chdir=true`, common in older Hydra tutorials) and when written as `${hydra:runtime.cwd}/...`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from support import TINY_RUN, compose_train, run_cli

from hw_hparams.config.schema import as_dict, path_keys, paths_from
from hw_hparams.data.fake import write_fake_cifar100

RELATIVE_DATA = ["data.root=fd", "data.download=false", "data.verify_checksums=false", "data.val_size=100"]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_run_with_chdir_reads_its_relative_data_root_where_the_command_ran(tmp_path):
    write_fake_cifar100(tmp_path / "fd", train=300, test=20, seed=0)
    args = [*TINY_RUN, *RELATIVE_DATA, "epochs=1", "trainer.device=cpu"]
    result = run_cli([*args, "hydra.job.chdir=true"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "run").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["data"]["root"] == str(tmp_path / "fd")
    assert json.loads((run / "data_stats.json").read_text())["sizes"] == {"train": 200, "val": 100, "test": 20}
    assert f" - outputs/run/{run.name}: completed after 1/1 epochs" in result.stdout  # named from where it ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fd", "outputs"]  # nothing written beside the run folders
    files = _digest(run)
    # the same run, however the data's place is spelled: nothing to train, nothing rewritten
    for spelling in (RELATIVE_DATA[0], "data.root=${hydra:runtime.cwd}/fd"):
        again = run_cli([*args, spelling], tmp_path)
        assert again.returncode == 0 and "nothing to train" in again.stdout, (spelling, again.stderr[-3000:])
    assert list((tmp_path / "outputs" / "run").iterdir()) == [run] and _digest(run) == files


def test_paths_from_makes_only_relative_path_keys_absolute():
    assert path_keys() == ("data.root", "logger.dir")
    folder = os.path.join(os.sep, "launched", "here")
    for given, meant in (
        ("fd", os.path.join(folder, "fd")),
        ("../d/x", os.path.join(folder, "../d/x")),
        ("/abs/fd", "/abs/fd"),
    ):
        cfg = compose_train([*TINY_RUN, f"data.root={given}", "optim.lr=0.5"])
        moved = paths_from(cfg, folder)
        assert moved.data.root == meant and cfg.data.root == given  # a copy; the given config is unchanged
        assert moved.logger.dir is None  # unset stays unset
        assert {**as_dict(moved), "data": None} == {**as_dict(cfg), "data": None}
        assert {k: v for k, v in as_dict(moved)["data"].items() if k != "root"} == {
            k: v for k, v in as_dict(cfg)["data"].items() if k != "root"
        }
