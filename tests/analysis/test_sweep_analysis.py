"""`python -m analysis` by the keys a sweep varied: a 2 x 2 x 2 grid (lr x wd x seed) of synthetic run
folders. Expected values are computed here from the runs' history.csv and config.yaml (csv, yaml,
statistics), never through analysis."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from analysis_synth import make_config, make_history, read_csv_dicts, write_run

from analysis.__main__ import main

LRS, WDS, SEEDS = (0.1, 0.01), (0.0, 5e-4), (0, 1)
#: Final validation accuracy per (lr, wd, seed); (0.01, 5e-4, seed 1) diverges.
FINAL = {
    (0.1, 0.0, 0): 0.60,
    (0.1, 0.0, 1): 0.62,
    (0.1, 5e-4, 0): 0.58,
    (0.1, 5e-4, 1): 0.62,
    (0.01, 0.0, 0): 0.40,
    (0.01, 0.0, 1): 0.41,
    (0.01, 5e-4, 0): 0.55,
    (0.01, 5e-4, 1): None,
}
VAL_IMAGES = 10000  # analysis_synth's data_stats.json


def _write_grid(root: Path, batch_sizes: dict | None = None) -> Path:
    rng = np.random.default_rng(3)
    for (lr, wd, seed), acc in FINAL.items():
        bs = (batch_sizes or {}).get(seed, 128)
        cfg = make_config(lr=lr, wd=wd, seed=seed, epochs=4, batch_size=bs)
        if acc is None:
            write_run(
                root / f"lr={lr},wd={wd},seed={seed}", cfg, make_history(cfg, rng, diverge_at=3), status="diverged"
            )
            continue
        rows = make_history(cfg, rng)
        rows[-1][5] = acc  # val_acc of the last epoch
        write_run(root / f"lr={lr},wd={wd},seed={seed}", cfg, rows)
    return root


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    return _write_grid(tmp_path_factory.mktemp("sweep") / "adhoc")


def _flat(node: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def reference(root: Path) -> list[dict]:
    """Per run: its flat config, status and final val_acc, read with yaml/json/csv."""
    import json

    out = []
    for d in sorted(p.parent for p in root.glob("*/history.csv")):
        flat = _flat(yaml.safe_load((d / ".hydra" / "config.yaml").read_text()))
        with open(d / "history.csv", newline="") as f:
            last = list(csv.DictReader(f))[-1]
        out.append(
            {
                "cfg": flat,
                "status": json.loads((d / "summary.json").read_text())["status"],
                "val_acc": float(last["val_acc"]),
                "name": d.name,
            }
        )
    return out


def groups(ref: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[float]]:
    """Completed runs' final val_acc by the values of `keys`."""
    out: dict[tuple, list[float]] = {}
    for r in ref:
        key = tuple(r["cfg"][k] for k in keys)
        out.setdefault(key, [])
        if r["status"] == "completed" and math.isfinite(r["val_acc"]):
            out[key].append(r["val_acc"])
    return out


def run(args: list[str]) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def pivot(grid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("res") / "res"
    assert run([grid, "--out", out, "--pivot", "optim.lr,optim.weight_decay"]) == 0
    return out


def test_pivot_cells_are_means_and_stds_of_the_runs(grid, pivot):
    ref = groups(reference(grid), ("optim.lr", "optim.weight_decay"))
    cells = {
        (float(r["optim.lr"]), float(r["optim.weight_decay"])): r
        for r in read_csv_dicts(pivot / "tables" / "grid_val_acc.csv")
    }
    assert set(cells) == set(ref)
    md = (pivot / "tables" / "grid_val_acc.md").read_text()
    for key, vals in ref.items():
        c = cells[key]
        assert int(c["n"]) == len(vals)
        assert math.isclose(float(c["mean"]), statistics.mean(vals), rel_tol=1e-12)
        if len(vals) > 1:
            sd = statistics.stdev(vals)
            assert math.isclose(float(c["std"]), sd, rel_tol=1e-9)
            assert f"{100 * statistics.mean(vals):.2f} ± {100 * sd:.2f} (n={len(vals)})" in md
        else:
            assert c["std"] == ""
            assert f"{100 * vals[0]:.2f}, 1 diverged" in md
    tex = (pivot / "tables" / "grid_val_acc.tex").read_text()
    assert r"\toprule" in tex and r"$\pm$" in tex
    for stem in ("grid_val_acc", "curves_by"):
        assert (pivot / "figures" / f"{stem}.png").stat().st_size > 0


def _se(a: list[float], b: list[float]) -> tuple[float, str]:
    if len(a) > 1 and len(b) > 1:
        return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b)), "seeds"
    pa, pb = statistics.mean(a), statistics.mean(b)
    return math.sqrt(pa * (1 - pa) / VAL_IMAGES + pb * (1 - pb) / VAL_IMAGES), "binomial"


def test_ranking_order_and_noise_flags(grid, pivot):
    ref = groups(reference(grid), ("optim.lr", "optim.weight_decay"))
    order = sorted(ref, key=lambda k: -statistics.mean(ref[k]))
    rows = read_csv_dicts(pivot / "tables" / "ranking_val_acc.csv")
    assert [(float(r["optim.lr"]), float(r["optim.weight_decay"])) for r in rows] == order
    best = ref[order[0]]
    flags = []
    for r, key in zip(rows[1:], order[1:]):
        se, basis = _se(best, ref[key])
        diff = statistics.mean(best) - statistics.mean(ref[key])
        assert math.isclose(float(r["behind"]), diff, rel_tol=1e-9) and math.isclose(float(r["se"]), se, rel_tol=1e-9)
        assert r["beyond_noise"] == str(abs(diff) > 2 * se)
        assert (basis == "binomial") == ("binomial" in r["basis"])
        flags.append(r["beyond_noise"])
    assert flags == ["False", "True", "True"]  # within noise (seeds), beyond (binomial), beyond (seeds)
    md = (pivot / "tables" / "ranking_val_acc.md").read_text()
    assert "| best |" in md and md.count("beyond noise (") == 2 and md.count("within noise (") == 1


def test_by_groups_and_where_selects(grid, tmp_path):
    out = tmp_path / "by"
    assert run([grid, "--out", out, "--by", "optim.lr"]) == 0
    ref = groups(reference(grid), ("optim.lr",))
    rows = read_csv_dicts(out / "tables" / "ranking_val_acc.csv")
    got = {float(r["optim.lr"]): (int(r["n"]), float(r["mean"])) for r in rows}
    assert set(got) == {k[0] for k in ref}
    for (lr,), vals in ref.items():
        assert got[lr][0] == len(vals) and math.isclose(got[lr][1], statistics.mean(vals), rel_tol=1e-12)
    assert "optim.weight_decay" not in rows[0]

    out = tmp_path / "where"
    assert run([grid, "--out", out, "--where", "optim.weight_decay=5e-4", "--where", "seed=0"]) == 0
    names = {Path(r["run_dir"]).name for r in read_csv_dicts(out / "runs.csv")}
    assert names == {
        r["name"] for r in reference(grid) if r["cfg"]["optim.weight_decay"] == 5e-4 and r["cfg"]["seed"] == 0
    }
    assert len(names) == 2


def test_runs_csv_has_a_column_per_varying_key(tmp_path):
    root = _write_grid(tmp_path / "bs" / "adhoc", batch_sizes={1: 256})
    out = tmp_path / "res"
    assert run([root, "--out", out, "--no-figures"]) == 0
    ref = reference(root)
    keys = {k for k in ref[0]["cfg"] if len({repr(r["cfg"].get(k)) for r in ref}) > 1}
    assert keys == {"optim.lr", "optim.weight_decay", "seed", "batch_size"}
    rows = read_csv_dicts(out / "runs.csv")
    assert keys <= set(rows[0])
    by_name = {Path(r["run_dir"]).name: r for r in rows}
    for r in ref:
        assert int(by_name[r["name"]]["batch_size"]) == r["cfg"]["batch_size"]
        assert float(by_name[r["name"]]["optim.weight_decay"]) == r["cfg"]["optim.weight_decay"]
    # batch_size varies with the seed here, so it is a grouping key: seeds are no longer pooled
    ranking = read_csv_dicts(out / "tables" / "ranking_val_acc.csv")
    assert "batch_size" in ranking[0] and len(ranking) == 8


@pytest.mark.parametrize(
    "args, words",
    [
        (["--by", "optim.learning_rate"], "--by optim.learning_rate: not a config key"),
        (["--by", "lr"], "did you mean optim.lr"),
        (["--metric", "val_f1"], "--metric val_f1: not a metric; one of val_acc"),
        (["--where", "optim.lr"], "--where 'optim.lr': write KEY=VALUE"),
        (["--where", "optim.lr=0.3"], "no run matches; optim.lr takes 0.01, 0.1"),
        (["--pivot", "optim.lr"], "--pivot optim.lr: give two different keys"),
        (["--pivot", "optim.lr,model.depth"], "--pivot model.depth: not a config key"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(grid, tmp_path, capsys, args, words):
    out = tmp_path / "res"
    assert run([grid, "--out", out, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not out.exists()


def test_a_search_pivot_is_a_scatter_of_its_settings(tmp_path):
    from analysis import sweep_figures

    rng = np.random.default_rng(5)
    root = tmp_path / "search"
    lrs, wds = 10 ** rng.uniform(-3, 0, 8), 10 ** rng.uniform(-6, -2, 8)
    for i, (lr, wd) in enumerate(zip(lrs, wds)):
        cfg = make_config(lr=float(lr), wd=float(wd), epochs=3)
        write_run(root / f"trial{i}", cfg, make_history(cfg, rng))
    out = tmp_path / "res"
    assert run([root, "--out", out, "--pivot", "optim.lr,optim.weight_decay"]) == 0
    cells = read_csv_dicts(out / "tables" / "grid_val_acc.csv")
    assert sorted(float(c["optim.lr"]) for c in cells) == sorted(lrs) and {c["n"] for c in cells} == {"1"}
    import pandas as pd

    values = pd.DataFrame({"optim.lr": lrs, "optim.weight_decay": wds, "n": 1})
    assert sweep_figures.is_sparse(values, "optim.lr", "optim.weight_decay")
    assert not sweep_figures.is_sparse(
        values.head(2).assign(**{"optim.lr": [0.1, 0.1]}), "optim.lr", "optim.weight_decay"
    )
    assert (out / "figures" / "grid_val_acc.png").stat().st_size > 0


def test_with_three_by_keys_the_grid_heatmap_draws_the_grid_cells_not_the_parallel_groups(grid, tmp_path, monkeypatch):
    """Both figures are drawn after both are planned: each must keep its own data."""
    import analysis.sweep_figures as sf

    drawn = {}

    def recording(name):
        original = getattr(sf, name)

        def draw(sel, values):
            drawn[name] = values
            return original(sel, values)

        return draw

    for name in ("draw_grid", "draw_parallel"):
        monkeypatch.setattr(sf, name, recording(name))
    args = [
        grid,
        "--out",
        tmp_path / "res",
        "--by",
        "optim.lr,optim.weight_decay,seed",
        "--pivot",
        "optim.lr,optim.weight_decay",
    ]
    assert run(args) == 0
    cells, groups = drawn["draw_grid"], drawn["draw_parallel"]
    assert list(cells.columns[:3]) == [
        "seed",
        "optim.lr",
        "optim.weight_decay",
    ]  # other --by keys first, then the pivot
    assert list(groups.columns[:3]) == ["optim.lr", "optim.weight_decay", "seed"]  # the --by keys in their order
