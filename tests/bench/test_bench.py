"""The benchmark CLI: the CPU smoke run of every pipeline, its critical-path arithmetic, its errors."""

from __future__ import annotations

import json
import re

import pytest
from support import run_cli

from hw_hparams.bench import __main__ as bench
from hw_hparams.bench import report as bench_report


def test_cpu_smoke_measures_every_pipeline_and_prints_the_table(tmp_path):
    result = run_cli(["--cpu-smoke", "--out", "bench.json"], tmp_path, module="hw_hparams.bench")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| pipeline | settings | s / epoch | img / s | vs (a) | vs (c) |" in out
    labels = (
        "(a) classic",
        "(b) ours, eager",
        "(c) ours, fast (defaults)",
        "(d) 2 runs of (c) at once",
        "(e) 2 runs of (c) fused",
    )
    for label in labels:
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} |"))
        assert "FAILED" not in row and re.search(r"\| \d+\.\d{3} \| \d+ \| \d+\.\d\dx \| \d+\.\d\dx \|", row), row
    assert len(re.findall(r"- total: \d+\.\d min", out)) == 2  # side by side and fused
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = {r["pipeline"]: r for r in data["rows"]}
    assert set(rows) == set(labels) and all("error" not in r for r in rows.values())
    for r in rows.values():
        assert r["s_per_epoch"] > 0 and r["images_per_s"] > 0 and r["peak_memory_bytes"] > 0
    assert rows["(d) 2 runs of (c) at once"]["runs"] == 2 and len(rows["(d) 2 runs of (c) at once"]["epoch_times"]) == 2
    fused = rows["(e) 2 runs of (c) fused"]  # one process, two runs: its rate counts both
    assert fused["runs"] == 2 and len(fused["epoch_times"]) == 1
    assert fused["images_per_s"] == pytest.approx(
        2 * 256 / (sum(fused["epoch_times"][0]) / len(fused["epoch_times"][0])), rel=0.5
    )
    assert data["meta"]["device"] == "cpu" and set(data["critical_paths"]) == {"side by side (d)", "fused (e)"}


def test_critical_path_uses_the_epoch_time_at_the_number_of_runs_sharing_the_device():
    stages = (("lr_sweep", 15, 3), ("schedule_sweep + wd_sweep", 300, 4), ("mixup", 300, 1))
    # measured at 1, 2 and 4 runs; the 3-run stage takes the 4-run time (an upper bound)
    path = bench_report.critical_path_seconds({1: 1.0, 2: 1.5, 4: 2.5}, 60.0, stages)
    assert [s["runs_at_once"] for s in path["stages"]] == [3, 4, 1]
    assert path["total_s"] == pytest.approx(15 * 2.5 + 300 * 2.5 + 300 * 1.0 + 3 * 60.0)
    # nothing measured at >= 3 runs: the largest k scaled, as if the device were saturated
    path = bench_report.critical_path_seconds({1: 1.0, 2: 1.6}, 0.0, stages)
    assert path["total_s"] == pytest.approx(15 * 1.6 * 3 / 2 + 300 * 1.6 * 4 / 2 + 300 * 1.0)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--ks", "0"], "--ks"),
        (["--ks", "x"], "--ks"),
        (["--pipelines", "a,f"], "--pipelines"),
        (["--train", "10", "--batch-size", "64"], "--train"),
    ],
)
def test_bad_arguments_fail_in_one_line(args, key, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {key}")
