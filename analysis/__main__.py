"""CLI: python -m analysis RUN_OR_SWEEP_DIR... --out DIR  (exit 2 on user errors)."""
from __future__ import annotations

import sys

from .cli import OneLineParser, run_cli
from .report import write_all


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(
        prog="python -m analysis",
        description="Tables (Markdown, LaTeX) and figures (PNG, PDF) from run folders.")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR",
                   help="run folders or folders containing run folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--no-figures", action="store_true", help="write only CSVs and tables")
    p.add_argument("--demo", action="store_true",
                   help="mark every figure 'demo: generated data' (runs of a demo study)")
    args = p.parse_args(argv)
    written = run_cli(lambda: write_all(args.paths, args.out, figures=not args.no_figures, demo=args.demo))
    if written is None:
        return 2
    n = sum(len(v) for v in written.values())
    counts = ", ".join(f"{len(v)} {k}" for k, v in written.items())
    print(f"wrote {n} files to {args.out} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
