"""paper.tex from a Document: two columns, 10 pt, US letter, the AAAI page geometry and Times.

With an official AAAI author-kit style (aaai*.sty) the preamble is the kit's; otherwise a look-alike
built from standard packages (article, times, helvet, courier, natbib, caption, booktabs, amsmath,
listings, color, graphicx, url). Every plain string is escaped (tables.latex_escape); code goes
into lstlisting as ASCII. `\\hwmark{name}` records where each section starts (page, x, y) in
paper.aux, so texbuild can say which section is longest.
"""
from __future__ import annotations

import re
from pathlib import Path

from .document import (Bold, Bullets, Cite, Code, Document, Equation, Figure, Heading, Listing,
                       Math, Note, Para, Ref, Table, Todo, caption_parts, ref_word, render_inline)
from .tables import ascii_only, latex_escape, safe_label

END_MARK = "end-of-content"  # \hwmark before the references
FLOAT_MARK = r"\hwmark{float}"  # in every figure and table: the page it lands on is content too

_SHARED = r"""\usepackage{graphicx}
\usepackage{booktabs}
\usepackage{amsmath}
\usepackage{color}
\usepackage{listings}
\lstset{basicstyle=\ttfamily\scriptsize, breaklines=true, columns=fullflexible, keepspaces=true,
  frame=single, framerule=0.3pt, aboveskip=4pt, belowskip=4pt, breakatwhitespace=false,
  postbreak=\mbox{$\hookrightarrow$\space}}
\definecolor{todoframe}{rgb}{0.8,0,0}
\definecolor{todofill}{rgb}{1,0.95,0.85}
\newcommand{\authortodo}[1]{\par\smallskip\noindent\fcolorbox{todoframe}{todofill}{\parbox{%
  \dimexpr\linewidth-2\fboxsep-2\fboxrule\relax}{\small\textbf{TODO (author):} #1}}\par\smallskip}
\newcommand{\boxednote}[1]{\par\noindent\fbox{\parbox{\dimexpr\linewidth-2\fboxsep-2\fboxrule\relax}{%
  \small #1}}\par\smallskip}
\makeatletter
\newcommand{\hwpos}[4]{}
\newcommand{\hwmark}[1]{\pdfsavepos\write\@auxout{\string\hwpos{#1}{\thepage}{\the\pdflastxpos}{\the\pdflastypos}}}
\makeatother
"""

# The look-alike: the page geometry of the AAAI author kit (7 x 9 in of text, 0.375 in between
# columns, 0.75 in margins on US letter, a 2.25 in title box), Times at 10 on 11 pt, its list and
# heading sizes, unnumbered centred section headings; standard LaTeX only.
LOOKALIKE = r"""\documentclass[10pt,twocolumn,letterpaper]{article}
\usepackage{times}
\usepackage{helvet}
\usepackage{courier}
\usepackage[hyphens]{url}
\usepackage{natbib}
\usepackage[font=small,labelfont=bf]{caption}
\setlength{\pdfpagewidth}{8.5in}
\setlength{\pdfpageheight}{11in}
\setlength{\topmargin}{-0.25in}
\setlength{\oddsidemargin}{-0.25in}
\setlength{\evensidemargin}{-0.25in}
\setlength{\textheight}{9.0in}
\setlength{\textwidth}{7.0in}
\setlength{\columnsep}{0.375in}
\setlength{\headheight}{0pt}
\setlength{\headsep}{0pt}
\pagestyle{empty}
\flushbottom
\sloppy
\frenchspacing
\setcounter{secnumdepth}{0}
\setlength{\parindent}{10pt}
\renewcommand{\topfraction}{0.9}
\renewcommand{\bottomfraction}{0.8}
\renewcommand{\textfraction}{0.07}
\renewcommand{\floatpagefraction}{0.8}
\renewcommand{\dbltopfraction}{0.9}
\renewcommand{\dblfloatpagefraction}{0.8}
\makeatletter
\renewcommand\normalsize{\@setfontsize\normalsize\@xpt{11}}
\renewcommand\small{\@setfontsize\small\@ixpt{10}}
\renewcommand\footnotesize{\@setfontsize\footnotesize\@ixpt{10}}
\renewcommand\scriptsize{\@setfontsize\scriptsize\@viipt{8}}
\renewcommand\large{\@setfontsize\large\@xipt{12}}
\renewcommand\Large{\@setfontsize\Large\@xiipt{14}}
\renewcommand\LARGE{\@setfontsize\LARGE\@xivpt{16}}
\normalsize
\renewcommand\section{\@startsection{section}{1}{\z@}{-2.0ex \@plus -0.5ex \@minus -.2ex}%
  {3pt \@plus 2pt \@minus 1pt}{\normalfont\Large\bfseries\centering}}
\renewcommand\subsection{\@startsection{subsection}{2}{\z@}{-2.0ex \@plus -0.5ex \@minus -.2ex}%
  {3pt \@plus 2pt \@minus 1pt}{\normalfont\large\bfseries\raggedright}}
\def\@maketitle{\vbox to 2.25in{\hsize\textwidth\linewidth\hsize\centering
  \vskip 0.625in minus 0.125in{\LARGE\bfseries \@title\par}\vskip 0.1in plus 0.5fil minus 0.05in
  {\Large\bfseries \@author\par}\vskip .5em plus 2fil}}
\makeatother
"""

OFFICIAL = r"""\documentclass[letterpaper]{article}
\usepackage{%(style)s}
\usepackage{times}
\usepackage{helvet}
\usepackage{courier}
\usepackage[hyphens]{url}
\urlstyle{rm}
\def\UrlFont{\rm}
\usepackage{natbib}
\usepackage{caption}
\providecommand{\nocopyright}{}
\nocopyright
\frenchspacing
\setlength{\pdfpagewidth}{8.5in}
\setlength{\pdfpageheight}{11in}
\setcounter{secnumdepth}{0}
"""


def mark_name(heading: str) -> str:
    """A heading as a \\hwmark name: letters, digits, spaces and hyphens only (it goes through \\write)."""
    return re.sub(r"[^A-Za-z0-9 -]", "", heading) or "section"


def breakable(tex: str) -> str:
    """Escaped text with a line-break chance after each / , = . (long commands and paths)."""
    return re.sub(r"([/,=.])", r"\1\\allowbreak{}", tex)


def inline(parts, numbers: dict[str, int]) -> str:
    return render_inline(parts, latex_escape, {
        Bold: lambda p: r"\textbf{" + latex_escape(p.text) + "}",
        Code: lambda p: r"\texttt{" + breakable(latex_escape(p.text)) + "}",
        Math: lambda p: f"${p.tex}$",
        Ref: lambda p: f"{ref_word(p.label)}~\\ref{{{safe_label(p.label)}}}",
        Cite: lambda p: r"\citep{" + p.key + "}"})


def listing(source: str) -> str:
    """Code as an lstlisting body: ASCII, tabs expanded, no line that ends the environment."""
    text = ascii_only(source.expandtabs(4).rstrip())
    return text.replace(r"\end{lstlisting}", r"\end {lstlisting}")


def table_float(t: Table, numbers: dict[str, int], mark: bool = True) -> list[str]:
    """`t` as a booktabs float (table* when wide); `mark`: with FLOAT_MARK (paper.tex's preamble only)."""
    wide = any("±" in str(c) for row in t.rows for c in row) or len(t.header) > 5
    env = "table*" if wide else "table"
    spec = "l" * t.n_text + "r" * (len(t.header) - t.n_text)
    out = [rf"\begin{{{env}}}[tbp]", *[FLOAT_MARK] * mark, r"\centering\small", r"\setlength{\tabcolsep}{4pt}",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(latex_escape(h) for h in t.header) + r" \\", r"\midrule"]
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in t.rows]
    out += [r"\bottomrule", r"\end{tabular}",
            r"\caption{" + inline(caption_parts(t), numbers) + "}" + rf"\label{{{safe_label(t.label)}}}",
            rf"\end{{{env}}}", ""]
    return out


def _block(b, numbers) -> list[str]:
    if isinstance(b, Heading):
        cmd = "section" if b.level == 1 else "subsection"
        mark = [rf"\hwmark{{{mark_name(b.text)}}}"] if b.level == 1 else []
        return [rf"\{cmd}{{{latex_escape(b.text)}}}", *mark, ""]
    if isinstance(b, Para):
        return [inline(b.parts, numbers), ""]
    if isinstance(b, Bullets):
        return [r"\begin{itemize}\setlength{\itemsep}{1pt}\setlength{\parskip}{0pt}"] + \
               [r"\item " + inline(i, numbers) for i in b.items] + [r"\end{itemize}", ""]
    if isinstance(b, Listing):
        out = [r"\begin{lstlisting}", listing(b.source), r"\end{lstlisting}"]
        return out + ([r"{\footnotesize (" + latex_escape(b.origin) + ")}", ""] if b.origin else [""])
    if isinstance(b, Equation):
        return [r"\begin{equation}", b.tex, r"\end{equation}", ""]
    if isinstance(b, Figure):
        return [r"\begin{figure}[tbp]", FLOAT_MARK, r"\centering",
                rf"\includegraphics[width=\columnwidth]{{figures/{b.stem}.pdf}}",
                r"\caption{" + inline(b.caption, numbers) + "}" + rf"\label{{{safe_label(b.label)}}}",
                r"\end{figure}", ""]
    if isinstance(b, Table):
        return table_float(b, numbers)
    if isinstance(b, Todo):
        return [r"\authortodo{" + latex_escape(b.text) + "}", ""]
    if isinstance(b, Note):
        return [r"\boxednote{" + inline(b.parts, numbers) + "}", ""]
    raise TypeError(f"unknown block {b!r}")


def _bibliography(doc: Document) -> list[str]:
    out = [rf"\hwmark{{{END_MARK}}}", r"\begin{thebibliography}{9}"]
    for key, (authors, year, full) in doc.references.items():
        short = latex_escape(f"{authors}({year})")
        out.append(rf"\bibitem[{{{short}}}]{{{key}}} {latex_escape(full)}")
    return out + [r"\end{thebibliography}", ""]


def to_latex(doc: Document, style: Path | None = None) -> str:
    """paper.tex: the official preamble of `style` (an aaai*.sty beside paper.tex) or the look-alike."""
    numbers = doc.numbers()
    pre = OFFICIAL % {"style": style.stem} if style else LOOKALIKE
    author = latex_escape(doc.author)
    head = [pre + _SHARED, rf"\title{{{latex_escape(doc.title)}}}"]
    if style:
        head += [rf"\author{{{author}}}", r"\affiliations{Affiliation (TODO)}"]
    else:
        head += [rf"\author{{{author}\\ \normalsize\mdseries Affiliation (TODO)}}", r"\date{}"]
    body = [r"\begin{document}", r"\maketitle", ""]
    for b in doc.blocks:
        body += _block(b, numbers)
    body += _bibliography(doc) + [r"\end{document}", ""]
    return "\n".join(head + body)
