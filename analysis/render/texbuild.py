"""Compile paper.tex (latexmk -pdf, else pdflatex twice) and check it against the page limit.

Errors come back as one line (the first LaTeX error and where the log is), never the log itself.
Pages before the references are those up to the page of the END_MARK position; the longest
section is measured in columns from the positions \\hwmark wrote into paper.aux.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from analysis.render.latex import END_MARK

PAGE_LIMIT = 6  # pages before the references (the assignment's limit)
TIMEOUT_S = 240
INSTALL_HINT = (
    "install TeX (Debian/Ubuntu: apt-get install texlive-latex-base "
    "texlive-latex-recommended texlive-fonts-recommended latexmk)"
)
_POS = re.compile(r"\\hwpos\{(.*?)\}\{(\d+)\}\{(-?\d+)\}\{(-?\d+)\}")
_PAGES = re.compile(r"Output written on .*?\((\d+) pages?")
PAGE_W_SP = 8.5 * 72.27 * 65536  # US letter width in TeX scaled points
PAGE_H_SP = 11 * 72.27 * 65536


@dataclass
class Build:
    """What compiling gave: ok, the PDF, its pages, pages before the references, the longest
    section (name, length in columns) and the lines to print (one per fact)."""

    ok: bool | None  # None: no TeX on PATH, nothing compiled
    pdf: Path | None = None
    pages: int | None = None
    content_pages: int | None = None
    longest: tuple[str, float] | None = None
    lines: list[str] = field(default_factory=list)


def tex_command() -> list[str] | None:
    """The compile command found on PATH (latexmk preferred), or None."""
    if shutil.which("latexmk"):
        return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if shutil.which("pdflatex"):
        return ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    return None


def first_error(log: str) -> str:
    """The first LaTeX error of a log ('./paper.tex:12: Undefined control sequence.'), or ''."""
    for line in log.splitlines():
        if re.match(r"^(\S.*?):\d+: ", line) or line.startswith("! "):
            return line.strip()
    return ""


def positions(aux: str) -> list[tuple[str, float]]:
    """(name, position in columns from the top of page 1) of each \\hwmark, in order."""
    out = []
    for name, page, x, y in _POS.findall(aux):
        column = 1 if int(x) > PAGE_W_SP / 2 else 0
        out.append((name, 2 * (int(page) - 1) + column + (1 - int(y) / PAGE_H_SP)))
    return out


def longest_section(aux: str) -> tuple[str, float] | None:
    """The section whose text spans the most columns (from its heading to the next heading or
    the references; floats are left out, they land where LaTeX puts them); None without marks."""
    pos = [(n, at) for n, at in positions(aux) if n != "float"]
    spans = [(name, nxt - at) for (name, at), (_, nxt) in zip(pos, pos[1:]) if name != END_MARK]
    return max(spans, key=lambda s: s[1]) if spans else None


def content_pages(aux: str) -> int | None:
    """The last page holding content: where the references start, or a later page that a figure
    or table of the content floated to."""
    marks = _POS.findall(aux)
    if not any(name == END_MARK for name, *_ in marks):
        return None
    return max(int(p) for name, p, _, _ in marks if name in (END_MARK, "float"))


def compile_tex(tex: Path, timeout: int = TIMEOUT_S) -> Build:
    """Compile `tex` in its folder; never raises for a LaTeX problem (see Build.lines)."""
    cmd = tex_command()
    where = tex.parent
    if cmd is None:
        hint = f"{INSTALL_HINT}, then run `latexmk -pdf {tex.name}` in {where}"
        return Build(None, lines=[f"paper: {tex} written; no LaTeX on PATH to compile it: {hint}"])
    runs = 1 if cmd[0] == "latexmk" else 2
    log_path = tex.with_suffix(".log")
    try:
        for _ in range(runs):
            proc = subprocess.run(
                [*cmd, tex.name], cwd=where, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
            if proc.returncode:
                break
    except subprocess.TimeoutExpired:
        return Build(False, lines=[f"error: {cmd[0]} took over {timeout} s on {tex}; log: {log_path}"])
    log = log_path.read_text(errors="replace") if log_path.exists() else proc.stdout
    if proc.returncode:
        err = first_error(log) or first_error(proc.stdout) or f"{cmd[0]} exited {proc.returncode}"
        return Build(False, lines=[f"error: {tex.name} did not compile: {err} (log: {log_path})"])
    pdf = tex.with_suffix(".pdf")
    m = _PAGES.findall(log)
    aux_path = tex.with_suffix(".aux")
    aux = aux_path.read_text(errors="replace") if aux_path.exists() else ""
    b = Build(True, pdf, int(m[-1]) if m else None, content_pages(aux), longest_section(aux))
    b.lines.append(f"paper: {pdf} ({b.pages} pages, {b.content_pages} before the references; limit {PAGE_LIMIT})")
    if b.content_pages and b.content_pages > PAGE_LIMIT:
        name, cols = b.longest or ("?", 0.0)
        b.lines.append(
            f"warning: {b.content_pages} pages before the references, over the "
            f"{PAGE_LIMIT}-page limit; the longest section is '{name}' "
            f"(about {cols:.1f} columns): shorten it"
        )
    return b
