"""python -m analysis.paper STUDY_DIR: report.md, paper.tex and paper.pdf from a study's run folders.

Reads STUDY_DIR/choices.json (written by python -m hw_hparams.homework) and the run folders it
lists, once; writes STUDY_DIR/report/: runs.csv, history.csv, and, rendered from one Document
(content.build), tables/, figures/ (PNG + PDF), report.md, paper.tex and, when TeX is on PATH,
paper.pdf. No training, no training code: a copied outputs/ folder rebuilds the same way.
Exit status: 0, 1 (the paper did not compile), 2 (a user error).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import content, texbuild
from .cli import OneLineParser, run_cli
from .document import to_markdown
from .latex import to_latex
from .report import write_csvs, write_document
from .runs import AnalysisError
from .study import load

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


def build(
    root: str | os.PathLike, *, style: str | os.PathLike | None = None, figures: bool = True, compile: bool = True
) -> Result:
    """Write <root>/report/ from the study in `root`; AnalysisError for a user error."""
    s = load(root)
    out = Path(root) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    style_path = resolve_style(out, style)
    doc = content.build(s)
    write_csvs(s.runs, s.hist, out)
    drawn = write_document(doc, out, figures=figures, demo=s.demo)["figures"]
    res = Result(out / "report.md", out / "paper.tex")
    res.report_md.write_text(to_markdown(doc), encoding="utf-8")
    res.tex.write_text(to_latex(doc, style_path), encoding="utf-8")
    res.lines.append(f"report: {res.report_md}")
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
    args = p.parse_args(argv)
    res = run_cli(lambda: build(args.study, style=args.style, figures=not args.no_figures, compile=not args.no_compile))
    if res is None:
        return 2
    for line in res.lines:
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    return 1 if res.compiled is False else 0


if __name__ == "__main__":
    sys.exit(main())
