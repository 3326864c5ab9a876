"""python -m analysis.paper STUDY_DIR: report.md, paper.tex and paper.pdf from a study's run folders.

Reads STUDY_DIR/choices.json (written by python -m hw_hparams.homework) and the run folders it
lists, once, and the author's STUDY_DIR/report/author.md (authored.py: created once, never
overwritten); writes STUDY_DIR/report/: runs.csv, history.csv, and, rendered from one Document
(content.build), tables/, figures/ (PNG + PDF), report.md, paper.tex and, when TeX is on PATH,
paper.pdf. report.md and paper.tex are stamped (stamp.py): one a person edited stops the rebuild,
or with --force is kept renamed beside itself. No training, no training code: a copied outputs/
folder rebuilds the same way. Exit status: 0, 1 (the paper did not compile), 2 (a user error).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from analysis import authored, content, stamp
from analysis.cli import run_cli
from analysis.read.runs import AnalysisError
from analysis.read.study import load
from analysis.render import texbuild
from analysis.render.document import to_markdown
from analysis.render.latex import to_latex
from analysis.report import write_csvs, write_document
from hw_hparams.config.errors import OneLineParser

STYLE_NAME = re.compile(r"aaai[A-Za-z0-9_-]*\.sty")
REPORT_DIR = "report"


@dataclass
class Result:
    """What build wrote, and the lines to print (one fact each)."""

    report_md: Path
    tex: Path
    pdf: Path | None = None
    compiled: bool | None = None  # None: not attempted
    lines: list[str] = field(default_factory=list)


def resolve_style(out: Path, named: str | os.PathLike | None) -> Path | None:
    """The AAAI author-kit style to use: `named` (copied into `out`), else the last aaai*.sty in
    `out`, else None (the look-alike preamble). AnalysisError for a bad `named`."""
    if named:
        p = Path(named)
        if not STYLE_NAME.fullmatch(p.name):
            raise AnalysisError(
                f"style {str(p)!r} is not allowed: an AAAI author-kit style file named aaai*.sty (e.g. aaai25.sty)"
            )
        if not p.is_file():
            raise AnalysisError(f"style file does not exist: {p}")
        dest = out / p.name
        if not dest.exists() or not os.path.samefile(p, dest):
            shutil.copy2(p, dest)
        return dest
    found = sorted(q for q in out.glob("aaai*.sty") if STYLE_NAME.fullmatch(q.name))
    return found[-1] if found else None


def edits(root: str | os.PathLike, force: bool = False) -> list[Path]:
    """report.md and paper.tex of the study `root` that a person edited since they were built
    (stamp.edited). AnalysisError (one line, nothing written) when there are any, unless `force`."""
    out = Path(root) / REPORT_DIR
    found = [p for p in (out / "report.md", out / "paper.tex") if stamp.edited(p)]
    if found and not force:
        also = f" (and {found[1].name})" if len(found) > 1 else ""
        raise AnalysisError(
            f"{found[0]}{also} differs from what the last build wrote (edited, or built before builds were "
            f"stamped), so nothing was written: text in {out / authored.FILE} is kept across rebuilds; "
            f"`python -m analysis.paper {root} --force` rebuilds and keeps each such file renamed beside it "
            f"({found[0].stem}.edited-<time>{found[0].suffix})"
        )
    return found


def _header(comment: str) -> str:
    """The note at the top of report.md and paper.tex: what built it and where the author writes."""
    return (
        f"{comment}Built by `python -m analysis.paper STUDY_DIR` from the run folders and {authored.FILE} beside\n"
        f"{comment}this file: write your name, affiliation and discussion in {authored.FILE}, then rebuild.\n"
        f"{comment}A rebuild never overwrites this file once you edit it: it stops and says so.\n"
    )


def build(
    root: str | os.PathLike,
    *,
    style: str | os.PathLike | None = None,
    figures: bool = True,
    compile: bool = True,
    force: bool = False,
) -> Result:
    """Write <root>/report/ from the study in `root` and the author's report/author.md (created when
    absent, never overwritten); AnalysisError for a user error, before anything is written. An edited
    report.md or paper.tex stops the build (edits), or with `force` is kept renamed beside itself."""
    s = load(root)
    out = Path(root) / REPORT_DIR
    res = Result(out / "report.md", out / "paper.tex")
    edited = edits(root, force)
    doc = content.build(s)
    author = out / authored.FILE
    parts = authored.read(author, doc) if author.is_file() else None
    out.mkdir(parents=True, exist_ok=True)
    style_path = resolve_style(out, style)
    res.lines += [f"kept your edited {p.name} as {stamp.set_aside(p)}" for p in edited]
    if parts is None:
        author.write_text(authored.template(doc), encoding="utf-8")
    total = len(authored.parts_of(doc))  # before fill turns the written parts into paragraphs
    todo = authored.fill(doc, parts or {})
    write_csvs(s.runs, s.hist, out)
    drawn = write_document(doc, out, figures=figures, demo=s.demo)["figures"]
    md = "\n".join(f"<!-- {line} -->" for line in _header("").splitlines()) + "\n\n" + to_markdown(doc)
    stamp.write(res.report_md, md)
    stamp.write(res.tex, _header("% ") + to_latex(doc, style_path))
    res.lines.append(f"report: {res.report_md}")
    res.lines += [f"warning: {content.PARTIAL.format(name=k)}" for k, c in s.contract.code.items() if not c.whole]
    res.lines.append(
        f"author: {author} created: write your name, affiliation and discussion there (rebuilds read it, never "
        "overwrite it)"
        if parts is None
        else f"author: {author}: {total - len(todo)} of {total} parts written"
        + (f"; still TODO: {', '.join(todo)}" if todo else "")
        + "".join(f" ('## {k}' is not in the file yet: add it)" for k in todo if k not in parts)
    )
    res.lines.append(
        f"style: {style_path.name} (official AAAI)"
        if style_path
        else "style: AAAI look-alike (put an aaai*.sty in the report folder to use the official one)"
    )
    missing = [f.stem for f in doc.figures() if out / "figures" / f"{f.stem}.pdf" not in drawn]
    if not compile or not figures or missing:
        why = "figures=false" if not figures else f"figure {missing[0]}.pdf is missing" if missing else "not asked to"
        res.lines.append(f"paper: {res.tex} written, not compiled ({why})")
        return res
    b = texbuild.compile_tex(res.tex)
    res.compiled, res.pdf = b.ok, b.pdf
    res.lines += b.lines
    return res


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m analysis.paper", description=__doc__.splitlines()[0])
    p.add_argument("study", metavar="STUDY_DIR", help="a study folder, e.g. outputs/homework")
    p.add_argument(
        "--style",
        help="an AAAI author-kit style file (aaai*.sty) to use instead of the "
        "look-alike; copied into the report folder",
    )
    p.add_argument("--no-compile", action="store_true", help="write paper.tex only")
    p.add_argument("--no-figures", action="store_true", help="draw no figures (and compile nothing)")
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even where report.md or paper.tex was edited: each edited file is kept renamed beside "
        "itself (paper.edited-<time>.tex), never deleted",
    )
    args = p.parse_args(argv)
    res = run_cli(
        lambda: build(
            args.study, style=args.style, figures=not args.no_figures, compile=not args.no_compile, force=args.force
        )
    )
    if res is None:
        return 2
    for line in res.lines:
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    return 1 if res.compiled is False else 0


if __name__ == "__main__":
    sys.exit(main())
