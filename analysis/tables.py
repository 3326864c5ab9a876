"""Markdown and LaTeX (booktabs) tables of final metrics per setting, and of data statistics.

Accuracies are shown in percent (100 x fraction, 2 decimals), losses with 4 decimals; sections
follow the assignment's order (lr_sweep, schedule_sweep, wd_sweep, mixup, then any others).
Settings with several seeds show `mean ± std (n=k)`: sample std (ddof=1) over the k runs whose
value is finite.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .labels import fmt_loss, fmt_num, fmt_pct, is_missing, section_rank
from .runs import GROUP_COLS

#: (runs column, header, kind) of the metric columns; kind 'pct' or 'loss'.
METRICS = [
    ("train_loss", "Train loss", "loss"),
    ("train_acc", "Train acc (%)", "pct"),
    ("val_loss", "Val loss", "loss"),
    ("val_acc", "Val acc (%)", "pct"),
    ("best_val_acc", "Best val acc (%)", "pct"),
    ("test_loss", "Test loss", "loss"),
    ("test_acc", "Test acc (%)", "pct"),
]
MISSING = "—"
NOTE = ("Metrics of the last completed epoch; accuracies in %, losses are cross-entropy. "
        "Best val acc is the maximum over epochs; the test set is evaluated once, at the end. "
        "Where several seeds share a setting: mean ± sample standard deviation (ddof=1) "
        "over the n runs with a finite value.")
SORT_COLS = ["section", "lr", "schedule", "weight_decay", "mixup_alpha", "epochs", "seed"]


def in_section_order(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` sorted by section (the assignment's order), then lr, schedule, wd, mixup, epochs, seed."""
    cols = [c for c in SORT_COLS if c in runs]
    return runs.sort_values(cols, kind="stable", na_position="last",
                            key=lambda s: s.map(section_rank) if s.name == "section" else s)


def sections(runs: pd.DataFrame) -> list:
    """The section names of `runs` in the assignment's order."""
    return sorted(runs["section"].drop_duplicates(), key=section_rank)


def _groups(runs: pd.DataFrame, by: Sequence[str]):
    return in_section_order(runs).groupby(list(by), sort=False, dropna=False)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (section, setting): n runs, statuses, and mean/std (ddof=1)/count per metric.

    Accuracies stay fractions here. Columns: section, setting, n_runs, status, epochs,
    epochs_done_min, epochs_done_max, <metric>_mean, <metric>_std, <metric>_n.
    """
    by = ["section", "setting"] + [c for c in GROUP_COLS if c in runs]
    g = _groups(runs, by)
    out = g.size().rename("n_runs").reset_index()[["section", "setting", "n_runs"]]
    out["status"] = g["status"].agg(_status_words).to_numpy()
    out["epochs"] = g["epochs"].first().to_numpy()
    out["epochs_done_min"] = g["epochs_completed"].min().to_numpy()
    out["epochs_done_max"] = g["epochs_completed"].max().to_numpy()
    for col, _, _ in METRICS:
        vals = g[col]
        out[f"{col}_mean"] = vals.mean().to_numpy()
        out[f"{col}_std"] = vals.std(ddof=1).to_numpy()
        out[f"{col}_n"] = vals.count().to_numpy()
    return out


def _status_words(s: pd.Series) -> str:
    vc = s.fillna("unknown").astype(str).value_counts(sort=False)
    if len(vc) == 1:
        return str(vc.index[0])
    return ", ".join(f"{n} {k}" for k, n in vc.items())


def cell(mean: Any, std: Any, n: int, kind: str, with_n: bool = True) -> str:
    """One metric cell: '45.10', or '45.10 ± 0.52 (n=3)' over several runs ('45.10 ± 0.52'
    without `with_n`); MISSING without a value."""
    if n == 0 or is_missing(mean):
        return MISSING
    if kind == "pct":
        val = fmt_pct(mean)
        spread = fmt_pct(std)
    else:
        val, spread = fmt_loss(mean), fmt_loss(std)
    if n == 1:
        return val
    return f"{val} ± {spread}" + (f" (n={n})" if with_n else "")


def _epochs_cell(r: pd.Series) -> str:
    lo, hi, planned = r["epochs_done_min"], r["epochs_done_max"], r["epochs"]
    done = fmt_num(lo) if lo == hi else f"{fmt_num(lo)}–{fmt_num(hi)}"
    if not is_missing(planned) and (lo != planned or hi != planned):
        return f"{done}/{fmt_num(planned)}"
    return done


def table_cells(runs: pd.DataFrame, with_section: bool = False
                ) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the final-metrics table (unicode ±, – and — in cells).

    A status column appears when not every run completed; test columns when any run has them.
    """
    summ = summarize(runs)
    show_status = bool((runs["status"] != "completed").any())
    metrics = [m for m in METRICS
               if not (m[0].startswith("test_") and runs[m[0]].isna().all())]
    header = (["Section"] if with_section else []) + ["Setting"]
    header += (["Status"] if show_status else []) + ["Epochs"] + [h for _, h, _ in metrics]
    rows = []
    for _, r in summ.iterrows():  # one iteration per setting, not per run
        row = ([str(r["section"])] if with_section else []) + [str(r["setting"])]
        row += ([r["status"]] if show_status else []) + [_epochs_cell(r)]
        row += [cell(r[f"{c}_mean"], r[f"{c}_std"], int(r[f"{c}_n"]), k) for c, _, k in metrics]
        rows.append(row)
    return header, rows


def _n_text(header: Sequence[str]) -> int:
    return sum(1 for h in header if h in ("Section", "Setting", "Status", "Quantity", "Channel"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   title: str | None = None, note: str | None = None) -> str:
    """GitHub-flavoured Markdown table; text columns left-, numbers right-aligned."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    k = _n_text(header)
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(esc(h) for h in header) + " |")
    lines.append("|" + "|".join(":---" if i < k else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "|": r"\textbar{}", "±": r"$\pm$", "–": "--", "—": "---", "×": r"$\times$",
                  "α": r"$\alpha$", "λ": r"$\lambda$", "η": r"$\eta$", "→": r"$\to$",
                  "≤": r"$\le$", "≥": r"$\ge$", "∞": r"$\infty$", "≈": r"$\approx$",
                  "·": r"$\cdot$", "∼": r"$\sim$", "−": "--", "’": "'", "“": "``", "”": "''", "\n": " "}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def ascii_only(text: str) -> str:
    """Accents dropped (é -> e), any other non-ASCII character -> '?' (pdflatex has no glyph)."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 128 else ("" if unicodedata.combining(c) else "?") for c in text)


def latex_escape(text: Any) -> str:
    """Plain text for LaTeX: specials (& % $ # _ { } ~ ^ \\ < > |) escaped, ± – — × α λ η → ≤ ≥ ∞
    mapped to LaTeX, any other non-ASCII character transliterated or replaced by '?'."""
    parts = _LATEX_RE.split(str(text))
    specials = _LATEX_RE.findall(str(text))
    out = [ascii_only(parts[0])]
    for sp, rest in zip(specials, parts[1:]):
        out += [_LATEX_SPECIAL[sp], ascii_only(rest)]
    return "".join(out)


def safe_label(label: str) -> str:
    """A \\label/\\ref key: letters, digits and : . _ - only (names can come from folders)."""
    return re.sub(r"[^A-Za-z0-9:._-]", "-", label)


def latex_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None,
                label: str | None = None) -> str:
    """A booktabs `table` float (needs \\usepackage{booktabs}); cells are escaped here."""
    k = _n_text(header)
    spec = "l" * k + "r" * (len(header) - k)
    out = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        out.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        out.append(r"\label{" + safe_label(label) + "}")
    out += [r"\begin{tabular}{" + spec + "}", r"\toprule",
            " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def safe_name(name: str) -> str:
    """A file-name-safe version of a section name."""
    s = re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(name)).strip("._") or "section"
    return f"section_{s}" if s in ("all", "data_stats") else s


def write_tables(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """tables/<section>.{md,tex} per section and tables/all.{md,tex}; returns the paths."""
    tdir = Path(out_dir) / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md_all: list[str] = []
    for section in sections(runs):
        header, rows = table_cells(runs[runs["section"] == section])
        title = f"Section {section}: final metrics per setting"
        md = markdown_table(header, rows, title, NOTE)
        md_all.append(md)
        written += _write(tdir / safe_name(section), md,
                          latex_table(header, rows, f"{title}. {NOTE}", f"tab:{section}"))
    header, rows = table_cells(runs, with_section=True)
    title = "All sections: final metrics per setting"
    written += _write(tdir / "all", markdown_table(header, rows, title, NOTE),
                      latex_table(header, rows, f"{title}. {NOTE}", "tab:all"))
    return written


def _write(stem: Path, md: str, tex: str) -> list[Path]:
    md_path, tex_path = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".tex")
    md_path.write_text(md, encoding="utf-8")
    tex_path.write_text(tex, encoding="utf-8")
    return [md_path, tex_path]


def data_stats_cells(stats: dict) -> list[tuple[list[str], list[list[str]]]]:
    """Two (header, rows) tables: split sizes (images) and per-channel mean/std ([0,1] pixels)."""
    sizes = stats.get("sizes") or {}
    t1 = [[f"{k} images", str(v)] for k, v in sizes.items()]
    if stats.get("split_seed") is not None:
        t1.append(["split seed", str(stats["split_seed"])])
    if stats.get("class_names"):
        t1.append(["classes", str(len(stats["class_names"]))])
    mean, std = list(stats.get("mean") or []), list(stats.get("std") or [])
    n = max(len(mean), len(std))
    names = ["R", "G", "B"] if n == 3 else [str(i) for i in range(n)]
    f = lambda v, i: MISSING if i >= len(v) or v[i] is None else f"{float(v[i]):.4f}"  # noqa
    t2 = [[names[i], f(mean, i), f(std, i)] for i in range(n)]
    return [(["Quantity", "Value"], t1), (["Channel", "Mean", "Std"], t2)]


def write_data_stats(stats: dict, out_dir: Path) -> list[Path]:
    """tables/data_stats.{md,tex}: split sizes and channel mean/std of the training split."""
    tdir = Path(out_dir) / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    (h1, r1), (h2, r2) = data_stats_cells(stats)
    note = "Channel mean and standard deviation in [0, 1] pixel units."
    md = (markdown_table(h1, r1, "Data splits") + "\n"
          + markdown_table(h2, r2, "Channel statistics", note))
    tex = (latex_table(h1, r1, "Data splits (images per split).", "tab:data_splits")
           + "\n" + latex_table(h2, r2, "Channel statistics. " + note, "tab:channel_stats"))
    return _write(tdir / "data_stats", md, tex)
