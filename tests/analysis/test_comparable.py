"""`python -m analysis` never ranks runs that cannot be compared: other data, another definition of the metric,
no value at all; and it never groups by a key that does not change what a run computes (hw_hparams/config/roles.py).

Each refusal is one line, exit 2, nothing written, and names the --where that chooses comparable runs; running
what it suggests works. Run folders are synthetic (analysis_synth); expected values are written out here."""

from __future__ import annotations

import copy
import math
import shlex
import statistics
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import make_config, make_data_stats, make_history, read_csv_dicts, write_run

from analysis.__main__ import main
from hw_hparams.config import roles


def run(args) -> int:
    return main([str(a) for a in args])


def refused(args, capsys) -> str:
    """The one line `python -m analysis ARGS` prints when it refuses (exit 2, --out not created)."""
    out = args[args.index("--out") + 1]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err.strip()


def sweep(root, accs: dict[float, float], rng, data_stats=True, **config) -> None:
    """One run per lr with the given final validation accuracy."""
    for lr, acc in accs.items():
        cfg = make_config(lr=lr, epochs=3, **config)
        rows = make_history(cfg, rng)
        rows[-1][5] = acc
        write_run(root / f"optim.lr={lr}", cfg, rows, data_stats=data_stats)


@pytest.fixture
def outputs(tmp_path):
    """outputs/ with three sweeps of three data sets: 1,000 validation images of data/, 10,000 of data/,
    and 10,000 of other/ (other images, the same split sizes)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "outputs" / "multirun"
    sweep(root / "small_val", {0.1: 0.50, 0.01: 0.49}, rng, val_size=1000)
    sweep(root / "full", {0.1: 0.60, 0.01: 0.40}, rng)
    other = make_data_stats(mean=(0.45, 0.45, 0.45))
    sweep(root / "other_data", {0.1: 0.30, 0.01: 0.20}, rng, data_stats=other, data_root="other")
    return tmp_path / "outputs"


def test_runs_of_different_data_are_refused_with_the_where_that_chooses_each(outputs, tmp_path, capsys):
    line = refused([outputs, "--out", tmp_path / "res"], capsys)
    assert line == (
        "error: these runs were trained on 3 different data sets, which cannot be ranked together "
        "(validation images: 1000, 10000; the images: channel statistics or class proportions); choose one: "
        "--where data.val_size=10000 --where data.root=data (2 runs); --where data.root=other (2 runs); "
        "--where data.val_size=1000 (2 runs)"
    )
    # what it suggests works, and each ranking is of one data set, its noise rule on that set's n
    for choice, n, accs in [
        ("--where data.val_size=1000", 1000, (0.50, 0.49)),
        ("--where data.val_size=10000 --where data.root=data", 10000, (0.60, 0.40)),
    ]:
        out = tmp_path / f"res{n}"
        assert run([outputs, "--out", out, *shlex.split(choice)]) == 0
        rows = read_csv_dicts(out / "tables" / "ranking_val_acc.csv")
        assert [float(r["mean"]) for r in rows] == list(accs)
        diff, (a, b) = accs[0] - accs[1], accs
        se = math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        assert math.isclose(float(rows[1]["se"]), se, rel_tol=1e-9) and math.isclose(float(rows[1]["behind"]), diff)
        assert rows[1]["basis"] == f"binomial, {n} validation images"


def test_the_same_sizes_of_other_images_are_other_data(tmp_path, capsys):
    rng = np.random.default_rng(1)
    sweep(tmp_path / "a", {0.1: 0.6}, rng)
    sweep(tmp_path / "b", {0.1: 0.5}, rng, data_stats=make_data_stats(mean=(0.4, 0.5, 0.6)), data_root="/b/data")
    line = refused([tmp_path, "--out", tmp_path / "res"], capsys)
    assert "ranked together (the images: channel statistics or class proportions); choose one" in line
    assert line.endswith("choose one: --where data.root=data (1 run); --where data.root=/b/data (1 run)")


def test_runs_that_no_key_tells_apart_are_chosen_by_their_folder(tmp_path, capsys):
    rng = np.random.default_rng(2)
    sweep(tmp_path / "machine1" / "adhoc", {0.1: 0.6, 0.01: 0.5}, rng)
    sweep(tmp_path / "machine2" / "adhoc", {0.1: 0.6, 0.01: 0.5}, rng, data_stats=make_data_stats(val=5000))
    line = refused([tmp_path, "--out", tmp_path / "res"], capsys)
    assert line.endswith(
        f"choose one: point at {tmp_path / 'machine1' / 'adhoc'}; point at {tmp_path / 'machine2' / 'adhoc'}"
    )


def test_the_same_data_counts_as_the_same_whatever_its_files_times_and_last_bits(tmp_path, capsys):
    rng = np.random.default_rng(3)
    sweep(tmp_path / "a", {0.1: 0.6}, rng, data_stats=make_data_stats(fingerprint="aaaa"))
    stats = make_data_stats(fingerprint="bbbb")  # a copy of the files: other times, other fingerprint
    stats["mean"] = [m * (1 + 1e-15) for m in stats["mean"]]  # summed in another order elsewhere
    sweep(tmp_path / "b", {0.01: 0.5}, rng, data_stats=stats)
    sweep(tmp_path / "c", {0.001: 0.4}, rng, data_stats=False)  # stopped before loading its data: not checked
    assert run([tmp_path, "--out", tmp_path / "res", "--no-figures"]) == 0
    assert len(read_csv_dicts(tmp_path / "res" / "tables" / "ranking_val_acc.csv")) == 3
    assert capsys.readouterr().err == ""  # not even a warning that the data differ


def test_a_training_metric_of_runs_with_and_without_mixup_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(4)
    sweep(tmp_path / "plain", {0.1: 0.6, 0.01: 0.5}, rng)
    sweep(tmp_path / "mixup", {0.1: 0.6}, rng, mixup=0.2)
    sweep(tmp_path / "mixup4", {0.1: 0.6}, rng, mixup=0.4)
    for metric in ("train_acc", "train_loss"):
        line = refused([tmp_path, "--out", tmp_path / "res", "--metric", metric], capsys)
        assert line == (
            f"error: --metric {metric} is lambda-weighted over two labels under mixup, plain without it, and these "
            "runs hold both (2 with mixup, 2 without); choose: --where augmentation.mixup_alpha=null (2 runs); "
            f"--where augmentation.mixup_alpha=0.2 (1 of 2 runs); or rank by --metric {metric.replace('train', 'val')}"
        )
    assert run([tmp_path, "--out", tmp_path / "val", "--metric", "val_acc"]) == 0  # one definition for all runs
    out = tmp_path / "plain_only"
    assert run([tmp_path, "--out", out, "--metric", "train_acc", "--where", "augmentation.mixup_alpha=null"]) == 0
    assert len(read_csv_dicts(out / "tables" / "ranking_train_acc.csv")) == 2


def test_a_metric_no_run_has_is_one_line_not_a_ranking_of_nothing(tmp_path, capsys):
    rng = np.random.default_rng(5)
    sweep(tmp_path / "adhoc", {0.1: 0.6, 0.05: 0.55, 0.01: 0.5, 0.001: 0.3}, rng)
    line = refused([tmp_path, "--out", tmp_path / "res", "--metric", "test_acc"], capsys)
    assert line == (
        "error: --metric test_acc: none of these 4 runs has a finite value (the test split is evaluated only by "
        "runs trained with eval_test=true); rank by another metric, e.g. --metric val_acc"
    )
    for lr in (0.1, 0.01):
        write_run(tmp_path / "failed" / f"lr={lr}", make_config(lr=lr), [], status="failed")
    line = refused([tmp_path / "failed", "--out", tmp_path / "res"], capsys)
    assert line == "error: --metric val_acc: none of these 2 runs has a finite value (2 failed)"


#: Keys under a group that roles.py declares as a whole.
LEAVES = {"logger": ["logger.dir", "logger.study", "logger.tensorboard.enabled"], "objective": ["objective.metric"]}
RANKING_COLS = {"rank", "mean", "std", "n", "runs", "status", "behind", "se", "basis", "beyond_noise"}


def varied(cfg: dict, key: str) -> dict:
    """`cfg` with another value of dotted `key` (a value where it has none)."""
    out = copy.deepcopy(cfg)
    *path, leaf = key.split(".")
    node = out
    for part in path:
        node = node.setdefault(part, {})
    v = node.get(leaf, "absent")
    if v is None:
        node[leaf] = 0.5
    elif isinstance(v, bool):
        node[leaf] = not v
    else:
        node[leaf] = 2 * v + 1 if isinstance(v, (int, float)) else f"{v}-other"
    return out


def test_the_keys_grouped_by_are_exactly_those_that_change_what_a_run_computes(tmp_path):
    """Every key roles.py declares, each varied in a run of its own: one that never counts (a run folder's
    name leaves it out) is never grouped by; every other one is (seeds pooled)."""
    rng = np.random.default_rng(6)
    keys = [leaf for entry in roles.ROLES for leaf in LEAVES.get(entry, [entry])]
    base = make_config(epochs=3)
    for i, key in enumerate(["none", *keys]):
        cfg = base if key == "none" else varied(base, key)
        write_run(tmp_path / "runs" / f"run{i}", cfg, make_history(base, rng), data_stats=False)
    out = tmp_path / "res"
    assert run([tmp_path / "runs", "--out", out, "--no-figures"]) == 0
    by = [c for c in read_csv_dicts(out / "tables" / "ranking_val_acc.csv")[0] if c not in RANKING_COLS]
    assert sorted(by) == sorted(k for k in keys if not roles.run_invariant(k) and k != "seed")
    assert "trainer.precision" in by and not [k for k in by if k.startswith(("logger.", "data.root", "trainer.d"))]


def test_the_outputs_folder_of_a_parent_of_sweeps_never_groups_by_trackers_or_paths(tmp_path):
    """The issue's case: outputs/ with a sweep logged to TensorBoard and one without, on one data set."""
    rng = np.random.default_rng(7)
    for name, logger in (
        ("plain", {"dir": None, "study": None, "tensorboard": {"enabled": False}}),
        ("tb", {"dir": "/tb", "study": "hw", "tensorboard": {"enabled": True}}),
    ):
        for seed in (0, 1):
            for lr, acc in ((0.1, 0.6), (0.01, 0.5)):
                cfg = {**make_config(lr=lr, seed=seed, epochs=3, data_root=f"/{name}/data"), "logger": logger}
                rows = make_history(cfg, rng)
                rows[-1][5] = acc + 0.01 * seed
                write_run(tmp_path / "outputs" / name / f"lr={lr},seed={seed}", cfg, rows)
    out = tmp_path / "res"
    assert run([tmp_path / "outputs", "--out", out, "--no-figures"]) == 0
    rows = read_csv_dicts(out / "tables" / "ranking_val_acc.csv")
    assert [float(r["optim.lr"]) for r in rows] == [0.1, 0.01] and [r["n"] for r in rows] == ["2", "2"]
    assert math.isclose(float(rows[0]["mean"]), statistics.mean([0.6, 0.61]))  # each run once: the tb copies repeat
    assert not [c for c in rows[0] if c.startswith(("logger.", "data."))]


def test_copies_of_one_run_count_once_from_the_most_complete_copy(tmp_path, capsys, monkeypatch):
    """The same setting and seed trained by two sweeps that differ only in experiment_name, the trackers and
    data.root: one sample, not two seeds, in every table, ranking and figure; the warning names the folders."""
    rng = np.random.default_rng(8)
    monkeypatch.chdir(tmp_path)
    accs = {(0.1, 0): 0.60, (0.1, 1): 0.62, (0.01, 0): 0.50, (0.01, 1): 0.46, (0.05, 0): 0.55}

    def train(sweep_dir, lr, seed, epochs_done=3, status="completed", **extra):
        cfg = {**make_config(lr=lr, seed=seed, epochs=3), "experiment_name": sweep_dir.name, **extra}
        rows = make_history(cfg, rng)[:epochs_done]
        rows[-1][5] = accs[(lr, seed)]
        write_run(sweep_dir / f"lr={lr},seed={seed}", cfg, rows, status=status)

    adhoc, other = Path("outputs/adhoc"), Path("outputs/other")
    for lr, seed in [(0.1, 0), (0.1, 1), (0.01, 0)]:
        train(adhoc, lr, seed)
    train(adhoc, 0.01, 1, epochs_done=1, status="interrupted")  # completed by the second sweep
    tb = {"logger": {"dir": "/tb", "tensorboard": {"enabled": True}}, "data": {**make_config()["data"], "root": "/x"}}
    for lr, seed in [(0.1, 0), (0.1, 1), (0.01, 1), (0.05, 0)]:
        train(other, lr, seed, **tb)
    assert run(["outputs", "--out", "res"]) == 0
    assert capsys.readouterr().err == (
        "warning: the same run trained twice counts once (equal in every key that changes a run, seed included; the "
        "most complete copy kept): 2 runs in outputs/other left out for their copies in outputs/adhoc; "
        "1 run in outputs/adhoc left out for its copy in outputs/other\n"
    )
    kept = {
        "adhoc": ["lr=0.01,seed=0", "lr=0.1,seed=0", "lr=0.1,seed=1"],
        "other": ["lr=0.01,seed=1", "lr=0.05,seed=0"],
    }
    runs = read_csv_dicts(Path("res/runs.csv"))
    assert sorted(r["run_dir"] for r in runs) == sorted(f"outputs/{s}/{d}" for s, ds in kept.items() for d in ds)
    hist = read_csv_dicts(Path("res/history.csv"))
    assert {r["run_dir"] for r in hist} == {r["run_dir"] for r in runs} and len(hist) == 3 * len(runs)
    ranking = read_csv_dicts(Path("res/tables/ranking_val_acc.csv"))
    assert [(r["optim.lr"], r["n"], r["runs"]) for r in ranking] == [
        ("0.1", "2", "2"),
        ("0.05", "1", "1"),
        ("0.01", "2", "2"),
    ]
    assert [float(r["mean"]) for r in ranking] == [statistics.mean([0.60, 0.62]), 0.55, statistics.mean([0.50, 0.46])]
    assert math.isclose(float(ranking[0]["std"]), statistics.stdev([0.60, 0.62]))
    md = Path("res/tables/ranking_val_acc.md").read_text()
    assert "(n=2)" in md and "(n=3)" not in md and "(n=4)" not in md
    table = Path("res/tables/all.md").read_text()  # per section: each run in one section only
    assert table.count("| adhoc |") == 2 and table.count("| other |") == 2 and "(n=2)" in table
    assert "(n=2)" not in table.split("| other |")[1]  # lr 0.1 and lr 0.01 of `other`: one run each
    # a sweep chosen on its own keeps its copies
    assert run(["outputs", "--out", "res_other", "--where", "experiment_name=other", "--no-figures"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert len(read_csv_dicts(Path("res_other/runs.csv"))) == 4


def test_copies_that_differ_in_a_key_grouped_by_on_purpose_are_both_kept(tmp_path, capsys):
    """`--by trainer.compile --metric epoch_time_s` compares the same runs compiled and eager (docs/analysis.md)."""
    rng = np.random.default_rng(9)
    for compiled in (True, False):
        for seed in (0, 1):
            cfg = {**make_config(seed=seed, epochs=3), "trainer": {"compile": compiled}}
            write_run(tmp_path / f"compile={compiled}" / f"seed={seed}", cfg, make_history(cfg, rng))
    out = tmp_path / "res"
    assert run([tmp_path, "--out", out, "--by", "trainer.compile", "--metric", "epoch_time_s", "--no-figures"]) == 0
    assert capsys.readouterr().err == ""
    assert [r["n"] for r in read_csv_dicts(out / "tables" / "ranking_epoch_time_s.csv")] == ["2", "2"]
    assert run([tmp_path, "--out", tmp_path / "res2", "--no-figures"]) == 0  # by default: one run per seed
    assert f"2 runs in {tmp_path / 'compile=True'} left out for their copies in " in capsys.readouterr().err
    assert [r["n"] for r in read_csv_dicts(tmp_path / "res2" / "tables" / "ranking_val_acc.csv")] == ["2"]
