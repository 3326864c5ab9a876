"""CLI: python -m analysis RUN_OR_SWEEP_DIR... --out DIR  (exit 2 on user errors)."""

from __future__ import annotations

import sys

from analysis import sweep_report
from analysis.cli import run_cli
from hw_hparams.config.errors import OneLineParser


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(
        prog="python -m analysis", description="Tables (Markdown, LaTeX) and figures (PNG, PDF) from run folders."
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_SWEEP_DIR",
        help="run folders or folders containing run folders (searched recursively)",
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--no-figures", action="store_true", help="write only CSVs and tables")
    p.add_argument(
        "--demo", action="store_true", help="mark every figure 'demo: generated data' (runs of a demo study)"
    )
    sweep = p.add_argument_group("by the keys a sweep varied (dotted config keys, e.g. optim.lr)")
    sweep.add_argument(
        "--by", metavar="KEY,...", help="group runs by these keys (default: every key that varies, seeds pooled)"
    )
    sweep.add_argument(
        "--metric",
        default="val_acc",
        help="metric of the ranking and grid: a history column "
        "(final epoch), best_val_acc or test_acc/test_loss (default: val_acc)",
    )
    sweep.add_argument(
        "--pivot",
        metavar="ROW_KEY,COL_KEY",
        help="a grid of the metric, rows x columns (Markdown, LaTeX, CSV, heatmap)",
    )
    sweep.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs whose config has this value (repeatable: all must hold)",
    )
    args = p.parse_args(argv)
    keys = {"by": args.by, "metric": args.metric, "pivot": args.pivot, "where": args.where}
    written = run_cli(
        lambda: sweep_report.write(args.paths, args.out, **keys, figures=not args.no_figures, demo=args.demo)
    )
    if written is None:
        return 2
    n = sum(len(v) for v in written.values())
    counts = ", ".join(f"{len(v)} {k}" for k, v in written.items())
    print(f"wrote {n} files to {args.out} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
