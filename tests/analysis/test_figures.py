"""Figures read through matplotlib's objects: titles in words, legends naming only what differs,
markers on short curves, accuracy in %, the λ-weighted label, the demo mark, column-width sizes."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from analysis_synth import make_config, make_history, read_csv_dicts, write_run

import analysis
from analysis import sweep_figures
from analysis.read.sweep import select
from analysis.render import curves, figures

COLUMN_IN = 3.4  # widest figure that prints at its own size in one AAAI column (3.31 in)


def _runs(tmp_path, configs, n_epochs=None):
    rng = np.random.default_rng(7)
    for i, cfg in enumerate(configs):
        write_run(tmp_path / "sec" / f"run{i}", cfg, make_history(cfg, rng, n_epochs))
    return analysis.collect([tmp_path])


def _legend_texts(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _key(fig) -> tuple[list[str], list[str]]:
    """(settings, splits): the labels of a curves figure's one legend, coloured entries and black ones."""
    (legend,) = fig.legends
    pairs = [(t.get_text(), h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles) if t.get_text()]
    return sorted(t for t, c in pairs if c != "k"), sorted(t for t, c in pairs if c == "k")


def test_one_epoch_runs_are_visible_points_and_legends_name_only_the_lr(tmp_path):
    runs, hist = _runs(tmp_path, [make_config(lr=v, epochs=1) for v in (0.5, 0.05, 0.01)])
    fig = curves.draw_section(hist, runs, "Learning rate")
    top, bottom = fig.axes
    assert top.get_title() == "Learning rate: loss per epoch"
    assert bottom.get_title() == "Learning rate: accuracy per epoch"
    settings, splits = _key(fig)
    assert settings == ["lr 0.01", "lr 0.05", "lr 0.5"]  # nothing they share
    assert splits == ["training", "validation"]  # the styles, said once
    data_lines = [l for l in top.get_lines() + bottom.get_lines() if len(l.get_xdata()) == 1]
    assert len(data_lines) == 12  # 3 runs x 2 splits x 2 panels, one point each
    assert all(l.get_marker() not in (None, "", "None") for l in data_lines)
    # accuracy in %: the plotted validation points are 100 x the history's fractions
    want = sorted(
        100 * float(r["val_acc"])
        for p in sorted((tmp_path / "sec").iterdir())
        for r in read_csv_dicts(p / "history.csv")
    )
    got = sorted(
        float(l.get_ydata()[0])
        for l in bottom.get_lines()
        if l.get_markerfacecolor() == "white" and len(l.get_xdata()) == 1  # validation: hollow
    )
    np.testing.assert_allclose(got, want)
    assert {l.get_markerfacecolor() == "white" for l in bottom.get_lines() if len(l.get_xdata()) == 1} == {True, False}
    assert bottom.get_ylabel() == "accuracy (%)"
    assert fig.get_size_inches()[0] <= COLUMN_IN


def test_long_curves_have_no_markers(tmp_path):
    runs, hist = _runs(tmp_path, [make_config(schedule=s, epochs=30) for s in ("constant", "cosine")])
    fig = curves.draw_section(hist, runs, "Learning-rate schedule")
    lines = [l for l in fig.axes[0].get_lines() if len(l.get_xdata()) == 30]
    assert len(lines) == 4 and all(l.get_marker() in (None, "", "None") for l in lines)
    assert _key(fig)[0] == ["constant", "cosine"]


def test_mixup_training_accuracy_is_labelled_lambda_weighted(tmp_path):
    base = make_config(schedule="cosine", wd=5e-4)
    mix = make_config(schedule="cosine", wd=5e-4, mixup=0.2)
    runs, hist = _runs(tmp_path, [base, mix])
    fig = curves.draw_section(hist, runs, "Mixup")
    settings, style = _key(fig)
    assert settings == ["mixup α=0.2", "no mixup"]
    assert style == ["training (λ-weighted under mixup)", "validation"]
    no_mix, _ = _runs(tmp_path / "plain", [base, make_config(schedule="cosine", wd=1e-4)])
    # without mixup the training line is plain "training"
    plain = curves.draw_section(analysis.collect([tmp_path / "plain"])[1], no_mix, "Weight decay")
    assert _key(plain)[1] == ["training", "validation"]


def test_seeds_are_named_in_the_legend(tmp_path):
    cfgs = [make_config(lr=0.05, seed=s) for s in (0, 1, 2)] + [make_config(lr=0.01)]
    runs, hist = _runs(tmp_path, cfgs)
    assert _key(curves.draw_section(hist, runs, "x"))[0] == ["lr 0.01", "lr 0.05 (3 seeds)"]


def test_demo_mark_only_on_demo_figures(tmp_path):
    marked, plain = figures.draw_beta_pdf([0.2]), figures.draw_beta_pdf([0.2])
    figures.save(marked, tmp_path / "a", demo=True)
    figures.save(plain, tmp_path / "b")
    assert [t.get_text() for t in marked.texts] == ["demo: generated data"]
    assert plain.texts == []
    assert (tmp_path / "a.png").is_file() and (tmp_path / "a.pdf").is_file()


def test_beta_density_says_where_its_axis_cuts_the_peaks():
    fig = figures.draw_beta_pdf([0.2])
    ax = fig.axes[0]
    assert ax.get_title() == "Mixup: density of λ ~ Beta(0.2, 0.2)"
    assert ax.get_ylim()[1] == 4.0 and ax.get_xlabel() == "mixing weight λ"
    y = ax.get_lines()[0].get_ydata()
    assert y.max() > 4.0  # the curve itself goes past the cut, which the note below states
    assert any("cut at 4" in t.get_text() and "∞" in t.get_text() for t in ax.texts)


def test_class_proportions_are_compact_and_name_min_and_max():
    props = np.full(100, 0.01)
    props[3], props[42] = 0.008, 0.012
    names = [f"c{i}" for i in range(100)]
    fig = figures.draw_class_proportions({"class_proportions": props.tolist(), "class_names": names})
    ax = fig.axes[0]
    assert ax.get_title() == "Class proportions of the training split"
    assert list(ax.get_xticks()) == []  # no 100 unreadable names
    w, h = fig.get_size_inches()
    assert w <= COLUMN_IN and h <= 2.0
    text = " ".join(t.get_text() for t in ax.texts)
    assert "min 0.80% (c3)" in text and "max 1.20% (c42)" in text
    heights = sorted(p.get_height() for p in ax.patches)
    np.testing.assert_allclose(heights, sorted(100 * props))


def test_lr_schedule_legend_names_the_schedules(tmp_path):
    runs, hist = _runs(tmp_path, [make_config(schedule=s, epochs=8) for s in ("constant", "cosine")])
    fig = figures.draw_lr_schedules(hist, runs)
    ax = fig.axes[0]
    assert ax.get_title() == "Learning-rate schedule: rate used in each epoch"
    assert sorted(_legend_texts(ax)) == ["constant", "cosine"]
    cosine = next(l for l in ax.get_lines() if l.get_label() == "cosine")
    np.testing.assert_allclose(cosine.get_ydata(), [0.025 * (1 + np.cos(np.pi * e / 8)) for e in range(8)])


@pytest.mark.parametrize("draw", ["section", "lr", "beta", "classes"])
def test_every_figure_fits_a_column(draw, tmp_path):
    runs, hist = _runs(tmp_path, [make_config(schedule="cosine")])
    fig = {
        "section": lambda: curves.draw_section(hist, runs, "x"),
        "lr": lambda: figures.draw_lr_schedules(hist, runs),
        "beta": lambda: figures.draw_beta_pdf([0.2]),
        "classes": lambda: figures.draw_class_proportions({"class_proportions": [0.5, 0.5]}),
    }[draw]()
    assert fig.get_size_inches()[0] <= COLUMN_IN
    sizes = [t.get_fontsize() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    assert min(sizes) >= 6.5  # readable at print size


def _sweep_figures(tmp_path, accs=None, pivot=None):
    """The sweep's figures of 32 runs varying 5 keys, two of them with long values; `accs`: every run's final
    val_acc (else the synthetic ones). Returns {stem: figure}."""
    rng = np.random.default_rng(3)
    values = itertools.product((True, False), (None, 0.2), (0.0, 5e-4), ("constant", LONG), ("mobilenetv2", WIDE))
    for i, (flip, mixup, wd, schedule, model) in enumerate(values):
        cfg = make_config(crop_flip=flip, mixup=mixup, wd=wd, schedule=schedule, model=model, epochs=3)
        rows = make_history(cfg, rng)
        rows[-1][5] = rows[-1][5] if accs is None else accs
        write_run(tmp_path / "sweep" / f"run{i}", cfg, rows)
    configs: list[dict] = []
    runs, hist = analysis.collect([tmp_path / "sweep"], configs=configs)
    sel = select(runs, hist, configs, pivot=pivot)
    assert len(sel.by) == 5
    return {f.stem: f.draw() for f in sweep_figures.figures(sel, {"val": 10000})}


LONG, WIDE = "COSINE_WARM_RESTARTS_" + "M" * 30, "WideResNet_28_10_with_dropout"


def _outside(fig) -> list[str]:
    """The texts of `fig` (legends, titles, labels, ticks) that reach past its edges: clipped when saved."""
    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    texts = [t for leg in fig.legends for t in (*leg.get_texts(), leg.get_title())]
    texts += [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [
        t
        for ax in fig.axes
        for t in ax.get_xticklabels()
        if min(ax.get_xlim()) <= t.get_position()[0] <= max(ax.get_xlim())
    ]
    out = []
    for t in texts:
        b = t.get_window_extent(renderer)
        if (
            t.get_visible()
            and t.get_text()
            and (b.x0 < box.x0 - 0.5 or b.x1 > box.x1 + 0.5 or b.y0 < box.y0 - 0.5 or b.y1 > box.y1 + 0.5)
        ):
            out.append(t.get_text())
    return out


def test_curves_by_five_keys_and_long_values_fit_their_column(tmp_path):
    figs = _sweep_figures(tmp_path)
    curves = figs["curves_by"]
    assert curves.get_size_inches()[0] <= COLUMN_IN and not _outside(curves)
    (legend,) = curves.legends
    assert "(the 5 best of 32 groups in colour)" in " ".join(legend.get_title().get_text().split())
    assert any(LONG[-10:] in t.get_text() for t in legend.get_texts())  # a long value is wrapped, not cut off
    parallel = figs["parallel_val_acc"]
    assert not _outside(parallel)
    ticks = [t.get_window_extent(parallel.canvas.get_renderer()) for t in parallel.axes[0].get_xticklabels()]
    assert all(a.x1 + 2 < b.x0 for a, b in itertools.pairwise(ticks)), "axis names touch"
    plt.close("all")


def test_curves_by_never_calls_a_tied_group_left_grey_worse(tmp_path):
    """All 32 settings reach the same accuracy: the 5 in colour are not 'the 5 best'."""
    title = " ".join(_sweep_figures(tmp_path, accs=0.01)["curves_by"].legends[0].get_title().get_text().split())
    assert "(in colour: the first 5 of 32 groups; 27 others tie with the 5th)" in title and "best" not in title
    plt.close("all")


def test_a_grid_of_more_panels_than_drawn_says_so_and_its_panel_titles_fit(tmp_path):
    fig = _sweep_figures(tmp_path, pivot="augmentation.crop_flip,optim.weight_decay")["grid_val_acc"]
    assert "the first 6 of 8 panels (all in tables/grid_val_acc)" in " ".join(fig.get_suptitle().split())
    assert not _outside(fig)
    renderer = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and all(a.x1 + 2 < b.x0 for a, b in itertools.pairwise(titles)), "titles touch"
    plt.close("all")
