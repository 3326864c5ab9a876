"""analysis.collect on 1,000 runs x 300 epochs finishes in seconds, and so does the analysis by keys
(--by, --pivot: sweep.select, the ranking and grid tables, the sweep's figures)."""

from __future__ import annotations

import json
import time

import analysis_synth
import numpy as np
import pytest
from analysis_synth import HIST_HEADER, make_config

import analysis

N_RUNS, N_EPOCHS = 1000, 300
# CPU seconds of this process (not wall-clock time, which other work on the machine stretches at will);
# generous for slow CI machines; typically a few seconds.
LIMIT_S = 15.0


@pytest.fixture(scope="module")
def big_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("big") / "study"
    rng = np.random.default_rng(1)
    ep = np.arange(1, N_EPOCHS + 1)
    header = ",".join(HIST_HEADER) + "\n"
    for i in range(N_RUNS):
        section = f"sweep_{i % 4}"
        cfg = make_config(
            lr=[0.5, 0.05, 0.01][i % 3], seed=i // 12, epochs=N_EPOCHS, schedule=["constant", "cosine"][i % 2]
        )
        d = root / section / f"job_{i:04d}"
        d.mkdir(parents=True)
        data = np.column_stack([ep, np.full(N_EPOCHS, 0.05), rng.random((N_EPOCHS, 5))])
        body = "\n".join(
            ",".join(map(repr, row[1:])) and f"{int(row[0])}," + ",".join(map(repr, row[1:])) for row in data.tolist()
        )
        (d / "history.csv").write_text(header + body + "\n")
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "epochs": N_EPOCHS,
                    "epochs_completed": N_EPOCHS,
                    "final": None,
                    "best_val_acc": 0.5,
                    "best_epoch": 10,
                    "test": None,
                    "wall_time_s": 1.0,
                    "images_per_s": 1.0,
                    "device": "cpu",
                    "config": cfg,
                    "versions": {},
                    "message": None,
                }
            )
        )
    return root


@pytest.mark.timing
def test_collect_1000_runs_is_fast(big_study):
    t0, cpu0 = time.perf_counter(), time.process_time()
    runs, hist = analysis.collect([big_study])
    elapsed = time.process_time() - cpu0  # collect reads files in this process alone (no workers)
    print(
        f"\ncollect: {N_RUNS} runs x {N_EPOCHS} epochs in {elapsed:.2f} CPU s "
        f"({time.perf_counter() - t0:.2f} s wall-clock)"
    )
    assert len(runs) == N_RUNS
    assert len(hist) == N_RUNS * N_EPOCHS
    assert elapsed < LIMIT_S


@pytest.mark.timing
def test_by_and_pivot_on_1000_runs_are_fast(big_study, tmp_path):
    from analysis import grid, sweep_figures
    from analysis.read import sweep

    configs: list[dict] = []
    runs, hist = analysis.collect([big_study], configs=configs)
    t0 = time.perf_counter()
    sel = sweep.select(runs, hist, configs, by="optim.lr,schedule.name", pivot="optim.lr,schedule.name")
    blocks, frames = grid.tables(sel, {"val": 10000})
    tables = grid.write_csvs(frames, tmp_path)
    t1 = time.perf_counter()
    figures = sweep_figures.write_figures(sel, tmp_path, {"val": 10000})
    t2 = time.perf_counter()
    print(
        f"\n--by/--pivot on {N_RUNS} runs x {N_EPOCHS} epochs: select + tables {t1 - t0:.2f} s, figures {t2 - t1:.2f} s"
    )
    assert len(sel.runs) == N_RUNS and len(blocks) == 2 and len(tables) == 2 and len(figures) == 4
    cells = analysis_synth.read_csv_dicts(tmp_path / "tables" / "grid_val_acc.csv")
    assert sorted(int(c["n"]) for c in cells) == sorted(runs.groupby(["lr", "schedule"]).size().tolist())
    assert t1 - t0 < LIMIT_S and t2 - t1 < LIMIT_S
