"""paper.tex from a Document: two columns, 10 pt, US letter, the AAAI page geometry and Times.

With an official AAAI author-kit style (aaai*.sty) the preamble is the kit's; otherwise a look-alike
built from standard packages (preamble/*.tex). Every plain string is escaped (tables.latex_escape); code goes
into lstlisting as ASCII. `\\hwmark{name}` records where each section starts (page, x, y) in
paper.aux, so texbuild can say which section is longest.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from analysis.render.document import (
    Bold,
    Bullets,
    Cite,
    Code,
    Document,
    Equation,
    Figure,
    Heading,
    Listing,
    Math,
    Note,
    Para,
    Ref,
    Table,
    Todo,
    caption_parts,
    ref_word,
    render_inline,
)
from analysis.render.tables import ascii_only, latex_escape, safe_label

END_MARK = "end-of-content"  # \hwmark before the references
FLOAT_MARK = r"\hwmark{float}"  # in every figure and table: the page it lands on is content too


def preamble(name: str) -> str:
    """The text of preamble/<name>.tex (package data), as it is: lookalike (the AAAI kit's page geometry,
    Times at 10 on 11 pt and its heading sizes, from standard LaTeX), official (loads the kit's %(style)s)
    or shared (follows either)."""
    return files(__package__).joinpath("preamble", f"{name}.tex").read_text(encoding="utf-8")


def mark_name(heading: str) -> str:
    """A heading as a \\hwmark name: letters, digits, spaces and hyphens only (it goes through \\write)."""
    return re.sub(r"[^A-Za-z0-9 -]", "", heading) or "section"


def breakable(tex: str) -> str:
    """Escaped text with a line-break chance after each / , = . (long commands and paths)."""
    return re.sub(r"([/,=.])", r"\1\\allowbreak{}", tex)


def inline(parts) -> str:
    """Inline parts as LaTeX: figures and tables by \\ref (LaTeX numbers them)."""
    return render_inline(
        parts,
        latex_escape,
        {
            Bold: lambda p: r"\textbf{" + latex_escape(p.text) + "}",
            Code: lambda p: r"\texttt{" + breakable(latex_escape(p.text)) + "}",
            Math: lambda p: f"${p.tex}$",
            Ref: lambda p: f"{ref_word(p.label)}~\\ref{{{safe_label(p.label)}}}",
            Cite: lambda p: r"\citep{" + p.key + "}",
        },
    )


def listing(source: str) -> str:
    """Code as an lstlisting body: ASCII, tabs expanded, no line that ends the environment."""
    text = ascii_only(source.expandtabs(4).rstrip())
    return text.replace(r"\end{lstlisting}", r"\end {lstlisting}")


def table_float(t: Table, mark: bool = True) -> list[str]:
    """`t` as a booktabs float (table* when wide); `mark`: with FLOAT_MARK (paper.tex's preamble only)."""
    wide = any("±" in str(c) for row in t.rows for c in row) or len(t.header) > 5
    env = "table*" if wide else "table"
    spec = "l" * t.n_text + "r" * (len(t.header) - t.n_text)
    out = [
        rf"\begin{{{env}}}[tbp]",
        *[FLOAT_MARK] * mark,
        r"\centering\small",
        r"\setlength{\tabcolsep}{4pt}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in t.header) + r" \\",
        r"\midrule",
    ]
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in t.rows]
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{" + inline(caption_parts(t)) + "}" + rf"\label{{{safe_label(t.label)}}}",
        rf"\end{{{env}}}",
        "",
    ]
    return out


def _block(b) -> list[str]:
    if isinstance(b, Heading):
        cmd = "section" if b.level == 1 else "subsection"
        mark = [rf"\hwmark{{{mark_name(b.text)}}}"] if b.level == 1 else []
        return [rf"\{cmd}{{{latex_escape(b.text)}}}", *mark, ""]
    if isinstance(b, Para):
        return [inline(b.parts), ""]
    if isinstance(b, Bullets):
        items = [r"\item " + inline(i) for i in b.items]
        return [r"\begin{itemize}\setlength{\itemsep}{1pt}\setlength{\parskip}{0pt}", *items, r"\end{itemize}", ""]
    if isinstance(b, Listing):
        out = [r"\begin{lstlisting}", listing(b.source), r"\end{lstlisting}"]
        return out + ([r"{\footnotesize (" + latex_escape(b.origin) + ")}", ""] if b.origin else [""])
    if isinstance(b, Equation):
        return [r"\begin{equation}", b.tex, r"\end{equation}", ""]
    if isinstance(b, Figure):
        return [
            r"\begin{figure}[tbp]",
            FLOAT_MARK,
            r"\centering",
            rf"\includegraphics[width=\columnwidth]{{figures/{b.stem}.pdf}}",
            r"\caption{" + inline(b.caption) + "}" + rf"\label{{{safe_label(b.label)}}}",
            r"\end{figure}",
            "",
        ]
    if isinstance(b, Table):
        return table_float(b)
    if isinstance(b, Todo):
        return [r"\authortodo{" + latex_escape(b.text) + "}", ""]
    if isinstance(b, Note):
        return [r"\boxednote{" + inline(b.parts) + "}", ""]
    raise TypeError(f"unknown block {b!r}")


def _bibliography(doc: Document) -> list[str]:
    out = [rf"\hwmark{{{END_MARK}}}", r"\begin{thebibliography}{9}"]
    for key, (authors, year, full) in doc.references.items():
        short = latex_escape(f"{authors}({year})")
        out.append(rf"\bibitem[{{{short}}}]{{{key}}} {latex_escape(full)}")
    return out + [r"\end{thebibliography}", ""]


def to_latex(doc: Document, style: Path | None = None) -> str:
    """paper.tex: the official preamble of `style` (an aaai*.sty beside paper.tex) or the look-alike."""
    pre = preamble("official") % {"style": style.stem} if style else preamble("lookalike")
    author, affiliation = latex_escape(doc.author), latex_escape(doc.affiliation)
    head = [pre + preamble("shared"), rf"\title{{{latex_escape(doc.title)}}}"]
    if style:
        head += [rf"\author{{{author}}}", rf"\affiliations{{{affiliation}}}"]
    else:
        head += [rf"\author{{{author}\\ \normalsize\mdseries {affiliation}}}", r"\date{}"]
    body = [r"\begin{document}", r"\maketitle", ""]
    for b in doc.blocks:
        body += _block(b)
    body += _bibliography(doc) + [r"\end{document}", ""]
    return "\n".join(head + body)
