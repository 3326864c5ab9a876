"""report/author.md: the parts of the report a person writes (name, affiliation, discussion).

The file is the person's: `python -m analysis.paper` creates it once, with a `## <part>` heading
and a TODO line per part, and never writes it again. Every build reads it and puts each written
part where its TODO box was, in report.md and paper.tex alike; a part still starting with
TODO(author), or empty, stays a TODO box. The text is plain: a blank line between paragraphs,
$...$ for math, `code`, **bold**, [@key] for a reference of the report's list; everything else is
shown as typed (escaped), so nothing in it can break the paper but its math. A heading that names no
part, or text before the first heading, is an error (AnalysisError): it would be text that shows nowhere.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from analysis.read.runs import AnalysisError
from analysis.render.document import TODO_MARK, Bold, Cite, Code, Document, Math, Para, Todo

FILE = "author.md"
#: The title page's parts: (key, what the TODO asks, the placeholder shown until it is written).
HEAD = (
    ("author", "your name (several authors: one line, separated by commas)", "Author Name (TODO)"),
    ("affiliation", "your institution", "Affiliation (TODO)"),
)
HEADING = re.compile(r"^## +(\S.*?)\s*$")
COMMENT = re.compile(r"<!--.*?-->", re.S)
INLINE = re.compile(r"\$([^$\n]+)\$|`([^`\n]+)`|\*\*([^*\n]+)\*\*|\[@([A-Za-z0-9_:.-]+)\]")


def template(doc: Document) -> str:
    """author.md as first written: how to use it, then every part of `doc` with its TODO line."""
    asks = {k: ask for k, ask, _ in HEAD} | {t.key: t.text for t in doc.blocks if isinstance(t, Todo)}
    head = (
        "<!-- Your parts of report.md and paper.tex: replace each TODO line with your text. Every\n"
        "`python -m analysis.paper` puts them in both files; it never writes this file again.\n"
        "Plain text: a blank line between paragraphs, $...$ for math, `code`, **bold**, and [@key] to\n"
        "cite one of: " + ", ".join(doc.references) + ". -->\n"
    )
    return head + "".join(f"\n## {k}\n\n{TODO_MARK}: {asks[k]}\n" for k in parts_of(doc))


def read(path: Path, doc: Document) -> dict[str, str]:
    """{part: its text as written} of author.md (comments dropped); AnalysisError for a heading that
    names none of `doc`'s parts, a part written twice, or text that belongs to no part."""
    known = parts_of(doc)
    parts: dict[str, list[str]] = {}
    current = None
    text = COMMENT.sub(lambda m: "\n" * m[0].count("\n"), path.read_text(encoding="utf-8"))  # keeps line numbers
    for number, line in enumerate(text.splitlines(), 1):
        m = HEADING.match(line)
        if m:
            current = m[1]
            if current not in known:
                near = difflib.get_close_matches(current, known, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise AnalysisError(
                    f"{path}: '## {current}' is not a part of this report{hint}; parts: {', '.join(known)}"
                )
            if current in parts:
                raise AnalysisError(f"{path}: '## {current}' appears twice; keep one")
            parts[current] = []
        elif current is None and line.strip():
            raise AnalysisError(f"{path}:{number}: text before the first '## part' heading belongs to no part")
        elif current is not None:
            parts[current].append(line)
    for key, text in parts.items():
        for ref in re.findall(r"\[@([^\]]*)\]", "\n".join(text)):
            if ref not in doc.references:
                raise AnalysisError(
                    f"{path}: [@{ref}] in '## {key}' is no reference of the report; "
                    f"references: {', '.join(doc.references)}"
                )
    return {k: "\n".join(v).strip() for k, v in parts.items()}


def written(text: str | None) -> bool:
    """Whether a part holds the author's text (not empty, not still the TODO line)."""
    return bool(text) and not text.startswith(TODO_MARK)


def paragraphs(text: str) -> list[Para]:
    """The author's text as Para blocks: paragraphs at blank lines, inline markup as in the module doc."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        line = " ".join(block.split())
        parts, at = [], 0
        for m in INLINE.finditer(line):
            parts.append(line[at : m.start()])
            math, code, bold, cite = m.groups()
            parts.append(Math(math) if math else Code(code) if code else Bold(bold) if bold else Cite(cite))
            at = m.end()
        parts.append(line[at:])
        out.append(Para(*[p for p in parts if p != ""]))
    return out


def fill(doc: Document, parts: dict[str, str]) -> list[str]:
    """Put the written parts into `doc`: the title page's, and each Todo block replaced by the
    author's paragraphs; a part not written keeps its placeholder, or its TODO box with the text the
    author left after TODO(author). Returns the parts still to write, in the report's order."""
    todo = []
    for key, _, placeholder in HEAD:
        text = parts.get(key)
        setattr(doc, key, ", ".join(text.splitlines()) if written(text) else placeholder)
        todo += [] if written(text) else [key]
    blocks = []
    for b in doc.blocks:
        if not isinstance(b, Todo):
            blocks.append(b)
            continue
        text = parts.get(b.key)
        if written(text):
            blocks += paragraphs(text)
        else:
            todo.append(b.key)
            said = " ".join((text or "").removeprefix(TODO_MARK).lstrip(":").split())
            blocks.append(Todo(b.key, said or b.text))
    doc.blocks = blocks
    return todo


def parts_of(doc: Document) -> list[str]:
    """Every part of `doc` an author writes, in order: the title page's, then its Todo blocks'."""
    return [k for k, _, _ in HEAD] + [t.key for t in doc.blocks if isinstance(t, Todo)]
