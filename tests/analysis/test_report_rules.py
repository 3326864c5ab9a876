"""The report's rules per kind of statement: a cell of one run promises no standard deviation, a tie
is called a tie, a figure appears only where its experiment ran, legends show what is drawn and
never cover a curve, and every accuracy metric ranks against the binomial noise of its split."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
from analysis_synth import make_config, make_history, read_csv_dicts, write_run, write_study

import analysis
from analysis import grid, noise, paper, sweep_figures
from analysis.__main__ import main
from analysis.read.sweep import select
from analysis.render import curves


def _write(root, configs, accs=None, n_epochs=None):
    """One run folder per config; `accs`: the final val_acc of each (else the synthetic one)."""
    rng = np.random.default_rng(5)
    for i, cfg in enumerate(configs):
        rows = make_history(cfg, rng, n_epochs)
        if accs is not None:
            rows[-1][5] = accs[i]
        write_run(root / f"run{i}", cfg, rows)
    return root


def _selection(root, metric="val_acc", pivot=None):
    configs: list[dict] = []
    runs, hist = analysis.collect([root], configs=configs)
    return select(runs, hist, configs, metric=metric, pivot=pivot)


def _ests(rows):
    """rows: (setting, val_acc, val_loss)."""
    runs = pd.DataFrame(
        [(s, "completed", a, loss, 1.0) for s, a, loss in rows],
        columns=["setting", "status", "val_acc", "val_loss", "train_loss"],
    )
    return noise.estimates(runs, "val_acc")


def test_a_tie_as_shown_is_called_a_tie_not_a_lead():
    ests = _ests([("wd 1e-4", 0.9975, 0.09), ("wd 5e-4", 0.9975, 0.11), ("wd 1e-3", 0.90, 0.3)])
    text = noise.ranking_sentence(ests, "val_acc", {"val": 400})
    assert text.startswith("Validation accuracy: a tie between wd 1e-4 and wd 5e-4 (99.75% each), then wd 1e-3")
    assert "highest for" not in text and "(0.00 points)" not in text
    assert "The lead over wd 1e-3 (9.75 points)" in text
    # equal at the shown precision (2 decimals of a %) is a tie too; a visible difference is not
    assert noise.tied(*_ests([("a", 0.45001, 1.0), ("b", 0.44999, 1.1)]), "val_acc")
    assert not noise.tied(*_ests([("a", 0.4501, 1.0), ("b", 0.4500, 1.1)]), "val_acc")
    later = noise.ranking_sentence(_ests([("a", 0.5, 1), ("b", 0.4, 1), ("c", 0.4, 1)]), "val_acc", None)
    assert "highest for a (50.00%), then b and c (40.00% each)." in later


def test_a_ranking_table_calls_a_tie_for_best_a_tie_at_both_ends(tmp_path):
    def verdicts(name, accs):
        root = _write(tmp_path / name, [make_config(lr=v) for v in (0.1, 0.05, 0.01)], accs=accs)
        sel = _selection(root)
        return [r[-1] for r in grid.ranking_cells(grid.ranking(sel, {"val": 10000}), sel)[1]]

    tie = verdicts("tie", [0.5, 0.5, 0.3])
    assert tie[:2] == ["tied for best", "tied for best"] and tie[2].startswith("beyond noise (")
    assert verdicts("lead", [0.5, 0.4999, 0.3])[:2] == [
        "best",
        "within noise (<0.1 SE, binomial, 10000 validation images)",
    ]


def test_a_ranking_without_measurable_noise_says_so_never_inf_se(tmp_path):
    """Each setting's two seeds gave one value (fake data, a network that learns nothing yet): a spread of 0."""
    accs = {0.1: 0.5, 0.01: 0.4, 0.05: 0.0, 0.001: 0.0}
    cfgs = [make_config(lr=lr, seed=seed) for lr in accs for seed in (0, 1)]
    root = _write(tmp_path / "s" / "sec", cfgs, accs=[accs[c["optim"]["lr"]] for c in cfgs])
    assert main([str(root.parent), "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    rows = read_csv_dicts(tmp_path / "o" / "tables" / "ranking_val_acc.csv")
    assert [r["optim.lr"] for r in rows[:2]] == ["0.1", "0.01"] and {r["optim.lr"] for r in rows[2:]} == {
        "0.05",
        "0.001",
    }
    assert all(r["se"] == "0.0" and r["beyond_noise"] == "" for r in rows[1:])  # untested: neither within nor beyond
    md = (tmp_path / "o" / "tables" / "ranking_val_acc.md").read_text()
    no_noise = "| untested: no measurable noise (standard error 0, spread over 2 seeds each) |"
    assert md.count(no_noise) == 3 and "inf" not in md and "beyond" not in md.split("\n\n")[1]


def test_the_schedule_section_never_calls_an_untested_lead_clear(tmp_path):
    """constant at 100% and cosine at 0%, one run each: a binomial error of 0 tests nothing."""
    root = write_study(tmp_path / "s")
    for name, acc in (("schedule=constant", "1.0"), ("schedule=cosine", "0.0")):
        path = root / "schedule_sweep" / name / "history.csv"
        rows = list(csv.reader(path.open()))
        rows[-1][5] = acc
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    md = paper.build(root, compile=False).report_md.read_text()
    assert "although constant reached a higher validation accuracy here (untested against noise)." in md
    assert "clearly higher" not in md


def test_ranking_by_best_val_acc_applies_the_binomial_test(tmp_path):
    root = _write(tmp_path / "s", [make_config(lr=v) for v in (0.1, 0.01)])
    for metric in ("val_acc", "best_val_acc"):
        table = grid.ranking(_selection(root, metric), {"val": 10000})
        r = table.iloc[1]
        assert math.isfinite(r["se"]) and r["beyond_noise"] is not None, metric
        assert r["basis"] == "binomial, 10000 validation images", metric
    sel = _selection(root, "best_val_acc")
    _, rows = grid.ranking_cells(grid.ranking(sel, {"val": 10000}), sel)
    assert "untested" not in rows[1][-1] and "SE, binomial" in rows[1][-1]
    text = noise.ranking_sentence(
        noise.estimates(sel.runs.assign(setting=sel.runs["group"]), "best_val_acc"), "best_val_acc", {"val": 10000}
    )
    assert text.startswith("Best validation accuracy: highest for") and "untested" not in text


def test_cells_of_one_run_promise_no_standard_deviation(tmp_path):
    single = _write(tmp_path / "single" / "sec", [make_config(lr=v, wd=w) for v in (0.1, 0.01) for w in (0, 5e-4)])
    out = tmp_path / "out1"
    assert main([str(single.parent), "--out", str(out), "--pivot", "optim.lr,optim.weight_decay"]) == 0
    for name in ("ranking_val_acc", "grid_val_acc", "sec", "all"):
        md = (out / "tables" / f"{name}.md").read_text()
        assert "±" not in md and "standard deviation (ddof" not in md, name
        assert "One run per" in md, name
    sel = _selection(single.parent, pivot="optim.lr,optim.weight_decay")
    fig = sweep_figures.draw_grid(sel, grid.grid_values(sel))
    assert "±" not in fig.get_suptitle() and "one run per cell" in fig.get_suptitle()
    (curves_by,) = [f for f in sweep_figures.figures(sel, None) if f.stem == "curves_by"]
    assert "±" not in curves_by.caption[0] and "one run per group" in curves_by.caption[0]
    assert not any("±" in t.get_text() for ax in curves_by.draw().axes for t in ax.texts)
    # seeds: the same tables do say mean ± std, and of how many runs
    seeds = _write(tmp_path / "seeds" / "sec", [make_config(lr=v, seed=s) for v in (0.1, 0.01) for s in (0, 1)])
    out = tmp_path / "out2"
    assert main([str(seeds.parent), "--out", str(out)]) == 0
    md = (out / "tables" / "ranking_val_acc.md").read_text()
    assert "± " in md and "Per group: mean ± sample standard deviation (ddof=1)" in md


def test_the_beta_density_appears_only_where_mixup_ran(tmp_path):
    plain = _write(tmp_path / "plain" / "sec", [make_config(lr=v) for v in (0.1, 0.01)])
    analysis.write_all([plain], tmp_path / "out1")
    assert not (tmp_path / "out1" / "figures" / "beta_pdf.png").exists()
    mixed = _write(tmp_path / "mixed" / "sec", [make_config(mixup=0.4), make_config()])
    analysis.write_all([mixed], tmp_path / "out2")
    assert (tmp_path / "out2" / "figures" / "beta_pdf.png").is_file()
    runs, _ = analysis.collect([mixed])
    assert analysis.mixup_alphas(runs) == [0.4]  # the alpha the runs used, not also the assignment's 0.2
    assert analysis.mixup_alphas(None) == []


def test_a_one_epoch_figure_has_a_legend_of_points_not_lines(tmp_path):
    runs, hist = analysis.collect([_write(tmp_path / "s", [make_config(lr=v, epochs=1) for v in (0.5, 0.05)])])
    fig = curves.draw_section(hist, runs, "Learning rate")
    (legend,) = fig.legends
    entries = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles) if t.get_text()}
    assert set(entries) == {"lr 0.5", "lr 0.05", "training", "validation"}
    for label, h in entries.items():
        assert h.get_linestyle() == "None" and h.get_marker() == "o", label  # as drawn: a point, no line
    assert entries["validation"].get_markerfacecolor() == "white"  # hollow, as the validation points
    drawn = [l for ax in fig.axes for l in ax.get_lines() if len(l.get_xdata()) == 1]
    assert len(drawn) == 8 and {l.get_linestyle() for l in drawn} == {"None"}
    # a curve of several epochs: its legend shows lines with the markers it carries
    runs, hist = analysis.collect([_write(tmp_path / "t", [make_config(lr=v, epochs=5) for v in (0.5, 0.05)])])
    (legend,) = curves.draw_section(hist, runs, "x").legends
    styles = {t.get_text(): h.get_linestyle() for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert styles["training"] == "-" and styles["validation"] == "--"


def test_legends_never_cover_a_curve(tmp_path):
    cfgs = [make_config(schedule="cosine", wd=5e-4, mixup=0.2), make_config(schedule="cosine", wd=5e-4)]
    runs, hist = analysis.collect([_write(tmp_path / "s", cfgs)])
    fig = curves.draw_section(hist, runs, "Mixup")
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)
    for legend in fig.legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), "a legend over a panel"
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "training (λ-weighted under mixup)" in texts and "mixup α=0.2" in texts


def test_the_ranking_csv_is_unchanged_by_the_words(tmp_path):
    root = _write(tmp_path / "s" / "sec", [make_config(lr=v) for v in (0.1, 0.05)], accs=[0.5, 0.5])
    assert main([str(root.parent), "--out", str(tmp_path / "o")]) == 0
    rows = read_csv_dicts(tmp_path / "o" / "tables" / "ranking_val_acc.csv")
    assert [r["rank"] for r in rows] == ["1", "2"] and rows[1]["beyond_noise"] == "False"
    assert (tmp_path / "o" / "tables" / "ranking_val_acc.md").read_text().count("| tied for best |") == 2
