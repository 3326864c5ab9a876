"""The bench's report: the study's critical path from measured epoch times, and the Markdown table.

A row (bench.summarize) holds one pipeline's figures: s_per_epoch (seconds per epoch of each run),
images_per_s (aggregate training images per second), compile_s, peak_memory_bytes, recompiles,
syncs_per_epoch, cudagraph_skips, graph_breaks, self_check (relative difference), fallback.
"""

from __future__ import annotations

from hw_hparams.study.graph import epoch_time_at


def study_stages() -> tuple[tuple[str, int, int], ...]:
    """The homework's plan with fused runs and speculation (study/plan.py), as (parts, epochs, runs)
    per training stage: the stages on the study's critical path."""
    from hw_hparams.study.plan import label, make_plan
    from hw_hparams.study.sweeps import check

    plan = make_plan("fused", "true", lambda p: check([f"experiment={p.section}", "hydra/launcher=fused"]))
    return tuple(
        (
            " + ".join(label(p) for p in st.parts),
            max(e for p in st.parts for e in plan.epochs(p)),
            sum(len(plan.runs[p]) for p in st.parts),
        )
        for st in plan.stages
        if not st.test
    )


def critical_path_seconds(per_run: dict[int, float], compile_s: float, stages) -> dict:
    """Wall time of the study's `stages` (study_stages()) run one after another, each stage's runs
    together (side by side or fused: `per_run` maps k to the epoch time each run has with k
    together); every stage pays one compilation (its runs compile in parallel, or once for a fused group)."""
    parts, total = [], 0.0
    for name, epochs, k in stages:
        t, how = epoch_time_at(per_run, k)
        seconds = epochs * t + compile_s
        parts.append(
            {"stage": name, "epochs": epochs, "runs_at_once": k, "s_per_epoch": t, "how": how, "seconds": seconds}
        )
        total += seconds
    return {"stages": parts, "compile_s_per_stage": compile_s, "total_s": total}


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def render(rows: list[dict], meta: dict, paths: dict[str, dict]) -> str:
    """The Markdown report: header lines, the table, the critical paths (by how each stage's runs share the
    device)."""
    lines = [
        f"Benchmark {meta['date']} on {meta['device_name']}, torch {meta['torch']}; model {meta['model']}, "
        f"batch {meta['batch_size']}, {meta['train']} train + {meta['val']} val images per epoch; "
        f"median of {meta['epochs']} timed epochs after {meta['warmup_epochs']} untimed.",
        f"Command: `{meta['command']}`",
        "",
        "| pipeline | settings | s / epoch | img / s | vs (a) | vs (c) | compile + capture s | peak memory "
        "| recompiles | syncs / epoch | cudagraph skips | graph breaks | self-check diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = next((r.get("images_per_s") for r in rows if r["pipeline"].startswith("(a)")), None)
    one = next((r.get("images_per_s") for r in rows if r["pipeline"].startswith("(c)")), None)
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['pipeline']} | FAILED: {r['error'][:200]} | | | | | | | | | | | |")
            continue
        ratio = f"{r['images_per_s'] / base:.2f}x" if base else "-"
        gain = f"{r['images_per_s'] / one:.2f}x" if one else "-"
        mem = f"{r['peak_memory_bytes'] / 2**30:.2f} GiB ({r['memory_kind']})"
        lines.append(
            f"| {r['pipeline']} | {r['settings']} | {r['s_per_epoch']:.3f} | {r['images_per_s']:.0f} | {ratio} "
            f"| {gain} | {r['compile_s']:.1f} | {mem} | {_fmt(r['recompiles'], 'd')} "
            f"| {_fmt(r['syncs_per_epoch'], 'd')} | {_fmt(r.get('cudagraph_skips'), 'd')} "
            f"| {_fmt(r.get('graph_breaks'), 'd')} | {_fmt(r.get('self_check'), '.1e')} |"
        )
        if r.get("fallback"):
            lines.append(f"|  | fell back to eager: {r['fallback'][:200]} | | | | | | | | | | | |")
    for how, p in paths.items():
        lines += [
            "",
            f"Study critical path, each stage's runs {how} ({p['compile_s_per_stage']:.0f} s compile per stage):",
        ]
        for s in p["stages"]:
            lines.append(
                f"- {s['stage']}: {s['epochs']} epochs x {s['s_per_epoch']:.3f} s "
                f"(k={s['runs_at_once']} runs; {s['how']}) = {s['seconds'] / 60:.1f} min"
            )
        lines.append(f"- total: {p['total_s'] / 60:.1f} min (target <= 20 min on one H100)")
    return "\n".join(lines)
