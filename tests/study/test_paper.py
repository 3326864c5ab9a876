"""The compiled paper (needs TeX and poppler: marker `tex`): the demo study's paper.pdf, the AAAI
style switch with a stand-in .sty, hostile names, one-line compile errors, the page-limit warning."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from analysis_synth import HOSTILE, write_study  # noqa: E402
from support import run_cli, shown_lines  # noqa: E402

from analysis import paper
from analysis.render import texbuild  # noqa: E402
from analysis.render.document import Document, Heading, Para  # noqa: E402
from analysis.render.latex import to_latex  # noqa: E402

pytestmark = pytest.mark.tex
HEADINGS = [
    "Introduction",
    "Data Preprocessing",
    "Learning Rate",
    "Learning Rate Schedule",
    "Weight Decay",
    "Data Augmentation",
    "Test Accuracy",
    "References",
]
STAND_IN = r"""\ProvidesPackage{aaai25}[2025/01/01 stand-in for the AAAI author kit, tests only]
\setlength\topmargin{-0.25in} \setlength\oddsidemargin{-0.25in} \setlength\evensidemargin{-0.25in}
\setlength\textheight{9.0in} \setlength\textwidth{7.0in} \setlength\columnsep{0.375in}
\setlength\headheight{0pt} \setlength\headsep{0pt}
\twocolumn
\def\affiliations#1{\gdef\@affiliations{#1}}
\AtEndDocument{\par STAND-IN AAAI STYLE}
"""


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])


def test_the_demo_paper_compiles_within_six_pages_with_every_figure_and_heading(demo):
    report = demo["study"] / "report"
    pdf, log = report / "paper.pdf", (report / "paper.log").read_text(errors="replace")
    log = re.sub(r"(?m)^(.{79})\n", r"\1", log)  # TeX wraps its log at 79 characters, file names included
    assert f"paper: {Path('outputs/t/report/paper.pdf')}" in "\n".join(shown_lines(demo["screen"]))
    assert not re.search(r"^! |^\S+:\d+: ", log, re.M), "LaTeX reported an error"
    assert pdf_pages(pdf) <= 6
    included = set(re.findall(r"<(?:\./)?(figures/[^>]+?\.pdf)", log))
    wanted = set(re.findall(r"\\includegraphics\[[^]]*\]\{(.+?)\}", (report / "paper.tex").read_text()))
    assert len(wanted) == 7 and included == wanted
    text = pdf_text(pdf)
    positions = [text.find(h) for h in HEADINGS]
    assert -1 not in positions, dict(zip(HEADINGS, positions))
    for i in range(1, 8):
        assert f"Figure {i}:" in text
    assert "TODO (author):" in text and "Demo: generated data." in text


def test_the_official_style_switch_uses_the_named_sty(demo, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(demo["study"], study, ignore=shutil.ignore_patterns("data", "report"))
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "aaai25.sty").write_text(STAND_IN)
    r = run_cli([str(study), "--style", str(kit / "aaai25.sty")], tmp_path, module="analysis.paper")
    assert r.returncode == 0, r.stdout + r.stderr
    report = study / "report"
    assert (report / "aaai25.sty").read_text() == STAND_IN
    assert r"\usepackage{aaai25}" in (report / "paper.tex").read_text()
    assert "STAND-IN AAAI STYLE" in pdf_text(report / "paper.pdf")
    assert "style: aaai25.sty (official AAAI)" in r.stdout


def test_hostile_names_compile(tmp_path):
    root = write_study(
        tmp_path / "s",
        schedule_name="cos_ine%&#\\{",
        class_name=HOSTILE,
        command="python -m hw_hparams.homework study=a_b%c&d#e\\f{g ~^$",
    )
    res = paper.build(root)
    assert res.compiled is True, res.lines
    text = pdf_text(res.pdf)
    assert "cls_50%&#\\{x" in text and "cos_ine%&#\\{" in text


def test_a_compile_error_is_one_line_naming_the_log(tmp_path):
    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\nfine\n\\undefinedmacro\n\\end{document}\n")
    b = texbuild.compile_tex(tex)
    assert b.ok is False and len(b.lines) == 1
    line = b.lines[0]
    assert line.startswith("error: paper.tex did not compile: ") and "Undefined control sequence" in line
    assert ":4:" in line and f"log: {tmp_path / 'paper.log'}" in line


def test_over_the_page_limit_a_line_names_the_longest_section(tmp_path):
    filler = "This sentence fills the page so that the paper runs past its limit. " * 12
    doc = Document(
        "Too long",
        "A. Author",
        [
            Heading("Short"),
            Para("One paragraph."),
            Heading("Long"),
            *[Para(filler) for _ in range(160)],
            Heading("Tail"),
            Para("The end."),
        ],
    )
    tex = tmp_path / "paper.tex"
    tex.write_text(to_latex(doc))
    b = texbuild.compile_tex(tex)
    assert b.ok and b.content_pages == pdf_pages(tex.with_suffix(".pdf")) > texbuild.PAGE_LIMIT
    assert b.longest[0] == "Long"
    warning = b.lines[-1]
    assert warning.startswith(f"warning: {b.content_pages} pages before the references, over the 6-page limit")
    assert "the longest section is 'Long'" in warning
