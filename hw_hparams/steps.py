"""The training and evaluation steps of k runs fused in one network (`Group`), compiled where the
device allows; the same semantics as the eager path in engine.py. A single run is a group of one.

Settings (each resolved per device from `trainer.*`, see `resolve_settings`):
- compile (`trainer.compile`, auto = on for CUDA): `torch.compile(mode="reduce-overhead")` over the
  batch forward (augmentation, mixup, model, loss, metrics; its backward is compiled with it), over
  the optimizer step and over the evaluation batch, so on CUDA each runs as a CUDA graph. Compilation
  and capture happen once per group in `prepare` (timed, logged, and undone: weights and momentum
  are restored; no run's generator is touched), never inside an epoch.
- precision (`trainer.precision`, auto = bf16 autocast on CUDA, fp32 elsewhere).
- channels_last: per device and model, from measurements (CHANNELS_LAST).

Graph-safe details: every random draw is an input tensor made outside the graph by the run's own
generators (draws.py), so a CUDA graph holds no random number generation; the learning rates are
device tensors written in place each epoch (no recompilation); the epoch's last, smaller batch runs
eagerly on the same model and optimizer state (no second graph, no dynamic shapes); metrics stay on
the device until the epoch ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from .config import flag
from .data import Normalize, Split
from .data.augment import PAD
from .draws import RunRandom, init_weights, stack_plans
from .engine import EVAL_BATCH, EpochMetrics, eval_batch, run_train_epoch, sgd_step, train_forward
from .engine import evaluate as evaluate_eager
from .fusion import fuse
from .models import build_model
from .optim import FusedSGD

log = logging.getLogger(__name__)

# torch.compile backend; tests swap in "aot_eager" (same graphs, no code generation) to stay fast.
COMPILE_BACKEND: Union[str, Callable] = "inductor"
COMPILE_MODE = "reduce-overhead"  # CUDA graphs on CUDA; plain Inductor on the CPU
WARMUP_CALLS = 3  # cudagraph trees: 1st call compiles and warms up, 2nd records, 3rd replays
# (device type, model) -> channels_last (else NCHW). CPU, fp32 training at batch 128: mobilenetv2
# 1.3-1.8x faster in every measurement; mobilenetv1 anywhere from 0.2x to 1.25x, tiny 0.88x, so NCHW.
# On the H100 NCHW was faster for mobilenetv2 in bf16 with CUDA graphs (the reference H100 figures in BENCHMARKS.md).
CHANNELS_LAST = {("cpu", "mobilenetv2"): True}


@dataclass(frozen=True)
class Settings:
    compile: bool
    bf16: bool
    channels_last: bool
    mode: Optional[str] = COMPILE_MODE
    backend: Union[str, Callable] = "inductor"
    eager_fallback: bool = False  # trainer.compile=auto: a step that fails to compile runs eagerly instead

    def describe(self) -> str:
        parts = [f"compile={self.mode or self.backend}" if self.compile else "eager", "bf16" if self.bf16 else "fp32"]
        return ", ".join(parts + ["channels_last" if self.channels_last else "NCHW"])


def resolve_settings(trainer_cfg: Any, device: torch.device, model_name: str, **overrides: Any) -> Settings:
    """The settings for `device` from `trainer.compile` / `trainer.precision` (auto = fast path on
    CUDA, plain eager fp32 on the CPU); keyword overrides (the benchmark's) win."""
    cuda = device.type == "cuda"
    precision = str(trainer_cfg.precision).lower()
    settings = Settings(
        compile=flag(trainer_cfg.compile, cuda),
        bf16=precision == "bf16" or (precision == "auto" and cuda),
        channels_last=CHANNELS_LAST.get((device.type, model_name), False),
        backend=COMPILE_BACKEND,
        eager_fallback=str(trainer_cfg.compile).lower() == "auto",
    )
    settings = dataclasses.replace(settings, **overrides)
    return settings if settings.backend == "inductor" else dataclasses.replace(settings, mode=None)


@dataclass
class RunSpec:
    """What differs between the runs of a group: everything of a run but the shared network shape."""

    seed: int
    momentum: float
    weight_decay: float
    crop_flip: bool
    mixup_alpha: Optional[float]


def run_spec(cfg: Any) -> RunSpec:
    return RunSpec(int(cfg.seed), float(cfg.optim.momentum), float(cfg.optim.weight_decay),
                   bool(cfg.augmentation.crop_flip), cfg.augmentation.mixup_alpha)


@dataclass
class Group:
    """k runs as one fused network: its model, optimizer and steps, and each run's own generators.
    Use `train_epoch`, `evaluate`, `prepare`."""

    model: nn.Module  # fusion.fuse of the runs' networks (model.k copies)
    optimizer: FusedSGD
    normalize: Normalize
    settings: Settings
    batch_size: int
    runs: list[RunSpec]
    randoms: list[RunRandom]
    compile_time_s: float = 0.0
    prepared: bool = False
    eager_step: Callable = field(init=False)
    fast_step: Optional[Callable] = field(init=False, default=None)
    fast_eval: Optional[Callable] = field(init=False, default=None)

    def __post_init__(self) -> None:
        model, s = self.model, self.settings
        log.info("training step: %s%s", s.describe(), f", {model.k} runs fused" if model.k > 1 else "")

        def forward(*batch):
            return train_forward(model, self.normalize, s.bf16, s.channels_last, *batch)

        self.eager_step = sgd_step(self.optimizer, forward)
        if not s.compile:
            return
        compiled_forward = torch.compile(forward, backend=s.backend, mode=s.mode, dynamic=False)
        compiled_update = torch.compile(self.optimizer.step, backend=s.backend, mode=s.mode, dynamic=False)
        compiled_eval = torch.compile(
            lambda images, labels: eval_batch(model, self.normalize, s.bf16, s.channels_last, images, labels),
            backend=s.backend, mode=s.mode, dynamic=False,
        )

        def new_step(fn):  # tell cudagraph trees that the previous step's outputs are consumed
            def call(*args):
                torch.compiler.cudagraph_mark_step_begin()
                return fn(*args)
            return call

        self.fast_step = sgd_step(self.optimizer, new_step(compiled_forward), compiled_update)
        self.fast_eval = new_step(compiled_eval)

    @property
    def k(self) -> int:
        return self.model.k

    def dropout_masks(self, size: int) -> Optional[torch.Tensor]:
        """The runs' dropout masks [k, size, width] for one batch, each from its own generator (None: no dropout)."""
        net = self.model
        if net.dropout <= 0:
            return None
        return torch.stack([r.dropout_mask((size, net.width), net.dropout) for r in self.randoms])


def build_group(model_name: str, runs: list[RunSpec], device: torch.device, normalize: Normalize, settings: Settings, batch_size: int) -> Group:
    """A group of fresh runs: each network initialised from its own seed, fused; the optimizer's
    momentum and weight decay per run (learning rates are set per epoch: FusedSGD.set_lr)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution kernels once
    networks = [init_weights(lambda: build_model(model_name), r.seed) for r in runs]
    model = fuse(networks).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = FusedSGD(model, len(runs), [r.momentum for r in runs], [r.weight_decay for r in runs])
    randoms = [RunRandom(r.seed, device) for r in runs]
    return Group(model, optimizer, normalize, settings, batch_size, runs, randoms)


def train_epoch(group: Group, split: Split, bar: Optional[Any] = None) -> list[EpochMetrics]:
    """One pass over `split` for every run of the group, each in its own fresh random order."""
    group.model.train()
    plans = [r.epoch_plan(len(split), group.batch_size, s.crop_flip, s.mixup_alpha) for r, s in zip(group.randoms, group.runs)]
    plan = stack_plans(plans, split.images.device)
    if group.fast_step is not None and not group.prepared:
        prepare(group, split)
    step = group.fast_step or group.eager_step
    return run_train_epoch(split, plan, group.batch_size, step, group.eager_step, group.dropout_masks, bar)


def evaluate(group: Group, split: Split) -> list[EpochMetrics]:
    """Each run's mean loss and accuracy over `split` in eval mode (see engine.evaluate)."""
    s = group.settings
    return evaluate_eager(group.model, split, group.normalize, s.bf16, s.channels_last, group.fast_eval)


@contextlib.contextmanager
def _state_restored(model: nn.Module, optimizer: FusedSGD):
    """Weights, buffers and momentum copied back in place (same storage: graphs stay valid)."""
    tensors = [*model.parameters(), *model.buffers(), *optimizer.buffers.values()]
    saved = [t.detach().clone() for t in tensors]
    training = model.training
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        optimizer.zero_grad()
        model.train(training)


def prepare(group: Group, train: Split, val: Optional[Split] = None) -> float:
    """Compile and capture the steps now (once per group; a no-op when eager or already done) by
    running them on real images with neutral draws, then undo every effect. Returns (and logs) the
    seconds it took."""
    if group.fast_step is None or group.prepared:
        return 0.0
    start = time.perf_counter()
    try:
        _capture(group, train, val)
    except Exception as err:  # noqa: BLE001 - any compiler failure; re-raised when compile was asked for
        if not group.settings.eager_fallback:
            raise
        log.warning(
            "could not compile the training step (%s: %s); training eagerly (trainer.compile=false skips the attempt)",
            type(err).__name__, " ".join(str(err).split())[:200],
        )
        group.fast_step = group.fast_eval = None
        return 0.0
    group.compile_time_s = time.perf_counter() - start
    group.prepared = True
    log.info("compiled and captured the training step in %.1f s (once per run)", group.compile_time_s)
    return group.compile_time_s


def _capture(group: Group, train: Split, val: Optional[Split]) -> None:
    """Run the compiled steps WARMUP_CALLS times on real batches (no crop, no mixup, dropout keeping
    everything), then restore every state they touched."""
    device, k, b = train.images.device, group.k, group.batch_size
    with _state_restored(group.model, group.optimizer):
        if len(train) >= b:
            group.model.train()
            images, labels = train.images[:b].repeat(k, 1, 1, 1, 1), train.labels[:b].repeat(k, 1)  # laid out as real batches
            top, left = torch.full((k, b), PAD, device=device), torch.full((k, b), PAD, device=device)  # not one tensor twice:
            flip = torch.zeros(k, b, dtype=torch.bool, device=device)
            lam, perm = torch.ones(k, device=device), torch.arange(b, device=device).repeat(k, 1)
            net = group.model
            masks = torch.ones(k, b, net.width, device=device) if net.dropout > 0 else None
            for _ in range(WARMUP_CALLS):
                group.fast_step(images, labels, top, left, flip, lam, perm, masks)  # aliasing is guarded on
        if val is not None and len(val) >= EVAL_BATCH:
            group.model.eval()
            with torch.no_grad():
                for _ in range(WARMUP_CALLS):
                    group.fast_eval(val.images[:EVAL_BATCH], val.labels[:EVAL_BATCH])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
