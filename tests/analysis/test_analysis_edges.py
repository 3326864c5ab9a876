"""analysis/: edge cases (no history at all, differing data splits, varying epochs, discovery)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from analysis_synth import make_config, make_history, read_csv_dicts, write_run

import analysis


def test_only_empty_history(tmp_path):
    write_run(tmp_path / "sec" / "job", make_config(), [], status="failed")
    runs, hist = analysis.collect([tmp_path / "sec" / "job"])
    assert len(runs) == 1 and len(hist) == 0
    assert runs.loc[0, "status"] == "failed" and runs.loc[0, "section"] == "sec"
    assert math.isnan(runs.loc[0, "val_acc"])
    written = analysis.write_all([tmp_path], tmp_path / "out")
    assert len(read_csv_dicts(tmp_path / "out" / "runs.csv")) == 1
    assert read_csv_dicts(tmp_path / "out" / "history.csv") == []
    assert not (tmp_path / "out" / "figures" / "beta_pdf.png").exists()  # no run used mixup
    assert all(p.exists() for ps in written.values() for p in ps)


def test_data_stats_disagreement_warns_and_uses_first(tmp_path):
    rng = np.random.default_rng(2)
    cfg = make_config()
    write_run(tmp_path / "a" / "job1", cfg, make_history(cfg, rng))
    write_run(tmp_path / "b" / "job2", cfg, make_history(cfg, rng))
    p = tmp_path / "b" / "job2" / "data_stats.json"
    stats = json.loads(p.read_text())
    stats["sizes"]["train"], stats["sizes"]["val"] = 45000, 5000
    p.write_text(json.dumps(stats))
    with pytest.warns(UserWarning, match="differs"):
        analysis.write_all([tmp_path], tmp_path / "out", figures=False)
    text = (tmp_path / "out" / "tables" / "data_stats.md").read_text()
    assert "| train images | 40000 |" in text


def test_epochs_named_when_they_vary_in_a_section(tmp_path):
    rng = np.random.default_rng(3)
    for ep in (4, 7):
        cfg = make_config(epochs=ep, schedule="cosine")
        write_run(tmp_path / "sec" / f"ep{ep}", cfg, make_history(cfg, rng))
    runs, hist = analysis.collect([tmp_path])
    assert sorted(runs["setting"]) == ["lr 0.05, cosine, no wd, 4 ep", "lr 0.05, cosine, no wd, 7 ep"]
    assert len(hist) == 11


def test_discovery_skips_hydra_and_dedupes(tmp_path):
    rng = np.random.default_rng(4)
    cfg = make_config()
    write_run(tmp_path / "sweep" / "job", cfg, make_history(cfg, rng))
    (tmp_path / "sweep" / ".hydra").mkdir()
    (tmp_path / "sweep" / ".hydra" / "summary.json").write_text("{}")
    found = analysis.find_run_dirs([tmp_path, tmp_path / "sweep" / "job"])
    assert found == [tmp_path / "sweep" / "job"]
    with pytest.raises(analysis.AnalysisError):
        analysis.find_run_dirs([tmp_path / "missing"])


def test_summary_preferred_over_hydra_config(tmp_path):
    rng = np.random.default_rng(5)
    cfg = make_config(lr=0.01)
    write_run(tmp_path / "s" / "j", cfg, make_history(cfg, rng))
    summary = json.loads((tmp_path / "s" / "j" / "summary.json").read_text())
    summary["config"]["optim"]["lr"] = 0.123
    (tmp_path / "s" / "j" / "summary.json").write_text(json.dumps(summary))
    runs, _ = analysis.collect([tmp_path])
    assert runs.loc[0, "lr"] == 0.123


def test_a_report_folder_is_never_read_as_a_run(study, tmp_path):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    n_runs = len(analysis.find_run_dirs([copy]))
    analysis.write_all([copy], copy / "report", figures=False)  # runs.csv + an aggregated history.csv
    assert (copy / "report" / "history.csv").is_file()
    assert len(analysis.find_run_dirs([copy])) == n_runs
    # An aggregated history.csv alone (no runs.csv beside it) is recognised by its columns.
    (copy / "report" / "runs.csv").unlink()
    assert len(analysis.find_run_dirs([copy])) == n_runs
    with pytest.raises(analysis.AnalysisError, match="no run folders"):
        analysis.find_run_dirs([copy / "report"])


def test_tables_follow_the_assignments_section_order(report):
    out, _ = report
    text = (out / "tables" / "all.md").read_text()
    rows = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.startswith("| ")][1:]
    order = list(dict.fromkeys(rows))
    assert order == ["lr_sweep", "schedule_sweep", "wd_sweep", "mixup"], order  # not alphabetical
