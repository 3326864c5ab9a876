"""What a person writes survives every rebuild: report/author.md (name, affiliation, discussion) is
read, never overwritten; an edited report.md or paper.tex stops the rebuild, or with --force is kept
beside it; and the report's code excerpts are whole statements."""

from __future__ import annotations

import json
import re

import pytest
from analysis_synth import ROOT, write_study
from support import run_cli

from analysis import paper

WRITTEN = {
    "author": "Ada Lovelace, Alan Turing",
    "affiliation": "Analytical Engine Society",
    "learning-rate": "The curves fall fastest at $\\eta = 0.05$; see `lr_sweep` and [@zhang2018mixup].\n\n"
    "A **second** paragraph: 100% & #1_x.",
}


def _cli(*args):
    return run_cli([str(a) for a in args], ROOT, module="analysis.paper")


def _write_parts(path, parts: dict[str, str]) -> str:
    """Replace the TODO line of each named part of author.md with its text, as a person would."""
    text = path.read_text()
    for key, body in parts.items():
        text, n = re.subn(rf"(## {re.escape(key)}\n\n)TODO\(author\):[^\n]*", lambda m, body=body: m[1] + body, text)
        assert n == 1, key
    path.write_text(text)
    return text


@pytest.fixture
def study(tmp_path):
    root = write_study(tmp_path / "s")
    res = paper.build(root, compile=False, figures=False)
    return root, res


def test_the_first_build_writes_author_md_with_every_part_as_todo(study):
    root, res = study
    author = root / "report" / "author.md"
    text = author.read_text()
    headings = re.findall(r"^## (\S+)$", text, re.M)
    assert headings == [
        "author",
        "affiliation",
        "introduction",
        "learning-rate",
        "cosine-intuition",
        "schedule",
        "weight-decay",
        "mixup",
        "test-accuracy",
    ]
    assert text.count("TODO(author):") == len(headings)
    assert any(line.startswith(f"author: {author} created") for line in res.lines)
    md, tex = res.report_md.read_text(), res.tex.read_text()
    assert md.count("> **TODO(author):**") == tex.count(r"\authortodo{") == 7
    assert "author.md" in md.split("# ")[0] and "author.md" in tex.split(r"\documentclass")[0]  # where to write


def test_what_the_author_writes_is_in_both_files_and_survives_every_rebuild(study):
    root, _ = study
    author = root / "report" / "author.md"
    mine = _write_parts(author, WRITTEN)
    for _ in range(2):  # edit, regenerate, regenerate again: the text is still there
        res = paper.build(root, compile=False, figures=False)
        assert author.read_text() == mine  # never rewritten
        md, tex = res.report_md.read_text(), res.tex.read_text()
        assert "Ada Lovelace, Alan Turing · Analytical Engine Society" in md
        assert r"\author{Ada Lovelace, Alan Turing\\ \normalsize\mdseries Analytical Engine Society}" in tex
        assert "The curves fall fastest at $\\eta = 0.05$; see `lr_sweep` and (Zhang et al. 2018)." in md
        assert r"at $\eta = 0.05$; see \texttt{lr\_sweep} and \citep{zhang2018mixup}." in tex
        assert (
            "A **second** paragraph: 100% & #1\\_x." in md and r"A \textbf{second} paragraph: 100\% \& \#1\_x." in tex
        )
        assert md.count("> **TODO(author):**") == tex.count(r"\authortodo{") == 6  # the written part's box is gone
        assert "Author Name (TODO)" not in tex and "Affiliation (TODO)" not in tex
    assert any(line.startswith(f"author: {author}: 3 of 9 parts written; still TODO: intro") for line in res.lines)


def test_an_edited_paper_is_never_overwritten_and_force_keeps_it(study):
    root, res = study
    tex = res.tex
    edited = tex.read_text().replace("Author Name (TODO)", "My Own Name")
    tex.write_text(edited)
    md_before = res.report_md.read_bytes()
    r = _cli(root, "--no-compile")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    assert f"{tex} differs from what the last build wrote" in r.stderr and "--force" in r.stderr
    assert "author.md" in r.stderr
    assert tex.read_text() == edited and res.report_md.read_bytes() == md_before  # nothing written
    r = _cli(root, "--no-compile", "--force")
    assert r.returncode == 0, r.stderr
    (kept,) = (root / "report").glob("paper.edited-*.tex")
    assert kept.read_text() == edited and f"kept your edited paper.tex as {kept}" in r.stdout
    assert "My Own Name" not in tex.read_text()
    assert _cli(root, "--no-compile").returncode == 0  # the rebuilt paper carries a fresh stamp


def test_a_report_built_before_stamps_counts_as_edited(study):
    root, res = study
    res.report_md.write_text(res.report_md.read_text().split("\n", 1)[1])  # no stamp line
    with pytest.raises(paper.AnalysisError, match="report.md differs from what the last build wrote"):
        paper.build(root, compile=False, figures=False)


@pytest.mark.parametrize(
    "change, message",
    [
        (("## mixup\n", "## mixupp\n"), "'## mixupp' is not a part of this report (did you mean mixup?)"),
        (("## author\n", "My name\n## author\n"), ":6: text before the first '## part' heading belongs to no part"),
        (("## schedule\n", "## introduction\n"), "'## introduction' appears twice"),
        (("TODO(author): your institution", "Uni [@nobody2020]"), "[@nobody2020] in '## affiliation' is no reference"),
    ],
)
def test_author_md_mistakes_are_one_line_and_change_nothing(study, change, message):
    root, res = study
    author = root / "report" / "author.md"
    author.write_text(author.read_text().replace(*change, 1))
    before = {p: p.read_bytes() for p in (author, res.report_md, res.tex)}
    r = _cli(root, "--no-compile")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert {p: p.read_bytes() for p in before} == before


def test_a_partial_excerpt_of_an_older_study_is_named_not_shown(tmp_path):
    root = write_study(tmp_path / "s")
    contract = json.loads((root / "choices.json").read_text())
    contract["code"]["split"]["source"] = "train, val = torch.utils.data.random_split("  # an older study's
    (root / "choices.json").write_text(json.dumps(contract))
    res = paper.build(root, compile=False, figures=False)
    md = res.report_md.read_text()
    assert "random_split(\n" not in md and "The split is this statement" not in md
    assert "choices.json holds a partial split excerpt" in md
    assert any(line.startswith("warning: choices.json holds a partial split excerpt") for line in res.lines)
