"""analysis/: CSVs, tables and figures checked against independently computed references."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import HIST_HEADER, ROOT, fnum, read_csv_dicts
from support import run_cli

import analysis

PCT = re.compile(r"^(-?\d+\.\d+)$")
PM = re.compile(r"^(-?[\d.e+-]+) ± ([\d.e+-]+) \(n=(\d+)\)$")


def md_table(path: Path, heading_contains: str = "") -> tuple[list[str], list[list[str]]]:
    """First Markdown table in `path` (after a heading containing the text) as header, rows."""
    lines = path.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("###") and heading_contains in l)
    tab = []
    for l in lines[start + 1 :]:
        if l.startswith("|"):
            tab.append([c.strip() for c in l.strip("|").split(" | ")])
        elif tab:
            break
    return tab[0], tab[2:]


def history_rows(run_dir: str) -> list[dict]:
    return read_csv_dicts(Path(run_dir) / "history.csv")


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_runs_csv_equals_last_history_row(report, study):
    out, _ = report
    runs = read_csv_dicts(out / "runs.csv")
    expected_dirs = {str(p.parent) for p in study.rglob("summary.json")}
    expected_dirs |= {str(p.parent) for p in study.rglob("history.csv")}
    assert {r["run_dir"] for r in runs} == expected_dirs  # none dropped, none doubled
    for r in runs:
        hist = history_rows(r["run_dir"])
        assert int(float(r["epochs_completed"])) == len(hist)
        for col in ("train_loss", "train_acc", "val_loss", "val_acc"):
            want = fnum(hist[-1][col]) if hist else float("nan")
            assert same(fnum(r[col]), want), (r["run_dir"], col)
        assert r["section"] == Path(r["run_dir"]).parent.name


def test_statuses_kept_and_test_metrics(report):
    out, _ = report
    runs = {Path(r["run_dir"]).name: r for r in read_csv_dicts(out / "runs.csv")}
    assert runs["optim.lr=0.5"]["status"] == "diverged"
    assert runs["optim.lr=0.5"]["epochs_completed"] == "4"
    assert math.isnan(fnum(runs["optim.lr=0.5"]["val_loss"]))
    assert runs["failed_run"]["status"] == "failed"
    assert runs["failed_run"]["epochs_completed"] == "0"
    assert runs["no_summary"]["status"] == "unknown"
    assert fnum(runs["no_summary"]["lr"]) == 0.05  # config from .hydra/config.yaml
    assert runs["no_summary"]["setting"] == "lr 0.05, constant, no wd, no aug"
    # best_val_acc without a summary: max over history.csv
    h = history_rows(runs["no_summary"]["run_dir"])
    assert fnum(runs["no_summary"]["best_val_acc"]) == max(float(x["val_acc"]) for x in h)
    assert math.isnan(fnum(runs["mixup=0.2"]["test_acc"]))
    assert 0.4 <= fnum(runs["wd=0.0005"]["test_acc"]) <= 0.6
    assert runs["mixup=0.2"]["setting"] == "lr 0.05, cosine, wd 5e-4, mixup 0.2"
    assert runs["failed_run"]["setting"] == "lr 0.05, constant, no wd, mixup 0.4, no crop/flip"


def test_history_long_table(report, study):
    out, _ = report
    long = read_csv_dicts(out / "history.csv")
    n = sum(len(history_rows(str(p.parent))) for p in study.rglob("history.csv"))
    assert len(long) == n
    for col in ["run_dir", "section", "setting", "lr", "schedule", "seed"] + HIST_HEADER:
        assert col in long[0]
    assert "extra_col" not in long[0]


def test_markdown_percentages(report):
    out, _ = report
    header, rows = md_table(out / "tables" / "lr_sweep.md")
    assert "Status" in header  # one run diverged
    runs = {r["setting"]: r for r in read_csv_dicts(out / "runs.csv") if r["section"] == "lr_sweep"}
    col = header.index("Val acc (%)")
    for row in rows:
        run = runs[row[header.index("Setting")]]
        want = 100 * float(history_rows(run["run_dir"])[-1]["val_acc"])
        assert PCT.match(row[col]) and abs(float(row[col]) - want) <= 0.005 + 1e-9


def test_mean_std_over_seeds(report):
    out, _ = report
    header, rows = md_table(out / "tables" / "schedule_sweep.md")
    assert "Status" not in header
    text = (out / "tables" / "schedule_sweep.md").read_text()
    assert "ddof=1" in text
    runs = [
        r for r in read_csv_dicts(out / "runs.csv") if r["section"] == "schedule_sweep" and r["schedule"] == "cosine"
    ]
    assert len(runs) == 3
    row = next(r for r in rows if "cosine" in r[header.index("Setting")])
    for name, col, scale in (("Val acc (%)", "val_acc", 100.0), ("Train loss", "train_loss", 1)):
        vals = np.array([float(history_rows(r["run_dir"])[-1][col]) for r in runs]) * scale
        m = PM.match(row[header.index(name)])
        assert m, row
        mean, std, n = float(m[1]), float(m[2]), int(m[3])
        assert n == 3
        assert mean == pytest.approx(vals.mean(), abs=0.005 if scale == 100 else 1e-3)
        assert std == pytest.approx(vals.std(ddof=1), abs=0.005 if scale == 100 else 2e-2 * std)


def test_latex_tables_balanced(report):
    out, _ = report
    texs = sorted((out / "tables").glob("*.tex"))
    assert {p.stem for p in texs} >= {"lr_sweep", "schedule_sweep", "wd_sweep", "mixup", "all", "data_stats"}
    for p in texs:
        t = p.read_text()
        assert t.count(r"\begin{tabular}") == t.count(r"\end{tabular}") >= 1
        assert t.count(r"\begin{table}") == t.count(r"\end{table}")
        for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
            assert rule in t
        for block in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", t, re.S):
            spec, body = block
            rows = [l for l in body.splitlines() if l.endswith(r"\\")]
            amps = {len(re.findall(r"(?<!\\)&", l)) for l in rows}
            assert amps == {len(spec) - 1}, p
        assert "±" not in t and "—" not in t
        # unescaped specials only inside commands: no bare _ % # &-in-text
        text = re.sub(r"\\label\{[^}]*\}", "", t)  # labels may hold _
        assert not re.search(r"(?<!\\)[_%#]", text), p
    assert r"lr\_sweep" in (out / "tables" / "all.tex").read_text()
    assert r"$\pm$" in (out / "tables" / "schedule_sweep.tex").read_text()


def test_data_stats_table(report):
    out, _ = report
    header, rows = md_table(out / "tables" / "data_stats.md", "splits")
    assert ["train images", "40000"] in rows and ["val images", "10000"] in rows
    header, rows = md_table(out / "tables" / "data_stats.md", "Channel")
    assert rows[0] == ["R", "0.5071", "0.2673"]


def test_figures_written(report):
    out, written = report
    figs = out / "figures"
    names = [
        "lr_sweep",
        "schedule_sweep",
        "wd_sweep",
        "mixup",
        "beta_pdf",
        "lr_schedule",
        "class_proportions",
    ]  # one figure per section, with loss and accuracy panels
    for n in names:
        png, pdf = figs / f"{n}.png", figs / f"{n}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert set(written) == {"csv", "tables", "figures"}
    assert all(p.exists() for ps in written.values() for p in ps)


def test_beta_pdf_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.linspace(0, 1, 1001)[1:-1]
    for a in (0.2, 0.4, 1.0, 2.0):
        np.testing.assert_allclose(analysis.beta_pdf(x, a), stats.beta.pdf(x, a, a), rtol=1e-10)
    np.testing.assert_allclose(analysis.beta_pdf(x, 0.3, 2.5), stats.beta.pdf(x, 0.3, 2.5), rtol=1e-10)
    assert analysis.beta_pdf(np.array([0.0, 1.0, -1.0, 2.0]), 0.2).tolist() == [0, 0, 0, 0]
    assert analysis.mixup_alphas(None) == [] and analysis.mixup_alphas(None, always=(0.2,)) == [0.2]


def test_setting_labels_and_numbers():
    assert analysis.fmt_num(5e-4) == "5e-4" and analysis.fmt_num(0.05) == "0.05"
    assert analysis.fmt_num(1e-4) == "1e-4" and analysis.fmt_num(300.0) == "300"
    row = {
        "lr": 0.5,
        "schedule": "constant",
        "weight_decay": 1e-4,
        "crop_flip": True,
        "mixup_alpha": None,
        "model": "mobilenetv1",
        "epochs": 15,
    }
    assert analysis.setting_label(row) == "lr 0.5, constant, wd 1e-4, mobilenetv1"
    assert analysis.setting_label(row, ("epochs",)) == "lr 0.5, constant, wd 1e-4, mobilenetv1, 15 ep"


def test_latex_escape():
    assert analysis.latex_escape("a_b 5% & #1") == r"a\_b 5\% \& \#1"
    hostile = "run_1 50% & #2 \\ {x} ~^ <|>"
    want = (
        r"run\_1 50\% \& \#2 \textbackslash{} \{x\} \textasciitilde{}\textasciicircum{} "
        r"\textless{}\textbar{}\textgreater{}"
    )
    assert analysis.latex_escape(hostile) == want
    assert analysis.latex_escape("café 日本 α±λ") == r"cafe ?? $\alpha$$\pm$$\lambda$"


def _cli(*args):
    return run_cli(list(args), ROOT, module="analysis")


def test_cli_missing_path(tmp_path):
    r = _cli(str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_no_runs(tmp_path):
    (tmp_path / "empty" / ".hydra").mkdir(parents=True)
    r = _cli(str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no run folders" in r.stderr


def test_cli_writes_report(study, tmp_path):
    r = _cli(str(study / "lr_sweep"), str(study / "mixup" / "mixup=0.2"), "--out", str(tmp_path / "o"), "--no-figures")
    assert r.returncode == 0, r.stderr
    rows = read_csv_dicts(tmp_path / "o" / "runs.csv")
    assert len(rows) == 4
    assert (tmp_path / "o" / "tables" / "mixup.md").is_file()
