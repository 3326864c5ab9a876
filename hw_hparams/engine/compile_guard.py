"""Whether the compiled training step can be trusted, and what a run records about it.

- `TOLERANCE`: after capture, one batch is trained by the compiled and by the eager step from the
  same state (`self_check`); the losses, the gradients and the weight updates must agree to within
  this relative difference (of the whole vector, 2-norm) for the run's precision, else the compiled
  step is not used (trainer.compile=auto: eager from a clean state; true: a one-line error).
- `CompileRecord`: what summary.json says under `compile`: the precision, whether the compiled
  steps trained the run, the graphs Dynamo compiled at capture and after it (recompiles, 0
  expected), whether an earlier part's graphs were reused, graph breaks, CUDA-graph skips, compile
  seconds, the self-check and any fallback.
- `reuse_dynamo` / `reset_dynamo`: whether a group reuses the graphs Dynamo holds (a part of equal size)
  or starts from a reset; every reset of Dynamo goes through `reset_dynamo`, so the two never disagree.
- `Snapshot`: every tensor and generator state of a group, to restore a clean state (the capture
  undoes itself with it; a compiled step that fails in epoch 1 restarts the epoch eagerly from it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch

# Relative difference allowed between the compiled and the eager step (float rounding of another
# summation order; fp32 on CUDA multiplies in TF32, bf16 keeps 8 mantissa bits, fp16 11).
TOLERANCE = {"fp32": 1e-2, "bf16": 1e-1, "fp16": 5e-2}


class CompiledStepError(RuntimeError):
    """trainer.compile=true and the compiled step failed its check or raised (one line)."""


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def dynamo_counts() -> dict[str, int]:
    """Process-wide Dynamo/Inductor counters: graphs compiled, graph breaks, CUDA-graph skips."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "cudagraph_skips": int(counters["inductor"]["cudagraph_skips"]),
    }


@dataclass
class CompileRecord:
    precision: str
    compiled: bool = False  # the compiled steps trained the run (False: eager, by setting or by fallback)
    graphs: int = 0  # compiled at capture
    recompiles: int = 0  # compiled after capture
    graph_breaks: int = 0
    cudagraph_skips: int = 0
    compile_s: float = 0.0
    self_check: Optional[dict] = None  # {"max_rel_diff", "tolerance"}
    fallback: Optional[str] = None  # why the run trains eagerly although compiling was asked for
    per_run_bytes: Optional[int] = None  # CUDA memory one run of the group needs (measured at capture)
    reused: bool = False  # the graphs compiled for an earlier part of equal size were reused (none compiled here)
    _start: Optional[dict] = dataclasses.field(default=None, repr=False)
    _captured: Optional[dict] = dataclasses.field(default=None, repr=False)

    def started(self) -> None:
        self._start = dynamo_counts()

    def captured(self, seconds: float) -> None:
        self._captured, self.compile_s, self.compiled = dynamo_counts(), seconds, True
        self.graphs = self._captured["graphs"] - self._start["graphs"]

    def as_dict(self) -> dict[str, Any]:
        if self._start is not None and self.compiled:
            now = dynamo_counts()
            self.recompiles = now["graphs"] - self._captured["graphs"]
            self.graph_breaks = now["graph_breaks"] - self._start["graph_breaks"]
            self.cudagraph_skips = now["cudagraph_skips"] - self._start["cudagraph_skips"]
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}


class Snapshot:
    """Copies of `tensors` (restored in place: same storage, so captured graphs stay valid) and of
    the generators' states (`randoms`: draws.RunRandom)."""

    def __init__(self, tensors: list[torch.Tensor], randoms: list[Any]):
        self.tensors, self.randoms = tensors, randoms
        self.saved = [t.detach().clone() for t in tensors]
        self.states = [r.state() for r in randoms]

    def restore(self) -> None:
        with torch.no_grad():
            for t, s in zip(self.tensors, self.saved):
                t.copy_(s)
        for r, s in zip(self.randoms, self.states):
            r.load_state(s)


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    x, y = (torch.cat([t.detach().double().flatten() for t in ts]) for ts in (a, b))
    scale = max(x.norm().item(), y.norm().item())
    return 0.0 if scale == 0 else (x - y).norm().item() / scale if torch.isfinite(x - y).all() else float("inf")


def self_check(steps: list[Callable], params: list[torch.Tensor], state: Snapshot, batch: tuple) -> float:
    """The largest relative difference, eager `steps[0]` vs compiled `steps[1]` from the same state on
    `batch`, of the runs' losses, the gradients and the weight updates; the state is restored after each."""
    results = []
    for step in steps:
        before = [p.detach().clone() for p in params]
        stats = step(*batch)
        results.append(
            ([stats[:, 0].clone()], [p.grad.clone() for p in params], [p.detach() - b for p, b in zip(params, before)])
        )
        state.restore()
    return max(_rel(a, b) for a, b in zip(*results))


# What Dynamo's caches hold now: the graphs compiled for `key` (a group's settings and tensor shapes), used by
# `groups` groups since they were compiled. A group with the same key (a part of equal size) reuses them; any
# other resets Dynamo, so guards on earlier groups never pile up to its recompile limit (after which it would
# silently run eagerly): at most (Dynamo's recompile limit) - 1 groups share one cache.
_DYNAMO: dict[str, Any] = {}


def reuse_dynamo(key: tuple) -> bool:
    """Make Dynamo's caches this group's: reuse them (True) or reset them (False)."""
    limit = getattr(torch._dynamo.config, "recompile_limit", None) or torch._dynamo.config.cache_size_limit
    reuse = _DYNAMO.get("key") == key and _DYNAMO["groups"] < limit - 1
    if not reuse:
        reset_dynamo()
        _DYNAMO.update(key=key, groups=0)
    _DYNAMO["groups"] += 1
    return reuse


def reset_dynamo() -> None:
    """Drop every graph Dynamo compiled (and Inductor's CUDA-graph trees with them); every reset goes through here."""
    torch._dynamo.reset()
    _DYNAMO.clear()
