"""report.md and paper.tex from a study folder (run folders + choices.json), without compiling:
the assignment's order, numbered captions, escaping, rebuilding from a copy, one-line errors."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys

import pytest
from analysis_synth import HOSTILE, ROOT, read_csv_dicts, write_study
from support import run_cli

from analysis import paper
from analysis.render import texbuild

HEADINGS = [
    "Introduction",
    "Data Preprocessing",
    "Learning Rate",
    "Learning Rate Schedule",
    "Weight Decay",
    "Data Augmentation",
    "Test Accuracy",
]
TEX_ESCAPED_HOSTILE = r"cls\_50\%\&\#\textbackslash{}\{x"  # written out by hand, not by the code


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = write_study(
        tmp_path_factory.mktemp("study") / "s",
        class_name=HOSTILE,
        command="python -m hw_hparams.homework study=a_b%c&d#e\\f{g",
    )
    res = paper.build(root, compile=False)
    return root, res, res.report_md.read_text(), res.tex.read_text()


def test_sections_follow_the_assignment_in_both_outputs(built):
    _, _, md, tex = built
    assert re.findall(r"^## (.+)$", md, re.M)[:-1] == HEADINGS  # then References
    assert re.findall(r"^\\section\{(.+?)\}", tex, re.M) == HEADINGS


def test_figures_and_tables_are_numbered_alike_in_markdown_and_latex(built):
    root, _, md, tex = built
    figs = re.findall(r"^\*\*Figure (\d+)\.\*\* ", md, re.M)
    tabs = re.findall(r"^\*\*Table (\d+)\.\*\* ", md, re.M)
    assert figs == [str(i) for i in range(1, len(figs) + 1)] and len(figs) == 7
    assert tabs == [str(i) for i in range(1, len(tabs) + 1)] and len(tabs) == 5
    assert tex.count(r"\begin{figure}") == len(figs)
    assert tex.count(r"\begin{table}") + tex.count(r"\begin{table*}") == len(tabs)
    for stem in re.findall(r"\\includegraphics\[[^]]*\]\{(.+?)\}", tex):
        assert (root / "report" / stem).is_file(), stem  # every figure the paper embeds exists
    for png in re.findall(r"!\[[^]]*\]\((.+?)\)", md):
        assert (root / "report" / png).is_file(), png


def test_placeholders_the_cosine_equation_and_the_code_are_there(built):
    _, _, md, tex = built
    assert md.count("> **TODO(author):**") == tex.count(r"\authortodo{") >= 7
    assert r"\cos\frac{\pi e}{T}" in md and r"\cos\frac{\pi e}{T}" in tex
    assert "train, val = random_split(range(n), [n - k, k])" in md
    assert "\\begin{lstlisting}\ntrain, val = random_split(range(n), [n - k, k])\n\\end{lstlisting}" in tex
    assert "Beta(0.2, 0.2)" in md and "clipped" in md


def test_table_numbers_are_the_runs_last_epochs(built):
    root, _, md, _ = built
    rows = {
        l.split(" | ")[0].strip("| "): l.strip("|").split(" | ")
        for l in md.split("Table 2.**")[1].split("\n\n")[1].splitlines()[2:]
    }
    for lr in ("0.5", "0.05", "0.01"):
        last = read_csv_dicts(root / "lr_sweep" / f"optim.lr={lr}" / "history.csv")[-1]
        row = rows[f"lr {lr}"]
        assert row[1].strip() == f"{float(last['train_loss']):.4f}"
        assert row[4].strip() == f"{100 * float(last['val_acc']):.2f}"


def test_every_hostile_string_is_escaped_in_latex(built):
    _, _, md, tex = built
    assert TEX_ESCAPED_HOSTILE in tex and HOSTILE not in tex
    assert r"a\_b\%c\&d\#e\textbackslash{}f\{g" in tex  # the command, in \texttt
    assert r"\texttt{100\% \{ok\}}" not in tex  # code stays code: inside lstlisting, verbatim
    assert "return x  # 100% {ok}" in tex
    body = tex.split(r"\begin{document}")[1]
    prose = re.sub(r"\\begin\{lstlisting\}.*?\\end\{lstlisting\}", "", body, flags=re.S)
    prose = re.sub(r"\$[^$]*\$", "", prose)  # maths
    prose = re.sub(r"\\begin\{(tabular|equation)\}.*?\\end\{\1\}", "", prose, flags=re.S)  # & separates cells
    prose = re.sub(r"\\(ref|label|includegraphics(\[[^]]*\])?)\{[^}]*\}", "", prose)  # names, not text
    assert not re.search(r"(?<!\\)[%#&_]", prose), "unescaped special"
    assert "cls\\_50\\%\\&\\#\\textbackslash{}\\{x" in tex
    assert r"cls\_50%&#\\{x" in md  # Markdown escapes its own specials (_ \\) only


def test_a_copied_study_rebuilds_the_same_report(built, tmp_path):
    root, _, md, _ = built
    copy = tmp_path / "elsewhere" / root.name  # a copied outputs/ keeps the study folder name
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    res = paper.build(copy, compile=False)
    assert res.report_md.read_text() == md


def test_the_rebuild_command_never_imports_the_training_code(built):
    """Of hw_hparams only the standard-library-only modules analysis may read (tests/test_imports.py), and
    their packages; never torch, Hydra or OmegaConf."""
    from test_imports import ANALYSIS_MAY_IMPORT

    root, _, _, _ = built
    code = (
        "import sys, analysis.paper as p; rc = p.main([sys.argv[1], '--no-compile']); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in {'hw_hparams', 'hydra', 'torch', 'omegaconf'}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, cwd=ROOT)
    rc, loaded = out.stdout.strip().splitlines()[-1].split(" ", 1)
    allowed = {p for m in ANALYSIS_MAY_IMPORT for p in (".".join(m.split(".")[:n]) for n in range(1, 4))}
    assert rc == "0" and set(ast.literal_eval(loaded)) <= allowed, (loaded, out.stderr)


def _cli(*args):
    return run_cli([str(a) for a in args], ROOT, module="analysis.paper")


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "study folder does not exist"),
        ("no_contract", "is not a study folder: no choices.json"),
        ("run_gone", "run folder(s) listed in"),
        ("bad_style", "is not allowed: an AAAI author-kit style file named aaai*.sty"),
        ("style_gone", "style file does not exist"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(case, message, built, tmp_path):
    root, *_ = built
    args = {
        "missing": [tmp_path / "nope"],
        "no_contract": [tmp_path],
        "bad_style": [root, "--style", tmp_path / "mystyle.sty"],
        "style_gone": [root, "--style", tmp_path / "aaai25.sty"],
    }.get(case)
    if case == "run_gone":
        copy = tmp_path / "copy"
        shutil.copytree(root, copy)
        shutil.rmtree(copy / "wd_sweep" / "wd=0.0001")
        args = [copy]
    (tmp_path / "mystyle.sty").write_text("")
    r = _cli(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_without_tex_the_tex_is_written_and_one_line_says_how_to_compile(built, tmp_path, monkeypatch):
    root, *_ = built
    monkeypatch.setenv("PATH", str(tmp_path))  # no latexmk, no pdflatex
    res = paper.build(root)
    assert res.compiled is None and res.pdf is None and res.tex.is_file()
    line = res.lines[-1]
    assert "no LaTeX on PATH" in line and "latexmk -pdf paper.tex" in line and "apt-get install" in line


def test_the_official_style_is_used_when_it_lies_in_the_report_folder(built, tmp_path):
    root, _, _, tex = built
    assert tex.split("\n\\")[1].startswith(r"documentclass[10pt,twocolumn,letterpaper]{article}")  # after % lines
    for want in (
        r"\usepackage{times}",
        r"\setlength{\textwidth}{7.0in}",
        r"\setlength{\textheight}{9.0in}",
        r"\setlength{\columnsep}{0.375in}",
        r"\usepackage{booktabs}",
    ):
        assert want in tex
    copy = tmp_path / "s"
    shutil.copytree(root, copy)
    (copy / "report" / "aaai25.sty").write_text("% stand-in\n")
    res = paper.build(copy, compile=False)
    official = res.tex.read_text()
    assert r"\usepackage{aaai25}" in official and r"\setlength{\textwidth}" not in official
    assert any("aaai25.sty (official AAAI)" in line for line in res.lines)


def test_compile_errors_and_page_positions_are_read_from_tex_files():
    log = "This is pdfTeX\n(./paper.tex\n./paper.tex:42: Undefined control sequence.\nl.42 \\foo\n! Emergency stop."
    assert texbuild.first_error(log) == "./paper.tex:42: Undefined control sequence."
    assert texbuild.first_error("! LaTeX Error: File `x.sty' not found.") == "! LaTeX Error: File `x.sty' not found."
    sp = 65536 * 72.27  # scaled points per inch
    aux = "\n".join(
        rf"\hwpos{{{n}}}{{{p:d}}}{{{int(x * sp)}}}{{{int(y * sp)}}}"
        for n, p, x, y in [
            ("Intro", 1, 1, 10),
            ("Long", 1, 1, 9),
            ("float", 4, 5, 9),
            ("Short", 3, 5, 9),
            ("end-of-content", 3, 5, 5),
        ]
    )
    name, cols = texbuild.longest_section(aux)
    # Long runs from page 1 column 1 (2/11 down) to page 3 column 2 (2/11 down): 5 columns
    assert name == "Long" and cols == pytest.approx(5.0)
    assert texbuild.content_pages(aux) == 4  # a float landed on page 4, after the references began


def test_each_table_file_holds_the_reports_own_table(built):
    """report/tables/ is rendered from the report's Table blocks: the same rows as report.md and paper.tex."""
    root, _, md, tex = built
    tables = root / "report" / "tables"
    in_report = [block.split("\n\n")[1].splitlines() for block in md.split("**Table ")[1:]]
    in_files = [
        part.split("\n\n")[1].splitlines()
        for p in sorted(tables.glob("*.md"))
        for part in p.read_text().split("### ")[1:]
    ]
    assert sorted(in_files) == sorted(in_report) and len(in_report) == 5
    assert (
        {p.stem for p in tables.glob("*.md")}
        == {p.stem for p in tables.glob("*.tex")}
        == {"lr_sweep", "schedule_sweep", "wd_sweep", "mixup", "data_stats"}
    )
    for p in tables.glob("*.tex"):
        for row in (r for r in p.read_text().splitlines() if r.endswith(r" \\")):
            assert row in tex, (p.name, row)


def test_a_figure_with_nothing_to_draw_is_named_and_a_stale_file_does_not_count(tmp_path):
    root = write_study(tmp_path / "s")
    paper.build(root, compile=False)  # draws every figure once
    for run in (root / "lr_sweep").iterdir():
        (run / "history.csv").unlink()  # summary.json keeps the runs, but no curve is left to draw
    assert (root / "report" / "figures" / "lr_sweep.pdf").is_file()  # the earlier drawing
    res = paper.build(root)
    assert res.compiled is None and res.lines[-1].endswith("not compiled (figure lr_sweep.pdf is missing)")


def test_mixups_alpha_is_the_one_the_final_runs_used(tmp_path):
    root = write_study(tmp_path / "s")
    summary = root / "mixup" / "mixup" / "summary.json"
    data = json.loads(summary.read_text())
    data["config"]["augmentation"]["mixup_alpha"] = 0.4
    summary.write_text(json.dumps(data))
    md = paper.build(root, compile=False, figures=False).report_md.read_text()
    assert "adds mixup (α = 0.4)" in md and r"$\alpha = 0.4$" in md
    assert "Beta(0.4, 0.4)" in md and "0.2" not in md.split("## Data Augmentation")[1].split("Table")[0]
    assert "cut, at 4." in md  # the density of the alpha the runs used, not also the assignment's


def test_a_usage_mistake_of_the_paper_cli_is_one_line():
    r = _cli()
    assert r.returncode == 2 and r.stderr == (
        "error: the following arguments are required: STUDY_DIR (see python -m analysis.paper --help)\n"
    ), r.stderr
