"""`python -m hw_hparams.bench`: seconds per epoch of the classic pipeline and of ours, side by side.

Measures, in one invocation on the same CIFAR-shaped random data (each in its own process, forked from a
clean server process that imported torch once, so each starts in ~0.1 s rather than ~3 s):
  (a) classic: torchvision CIFAR100 dataset -> PIL -> RandomCrop(32, 4) + RandomHorizontalFlip +
      ToTensor + Normalize -> DataLoader, fp32, eager, `loss.item()` every step;
  (b) our eager path: data on the device, batch-wise crop/flip there, fp32, NCHW, no compile;
  (c) our fast path with the defaults a run gets on that device (trainer.* = auto);
  (d) k runs of (c) at once on the same device (separate processes started together);
  (e) k runs of (c) fused into one network in one process (group.Group, as hydra/launcher=fused).
and prints a Markdown table: s/epoch (median of the timed epochs; for (d) and (e) the epoch time of
each run, all k progressing together), training images per second of epoch time (aggregate over the
k runs), ratio to (a) and to (c) (k runs one after the other keep (c)'s aggregate rate, so "vs (c)"
is also the gain over running them one after another), compile + capture seconds (once per run or
group), peak memory (GPU max_memory_allocated; on the CPU the process's peak RSS), recompilations
after capture, CUDA-reported host synchronisations per epoch, CUDA-graph skips and graph breaks,
and the self-check's relative difference between the compiled and the eager step (capture.prepare;
a fallback to eager is printed under its row). Then the study's critical
path from the measured epoch times at k runs sharing the device: side by side (d), and fused (e).
The measurements run in bench/workers.py; the table and the critical path are drawn by bench/report.py.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import queue as queue_mod
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

from hw_hparams.bench.report import critical_path_seconds, render, study_stages
from hw_hparams.config.errors import ConfigError, OneLineParser, fail
from hw_hparams.runs.folder import write_json
from hw_hparams.study.graph import per_run_times

SMOKE = dict(
    device="cpu", model="tiny", train=256, val=64, batch_size=64, epochs=1, warmup_epochs=0, ks="1,2", workers=0
)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = OneLineParser(
        prog="python -m hw_hparams.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    ap.add_argument("--model", default="mobilenetv2", choices=["mobilenetv2", "mobilenetv1", "tiny"])
    ap.add_argument("--train", type=int, default=40000, help="training images per epoch (default 40000)")
    ap.add_argument("--val", type=int, default=10000, help="validation images per epoch (default 10000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement (default 3)")
    ap.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs before them (default 1)")
    ap.add_argument(
        "--ks", default="1,2,4,6,8", help="runs at once for (d) and (e), comma-separated (default 1,2,4,6,8)"
    )
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the classic pipeline (default 2)")
    ap.add_argument("--pipelines", default="a,b,c,d,e", help="which of a,b,c,d,e to run (default all)")
    ap.add_argument("--compile", default="auto", choices=["auto", "true", "false"], help="trainer.compile for (c)-(e)")
    ap.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="trainer.precision for (c)-(e)"
    )
    ap.add_argument(
        "--channels-last", default="auto", choices=["auto", "true", "false"], help="(c)-(e); auto: per model and device"
    )
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode for (c)-(e) (default reduce-overhead)")
    ap.add_argument(
        "--mixup-alpha",
        type=float,
        default=None,
        help="mixup for (b)-(e) and --verify (default none: crop + flip only)",
    )
    ap.add_argument(
        "--verify", action="store_true", help="first check eager vs compiled step in fp32 (same seed): loss differences"
    )
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per measurement (default 900)")
    ap.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    ap.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="tiny CPU run of every pipeline (CI): " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()),
    )
    args = ap.parse_args(argv)
    if args.cpu_smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    try:
        args.ks = sorted({int(k) for k in args.ks.split(",")})
    except ValueError:
        fail(f"--ks={args.ks!r} is not allowed: comma-separated integers >= 1, e.g. 1,2,4")
    pipelines = set(args.pipelines.split(","))
    for ok, what in [
        (min(args.ks) >= 1, f"--ks={args.ks} is not allowed: integers >= 1"),
        (
            pipelines <= set("abcde") and pipelines,
            f"--pipelines={args.pipelines!r} is not allowed: a subset of a,b,c,d,e",
        ),
        (
            args.train >= args.batch_size >= 1,
            f"--train={args.train} is not allowed: must be >= --batch-size ({args.batch_size}) >= 1",
        ),
        (
            args.val >= 1 and args.epochs >= 1 and args.warmup_epochs >= 0,
            "--val and --epochs must be >= 1, --warmup-epochs >= 0",
        ),
        (args.workers >= 0, "--workers must be >= 0"),
    ]:
        if not ok:
            fail(what)
    args.pipelines = pipelines
    import torch

    from hw_hparams.engine.device import check_available

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        fail(f"--device={args.device!r} is not allowed: one of auto, cpu, cuda, cuda:N")
    try:
        check_available(args.device)
    except ConfigError as err:
        fail(str(err).replace("trainer.device", "--device"))
    return args


def run_processes(kind: str, p: dict, k: int, timeout: float) -> list[dict]:
    """Start `k` measuring processes together (a barrier after their compilation); their results."""
    from hw_hparams.bench.workers import child

    ctx = mp.get_context("forkserver")  # forked from one clean process that imported torch once, not from this one
    ctx.set_forkserver_preload(["hw_hparams.bench.workers"])
    results: mp.Queue = ctx.Queue()
    barrier = ctx.Barrier(k) if k > 1 else None
    threads = max(1, (os.cpu_count() or 1) // k) if p["device"] == "cpu" and k > 1 else None
    procs = [ctx.Process(target=child, args=(kind, p, results, barrier, threads)) for _ in range(k)]
    for proc in procs:
        proc.start()
    out, deadline = [], time.monotonic() + timeout
    while len(out) < k and time.monotonic() < deadline:
        try:
            out.append(results.get(timeout=1.0))
        except queue_mod.Empty:
            if not any(proc.is_alive() for proc in procs) and results.empty():
                break
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    missing = k - len(out)
    out += [
        {"error": f"process gave no result within {timeout} s or died (exit codes {[q.exitcode for q in procs]})"}
    ] * missing
    return out


def summarize(label: str, runs: list[dict], n_train: int) -> dict:
    """One table row from the results of the processes that ran together."""
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {
            "pipeline": label,
            "runs": len(runs),
            "error": errors[0],
            "tracebacks": [r.get("traceback") for r in runs],
        }
    import statistics

    k = sum(r.get("fused", 1) for r in runs)  # runs trained: processes x runs fused in each
    epochs = len(runs[0]["epoch_times"])
    window = max(r["t_end"] for r in runs) - min(r["t_start"] for r in runs)
    return {
        "pipeline": label,
        "runs": k,
        "settings": runs[0]["settings"],
        "s_per_epoch": statistics.median(t for r in runs for t in r["epoch_times"]),
        "images_per_s": k * n_train * epochs / window,
        "compile_s": max(r["compile_s"] for r in runs),
        "peak_memory_bytes": max(r["peak_memory_bytes"] for r in runs),
        "memory_kind": runs[0]["memory_kind"],
        "recompiles": runs[0]["recompiles"] if len(runs) == 1 else _sum_or_none([r["recompiles"] for r in runs]),
        "syncs_per_epoch": runs[0]["syncs_per_epoch"],
        "device_name": runs[0]["device_name"],
        "cudagraph_skips": _sum_or_none([r.get("cudagraph_skips") for r in runs]),
        "graph_breaks": _sum_or_none([r.get("graph_breaks") for r in runs]),
        "self_check": max((r["self_check"] for r in runs if r.get("self_check") is not None), default=None),
        "fallback": next((r["fallback"] for r in runs if r.get("fallback")), None),
        "epoch_times": [r["epoch_times"] for r in runs],
    }


def _sum_or_none(values: list) -> Optional[int]:
    return None if any(v is None for v in values) else sum(values)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    base = dict(
        device=args.device,
        model=args.model,
        train=args.train,
        val=args.val,
        batch_size=args.batch_size,
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        workers=args.workers,
        seed=0,
        eval_batch=1000,
        timeout=args.timeout,
        mixup_alpha=args.mixup_alpha,
    )
    fast = {"compile": args.compile, "precision": args.precision}
    overrides = {} if args.channels_last == "auto" else {"channels_last": args.channels_last == "true"}
    if args.compile_mode:
        overrides["mode"] = args.compile_mode
    plan = []
    if "a" in args.pipelines:
        plan.append(("(a) classic", "classic", base, 1))
    if "b" in args.pipelines:
        plan.append(
            (
                "(b) ours, eager",
                "ours",
                {**base, "trainer": {"compile": "false", "precision": "fp32"}, "overrides": {"channels_last": False}},
                1,
            )
        )
    fast_p = {**base, "trainer": fast, "overrides": overrides}
    if "c" in args.pipelines:
        plan.append(("(c) ours, fast (defaults)", "ours", fast_p, 1))
    if "d" in args.pipelines:
        plan += [
            (f"(d) {k} runs of (c) at once", "ours", fast_p, k)
            for k in args.ks
            if not (k == 1 and "c" in args.pipelines)
        ]
    if "e" in args.pipelines:
        plan += [(f"(e) {k} runs of (c) fused", "ours", {**fast_p, "fused": k}, 1) for k in args.ks if k > 1]
    verify = run_processes("equivalence", fast_p, 1, args.timeout)[0] if args.verify else None
    if verify:
        print(verify.get("traceback") or "", file=sys.stderr)
    rows = []
    for label, kind, p, k in plan:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        rows.append(summarize(label, run_processes(kind, p, k, args.timeout), args.train))
        if "error" in rows[-1]:
            print(rows[-1]["tracebacks"][0] or rows[-1]["error"], file=sys.stderr)
    paths = {}
    stages = study_stages()
    for how, kinds in (("side by side (d)", ("(c)", "(d)")), ("fused (e)", ("(c)", "(e)"))):
        if any("error" not in r and r["pipeline"].startswith(kinds[1]) for r in rows):
            paths[how] = critical_path_seconds(*per_run_times(rows, kinds), stages)
    ok = [r for r in rows if "error" not in r]
    meta = {
        "date": datetime.date.today().isoformat(),
        "device_name": ok[0]["device_name"] if ok else args.device,
        "torch": torch.__version__,
        "command": "python -m hw_hparams.bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        **{k: getattr(args, k) for k in ("model", "batch_size", "train", "val", "epochs", "warmup_epochs", "device")},
    }
    print(render(rows, meta, paths))
    if verify:
        print(
            f"\nEager vs compiled step, fp32, same seed, {args.epochs} epochs (train, val loss per epoch): "
            + (
                f"FAILED: {verify['error']}"
                if "error" in verify
                else f"largest relative difference {verify['max_rel_diff']:.2e}; "
                f"recompilations {verify['recompiles']}; "
                f"eager {[round(x, 6) for x in verify['eager_losses']]}, "
                f"compiled {[round(x, 6) for x in verify['fast_losses']]}"
            )
        )
    if args.out:
        write_json(Path(args.out), {"meta": meta, "rows": rows, "critical_paths": paths, "verify": verify})
    return 1 if len(ok) < len(rows) or (verify and "error" in verify) else 0


if __name__ == "__main__":
    sys.exit(main())
