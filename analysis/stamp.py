"""report.md and paper.tex carry a stamp: a first line with the SHA-256 of the rest of the file.

A person may edit either file. Before a rebuild overwrites one, its stamp is checked: a file whose
text no longer matches its stamp (or that has none, as one written before stamps) holds edits the
rebuild would lose, so the rebuild stops before writing anything, unless asked to `force`: then each
such file is first renamed beside itself (paper.edited-<time>.tex), never deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

# The stamp line per file type: the comment syntax around 'generated sha256=<hex>'.
COMMENTS = {".md": ("<!-- ", " -->"), ".tex": ("% ", "")}
STAMP = re.compile(r"generated sha256=([0-9a-f]{64})")


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def write(path: Path, body: str) -> None:
    """Write `body` to `path` with its stamp line first (in the comment syntax of `path`'s type),
    atomically: an interrupted build leaves the old file or the new one, never a torn one that
    would read as edited."""
    start, end = COMMENTS[path.suffix]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{start}generated sha256={_digest(body)}{end}\n{body}", encoding="utf-8")
    os.replace(tmp, path)


def edited(path: Path) -> bool:
    """Whether `path` exists and its text is not what its stamp says was written (no stamp: edited)."""
    if not path.is_file():
        return False
    first, _, body = path.read_text(encoding="utf-8", errors="replace").partition("\n")
    m = STAMP.search(first)
    return m is None or m[1] != _digest(body)


def set_aside(path: Path) -> Path:
    """Rename `path` to <stem>.edited-<local time><suffix> beside it (a free name); the new path."""
    stem = f"{path.stem}.edited-{time.strftime('%Y%m%d-%H%M%S')}"
    dest, n = path.with_name(stem + path.suffix), 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{stem}-{n}{path.suffix}")
    path.rename(dest)
    return dest
