"""`python -m hw_hparams.bench.search` at a tiny size: both searches run and the table's epochs, pruned trials
and best values are those of their sweep folders (read with json and yaml, not through the bench)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from support import run_cli

SMALL = ["--train", "200", "--val", "50"]  # generated images (of which validation): an eighth of the default


@pytest.mark.optuna
def test_a_small_search_benchmark_prints_what_its_sweep_folders_hold(tmp_path):
    args = ["--out", "bench", "--trials", "3", "--epochs", "2", "--noise-seeds", "1", "--startup", "1", *SMALL]
    result = run_cli(args, tmp_path, module="hw_hparams.bench.search")
    assert result.returncode == 0, result.stderr[-3000:]
    table, out = result.stdout, tmp_path / "bench"
    for name in ("unpruned", "median"):
        summaries = [json.loads(p.read_text()) for p in (out / name).glob("*/summary.json")]
        best = yaml.safe_load((out / name / "optimization_results.yaml").read_text())["best_value"]
        epochs = sum(s["epochs_completed"] for s in summaries)
        pruned = sum(s["status"] == "pruned" for s in summaries)
        row = re.search(rf"^\| {name} \| (\d+) \(\d+%\) \| \d+ \| (\d+) \| ([\d.]+) \|$", table, re.M)
        assert row and (int(row[1]), int(row[2]), float(row[3])) == (epochs, pruned, round(best, 4)), table
    assert len(list((out / "noise").glob("*/history.csv"))) == 1
    assert re.search(r"the median pruner's best is behind by -?[\d.]+: (within|beyond) noise", table), table
