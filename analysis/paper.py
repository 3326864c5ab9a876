"""python -m analysis.paper STUDY_DIR: report.md, paper.tex and paper.pdf from a study's run folders.

Reads STUDY_DIR/choices.json (written by python -m hw_hparams.homework) and the run folders it
lists, once; writes STUDY_DIR/report/: runs.csv, history.csv, tables/, figures/ (PNG + PDF),
report.md, paper.tex and, when TeX is on PATH, paper.pdf. No training, no training code: a copied
outputs/ folder rebuilds the same way. Exit status: 0, 1 (the paper did not compile), 2 (a user error).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import content, texbuild
from .curves import plot_section
from .document import to_markdown
from .labels import SECTION_ORDER, section_title
from .latex import to_latex
from .report import write_collected
from .runs import AnalysisError, warning_line
from .study import StudyData, load
from .tables import safe_name

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
            raise AnalysisError(f"style {str(p)!r} is not allowed: an AAAI author-kit style file "
                                "named aaai*.sty (e.g. aaai25.sty)")
        if not p.is_file():
            raise AnalysisError(f"style file does not exist: {p}")
        dest = out / p.name
        if not dest.exists() or not os.path.samefile(p, dest):
            shutil.copy2(p, dest)
        return dest
    found = sorted(q for q in out.glob("aaai*.sty") if STYLE_NAME.fullmatch(q.name))
    return found[-1] if found else None


def draw_figures(s: StudyData, fig_dir: Path) -> list[Path]:
    """Every figure the report names: one per section (the final one with its no-mixup baseline),
    plus class proportions, lr schedules and the Beta density (written by write_collected)."""
    paths = []
    for section in SECTION_ORDER:
        if section == s.contract.final_section:
            runs, hist = s.select(s.without_mixup_baseline() | (s.runs["section"] == section))
        else:
            runs, hist = s.part(section)
        if len(runs):
            paths += plot_section(hist, runs, section_title(section), fig_dir / safe_name(section),
                                  demo=s.demo)
    return paths


def build(root: str | os.PathLike, *, style: str | os.PathLike | None = None,
          figures: bool = True, compile: bool = True) -> Result:
    """Write <root>/report/ from the study in `root`; AnalysisError for a user error."""
    s = load(root)
    out = Path(root) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    style_path = resolve_style(out, style)
    write_collected(s.runs, s.hist, out, figures=figures, demo=s.demo, section_figures=False, stats=s.stats)
    if figures:
        draw_figures(s, out / "figures")
    doc = content.build(s)
    res = Result(out / "report.md", out / "paper.tex")
    res.report_md.write_text(to_markdown(doc), encoding="utf-8")
    res.tex.write_text(to_latex(doc, style_path), encoding="utf-8")
    res.lines.append(f"report: {res.report_md}")
    res.lines.append(f"style: {style_path.name} (official AAAI)" if style_path else
                     "style: AAAI look-alike (put an aaai*.sty in the report folder to use the official one)")
    missing = [st for st in doc.figures() if not (out / "figures" / f"{st}.pdf").is_file()]
    if not compile or not figures or missing:
        why = ("figures=false" if not figures else f"figure {missing[0]}.pdf is missing" if missing
               else "not asked to")
        res.lines.append(f"paper: {res.tex} written, not compiled ({why})")
        return res
    b = texbuild.compile_tex(res.tex)
    res.compiled, res.pdf = b.ok, b.pdf
    res.lines += b.lines
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.paper", description=__doc__.splitlines()[0])
    p.add_argument("study", metavar="STUDY_DIR", help="a study folder, e.g. outputs/homework")
    p.add_argument("--style", help="an AAAI author-kit style file (aaai*.sty) to use instead of the "
                                   "look-alike; copied into the report folder")
    p.add_argument("--no-compile", action="store_true", help="write paper.tex only")
    p.add_argument("--no-figures", action="store_true", help="draw no figures (and compile nothing)")
    args = p.parse_args(argv)
    warnings.showwarning = warning_line
    try:
        res = build(args.study, style=args.style, figures=not args.no_figures,
                    compile=not args.no_compile)
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in res.lines:
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    return 1 if res.compiled is False else 0


if __name__ == "__main__":
    sys.exit(main())
