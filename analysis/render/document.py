"""A report as a list of blocks, written once and rendered twice: Markdown (report.md) and LaTeX
(paper.tex, in latex.py); the table and figure files are rendered from the same blocks (report.py).

Inline text is a sequence of parts: a plain `str` (always escaped by the renderer, so names from
run folders can never inject markup), `Bold`, `Code`, `Math` (raw TeX), `Ref` (a figure or
table, numbered in order of appearance) and `Cite` (a reference of REFERENCES).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class Bold:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Math:
    tex: str  # raw TeX, inline


@dataclass(frozen=True)
class Ref:
    label: str  # 'fig:<stem>' or 'tab:<name>'


@dataclass(frozen=True)
class Cite:
    key: str


Part = Union[str, Bold, Code, Math, Ref, Cite]
Inline = tuple  # of Part


@dataclass
class Heading:
    text: str
    level: int = 1  # 1: section, 2: subsection


@dataclass(init=False)
class Para:
    parts: Inline  # Para("text ", Ref(...), " more text")

    def __init__(self, *parts: Part) -> None:
        self.parts = parts


@dataclass
class Bullets:
    items: list  # of Inline


@dataclass
class Listing:
    source: str
    origin: str = ""  # where the code comes from, said under it


@dataclass
class Equation:
    tex: str


@dataclass
class Figure:
    stem: str  # figures/<stem>.{png,pdf}
    caption: Inline
    draw: Optional[Callable] = field(default=None, compare=False, repr=False)  # () -> matplotlib figure or None

    @property
    def label(self) -> str:
        return f"fig:{self.stem}"


@dataclass
class Table:
    header: list
    rows: list
    caption: Inline
    name: str  # label 'tab:<name>'
    n_text: int = 1  # leading text columns (left-aligned); the rest are numbers
    title: str = ""  # said first: a table file's heading, the caption's first sentence in a document
    file: str = ""  # tables/<file>.{md,tex} (tables sharing a file follow each other); '': <name>

    @property
    def label(self) -> str:
        return f"tab:{self.name}"


@dataclass
class Todo:
    key: str  # its part of author.md ('## <key>'), where the author writes it (authored.py)
    text: str  # what the author still has to write


@dataclass(init=False)
class Note:
    parts: Inline  # a boxed note (the demo warning), parts as Para's

    def __init__(self, *parts: Part) -> None:
        self.parts = parts


Block = Union[Heading, Para, Bullets, Listing, Equation, Figure, Table, Todo, Note]


@dataclass
class Document:
    title: str
    author: str
    blocks: list = field(default_factory=list)
    affiliation: str = ""
    references: dict = field(default_factory=dict)  # key -> (authors, year, full entry)

    def numbers(self) -> dict[str, int]:
        """Label -> number: figures and tables each numbered in order of appearance."""
        return {b.label: i for kind in (self.figures(), self.tables()) for i, b in enumerate(kind, 1)}

    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]

    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]


TODO_MARK = "TODO(author)"
_MD_SPECIAL = re.compile(r"([\\`*_$<|\[\]])")


def md_escape(text: str) -> str:
    """Plain text for Markdown: backslash before \\ ` * _ $ < | [ ] (no emphasis, math or HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def ref_word(label: str) -> str:
    """'fig:x' -> 'Figure', 'tab:x' -> 'Table'."""
    return "Figure" if label.startswith("fig:") else "Table"


def render_inline(parts: Inline, text, handlers: dict) -> str:
    """Join `parts`: plain strings through `text`, every other part through handlers[type(part)]."""
    return "".join(text(p) if isinstance(p, str) else handlers[type(p)](p) for p in parts)


def md_inline(parts: Inline, doc: Document, numbers: dict[str, int]) -> str:
    def code(p: Code) -> str:
        tick = "``" if "`" in p.text else "`"
        return f"{tick}{p.text}{tick}"

    def cite(p: Cite) -> str:
        authors, year, _ = doc.references[p.key]
        return f"({md_escape(authors)} {year})"

    return render_inline(
        parts,
        md_escape,
        {
            Bold: lambda p: f"**{md_escape(p.text)}**",
            Code: code,
            Math: lambda p: f"${p.tex}$",
            Ref: lambda p: f"{ref_word(p.label)} {numbers.get(p.label, '?')}",
            Cite: cite,
        },
    )


def md_table(t: Table) -> list[str]:
    """The lines of `t` as a GitHub-flavoured table: text columns left-, numbers right-aligned."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [
        "| " + " | ".join(esc(h) for h in t.header) + " |",
        "|" + "|".join(":---" if i < t.n_text else "---:" for i in range(len(t.header))) + "|",
    ]
    return lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in t.rows]


def md_table_file(t: Table, doc: Document, numbers: dict[str, int]) -> str:
    """`t` on its own (tables/<file>.md): its title (else 'Table N') as a heading, the table, the caption."""
    caption = md_inline(t.caption, doc, numbers)
    head = md_escape(t.title) if t.title else f"Table {numbers[t.label]}"
    return "\n".join([f"### {head}", "", *md_table(t), *(["", caption] if caption else [])]) + "\n"


def caption_parts(t: Table) -> Inline:
    """A table's caption in a document: its title as the first sentence, then the caption."""
    return ((t.title + (". " if t.caption else "."),) if t.title else ()) + tuple(t.caption)


def to_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured Markdown (figures as figures/<stem>.png)."""
    num = doc.numbers()
    inl = lambda parts: md_inline(parts, doc, num)  # noqa: E731
    out = [f"# {md_escape(doc.title)}", ""]
    if doc.author:
        out += [" · ".join(md_escape(x) for x in (doc.author, doc.affiliation) if x), ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * (b.level + 1) + " " + md_escape(b.text), ""]
        elif isinstance(b, Para):
            out += [inl(b.parts), ""]
        elif isinstance(b, Bullets):
            out += [f"- {inl(i)}" for i in b.items] + [""]
        elif isinstance(b, Listing):
            fence = "````" if "```" in b.source else "```"
            out += [f"{fence}python", b.source.rstrip(), fence, ""]
            out += [f"_({md_escape(b.origin)})_", ""] if b.origin else []
        elif isinstance(b, Equation):
            out += ["$$", b.tex, "$$", ""]
        elif isinstance(b, Figure):
            out += [
                f"![Figure {num[b.label]}](figures/{b.stem}.png)",
                "",
                f"**Figure {num[b.label]}.** {inl(b.caption)}",
                "",
            ]
        elif isinstance(b, Table):
            out += [f"**Table {num[b.label]}.** {inl(caption_parts(b))}", "", *md_table(b), ""]
        elif isinstance(b, Todo):
            out += [f"> **{TODO_MARK}:** {md_escape(b.text)}", ""]
        elif isinstance(b, Note):
            out += [f"> {inl(b.parts)}", ""]
    if doc.references:
        out += ["## References", ""] + [f"- {md_escape(full)}" for _, _, full in doc.references.values()]
    return "\n".join(out).rstrip() + "\n"
