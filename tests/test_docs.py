"""The README stays a short tour that leads to the docs: a few screens, no dated measurements (those
live in BENCHMARKS.md and docs/), every relative link names a file that exists, and every docs page
is linked from it. (Links between docs pages, their anchors and mkdocs.yml's nav are checked by
`mkdocs build --strict` in CI.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250  # a few screens; what does not fit belongs on a docs page
LINK = re.compile(r"\]\(([^)\s]+)\)")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_the_readme_is_a_few_screens_without_dated_measurements():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"README.md has {len(text.splitlines())} lines: move detail to docs/"
    assert not DATE.findall(text), f"dated measurements belong in BENCHMARKS.md or docs/: {DATE.findall(text)}"


def test_the_readme_links_every_docs_page_and_each_relative_link_names_a_file():
    for readme in (README, ROOT / "outputs" / "README.md"):
        for target in _relative_links(readme.read_text(encoding="utf-8")):
            assert (readme.parent / target.split("#")[0]).is_file(), f"{readme.name} links to missing {target}"
    linked = {t.split("#")[0] for t in _relative_links(README.read_text(encoding="utf-8"))}
    # docs/index.md is the docs' home; docs/benchmarks.md is BENCHMARKS.md included whole
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if p.name not in ("index.md", "benchmarks.md")}
    assert pages and pages | {"BENCHMARKS.md"} <= linked, f"not linked from README.md: {sorted(pages - linked)}"
