"""`python -m hw_hparams.bench.search`: what a median pruner saves a search, in one invocation.

The same search (hydra/sweeper=search over a log-uniform learning rate, TPE seeded alike, trials one at a
time) runs twice on generated CIFAR-shaped data and the tiny model: unpruned (`pruner=none`) and with
`hydra/sweeper/pruner=median`. For each: epochs trained (summed over its run folders), wall time, trials
pruned, the best value. The noise: the unpruned best's setting trained again with other seeds (the
objective's sample standard deviation over its seeds, ddof=1); the pruned best is within noise when it is
behind the unpruned best by at most two of those. Prints a Markdown table (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hw_hparams.config.errors import OneLineParser
from hw_hparams.data.fake import write_fake_cifar100

SPACE = "optim.lr=tag(log, interval(0.0003, 3.0))"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = OneLineParser(prog="python -m hw_hparams.bench.search", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_search"), help="folder for data and both sweeps")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train", type=int, default=1500, help="generated training images (default 1500)")
    ap.add_argument("--val", type=int, default=500, help="of which validation images (default 500)")
    ap.add_argument("--metric", default="val_acc", help="objective.metric (default val_acc)")
    ap.add_argument("--startup", type=int, default=4, help="the median pruner's n_startup_trials (default 4)")
    ap.add_argument("--warmup", type=int, default=1, help="the median pruner's n_warmup_steps (default 1)")
    ap.add_argument("--noise-seeds", type=int, default=3, help="more seeds of the unpruned best (default 3)")
    return ap.parse_args(argv)


def train(args: argparse.Namespace, *overrides: str) -> float:
    """`python -m hw_hparams.train` with the benchmark's common overrides; wall seconds (fails loudly)."""
    common = [
        "model=tiny",
        "batch_size=100",
        f"epochs={args.epochs}",
        "trainer.device=cpu",
        "trainer.progress=false",
        f"data.root={args.out / 'data'}",
        "data.verify_checksums=false",
        "data.download=false",
        f"data.val_size={args.val}",
        f"objective.metric={args.metric}",
    ]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hw_hparams.train", "-m", *common, *overrides], check=True)
    return time.perf_counter() - start


def search(args: argparse.Namespace, name: str, pruner: list[str]) -> dict:
    sweep = args.out / name
    wall = train(
        args,
        "hydra/sweeper=search",
        SPACE,
        f"hydra.sweeper.n_trials={args.trials}",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweep.dir={sweep}",
        *pruner,
    )
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    return {
        "name": name,
        "epochs": sum(s["epochs_completed"] for s in summaries),
        "wall_s": wall,
        "pruned": sum(s["status"] == "pruned" for s in summaries),
        "best": float(best["best_value"]),
        "best_params": best["best_params"],
    }


def noise(args: argparse.Namespace, params: dict, best: float) -> float:
    """The objective's standard deviation over seeds (0 and `--noise-seeds` more) of the setting `params`."""
    folder = args.out / "noise"
    seeds = ",".join(str(s) for s in range(1, args.noise_seeds + 1))
    train(args, *(f"{k}={v!r}" for k, v in params.items()), f"seed={seeds}", f"hydra.sweep.dir={folder}")
    values = [best]
    for p in folder.glob("*/history.csv"):
        rows = p.read_text().splitlines()
        header, last = rows[0].split(","), rows[-1].split(",")
        values.append(float(last[header.index(args.metric)]))
    return statistics.stdev(values)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else the machine's architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.absolute()
    if not (args.out / "data").is_dir():
        write_fake_cifar100(args.out / "data", train=args.train, test=100, seed=0)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    median = [
        "hydra/sweeper/pruner=median",
        f"hydra.sweeper.pruner.n_startup_trials={args.startup}",
        f"hydra.sweeper.pruner.n_warmup_steps={args.warmup}",
    ]
    unpruned, pruned = search(args, "unpruned", []), search(args, "median", median)
    sd = noise(args, unpruned["best_params"], unpruned["best"])
    sign = 1 if args.metric.endswith("_acc") else -1
    behind = sign * (unpruned["best"] - pruned["best"])
    print(f"\n{datetime.date.today()}, {cpu_name()}, {os.cpu_count()} cores:")
    print(f"python -m hw_hparams.bench.search {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print(f"| search | epochs trained | wall time (s) | trials pruned | best {args.metric} |")
    print("|---|---|---|---|---|")
    for r in (unpruned, pruned):
        share = f"{r['epochs']} ({r['epochs'] / (args.trials * args.epochs):.0%})"
        print(f"| {r['name']} | {share} | {r['wall_s']:.0f} | {r['pruned']} | {r['best']:.4f} |")
    verdict = "within" if behind <= 2 * sd else "beyond"
    print(f"\nNoise: sd {sd:.4f} over {args.noise_seeds + 1} seeds of the unpruned best {unpruned['best_params']};")
    print(f"the median pruner's best is behind by {behind:.4f}: {verdict} noise (2 sd).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
