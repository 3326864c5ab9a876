"""A run's training and evaluation steps (`Runner`), compiled where the device allows; the same
semantics as the eager path in engine.py.

Settings (each resolved per device from `trainer.*`, see `resolve_settings`):
- compile (`trainer.compile`, auto = on for CUDA): `torch.compile(mode="reduce-overhead")` over the
  batch forward (augmentation, mixup, model, loss, metrics; its backward is compiled with it) and over
  the optimizer step, so on CUDA each runs as a CUDA graph. Compilation and capture happen once per
  run in `prepare` (timed, logged, and undone: weights, optimizer state and RNG states are restored),
  never inside an epoch.
- precision (`trainer.precision`, auto = bf16 autocast on CUDA, fp32 elsewhere).
- SGD implementation: fused on CUDA when eager; foreach when compiled (Inductor fuses it) and on the CPU.
- channels_last: per device and model, from measurements (CHANNELS_LAST).

Graph-safe details: the learning rate is a device tensor in the param group while an epoch runs
(filled from the float that the scheduler sets, so schedules, checkpoints and logged lrs stay plain
floats and changes never recompile); mixup's lambda is a device tensor input; the epoch's last,
smaller batch runs eagerly on the same model and optimizer state (no second graph, no dynamic shapes);
metrics stay on the device until the epoch ends.
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
from .engine import EVAL_BATCH, EpochMetrics, eval_batch, run_train_epoch, sgd_step, train_forward
from .engine import evaluate as evaluate_eager
from .mixup import sample_mix
from .models import build_model
from .optim import build_optimizer

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
    fused_sgd: bool  # else foreach
    mode: Optional[str] = COMPILE_MODE
    backend: Union[str, Callable] = "inductor"
    eager_fallback: bool = False  # trainer.compile=auto: a step that fails to compile runs eagerly instead

    def describe(self) -> str:
        parts = [f"compile={self.mode or self.backend}" if self.compile else "eager", "bf16" if self.bf16 else "fp32"]
        parts += ["channels_last" if self.channels_last else "NCHW", "sgd " + ("fused" if self.fused_sgd else "foreach")]
        return ", ".join(parts)


def resolve_settings(trainer_cfg: Any, device: torch.device, model_name: str, **overrides: Any) -> Settings:
    """The settings for `device` from `trainer.compile` / `trainer.precision` (auto = fast path on
    CUDA, plain eager fp32 on the CPU); keyword overrides (the benchmark's) win."""
    cuda = device.type == "cuda"
    precision = str(trainer_cfg.precision).lower()
    compile_ = flag(trainer_cfg.compile, cuda)
    settings = Settings(
        compile=compile_,
        bf16=precision == "bf16" or (precision == "auto" and cuda),
        channels_last=CHANNELS_LAST.get((device.type, model_name), False),
        fused_sgd=cuda and not compile_,
        backend=COMPILE_BACKEND,
        eager_fallback=str(trainer_cfg.compile).lower() == "auto",
    )
    settings = dataclasses.replace(settings, **overrides)
    return settings if settings.backend == "inductor" else dataclasses.replace(settings, mode=None)


@dataclass
class Runner:
    """A run's model, optimizer and step functions. Use `train_epoch`, `evaluate`, `prepare`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    normalize: Normalize
    settings: Settings
    batch_size: int
    crop_flip: bool
    mixup_alpha: Optional[float]
    compile_time_s: float = 0.0
    prepared: bool = False
    eager_step: Callable = field(init=False)
    fast_step: Optional[Callable] = field(init=False, default=None)
    fast_eval: Optional[Callable] = field(init=False, default=None)
    lr_tensors: list = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        model, s = self.model, self.settings
        log.info("training step: %s", s.describe())

        def forward(*batch):
            return train_forward(model, self.normalize, self.crop_flip, s.bf16, s.channels_last, *batch)

        self.eager_step = sgd_step(self.optimizer, forward)
        if not s.compile:
            return
        device = next(model.parameters()).device
        self.lr_tensors = [torch.zeros((), device=device) for _ in self.optimizer.param_groups]
        compiled_forward = torch.compile(forward, backend=s.backend, mode=s.mode, dynamic=False)
        compiled_update = torch.compile(lambda: self.optimizer.step(), backend=s.backend, mode=s.mode, dynamic=False)
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


def build_runner(cfg: Any, device: torch.device, normalize: Normalize, **overrides: Any) -> Runner:
    """Model, optimizer and steps for the run of `cfg` (model, optim, batch_size, augmentation, trainer)."""
    settings = resolve_settings(cfg.trainer, device, cfg.model.name, **overrides)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution kernels once
    model = build_model(cfg.model.name, device, settings.channels_last)
    optimizer = build_optimizer(model, cfg.optim, fused=settings.fused_sgd)
    aug = cfg.augmentation
    return Runner(model, optimizer, normalize, settings, cfg.batch_size, aug.crop_flip, aug.mixup_alpha)


@contextlib.contextmanager
def _lrs(optimizer: torch.optim.Optimizer, values: list):
    """Param groups' lr set to `values` (floats or device tensors) inside the block, restored after."""
    saved = [g["lr"] for g in optimizer.param_groups]
    for g, v in zip(optimizer.param_groups, values):
        g["lr"] = v
    try:
        yield
    finally:
        for g, v in zip(optimizer.param_groups, saved):
            g["lr"] = v


def train_epoch(runner: Runner, split: Split, bar: Optional[Any] = None) -> EpochMetrics:
    """One pass over `split` in a fresh random order (see engine.run_train_epoch)."""
    runner.model.train()
    if runner.fast_step is None:
        return run_train_epoch(split, runner.batch_size, runner.mixup_alpha, runner.eager_step, bar=bar)
    if not runner.prepared:
        prepare(runner, split)
    floats = [g["lr"] for g in runner.optimizer.param_groups]
    for t, lr in zip(runner.lr_tensors, floats):
        t.fill_(lr)  # a device-side write, no synchronisation

    def tail_step(*batch):  # eager, with the float lr (an eager foreach step would sync on a tensor lr)
        with _lrs(runner.optimizer, floats):
            return runner.eager_step(*batch)

    with _lrs(runner.optimizer, runner.lr_tensors):
        return run_train_epoch(split, runner.batch_size, runner.mixup_alpha, runner.fast_step, tail_step, bar)


def evaluate(runner: Runner, split: Split) -> EpochMetrics:
    """Mean loss and accuracy over `split` in eval mode (see engine.evaluate)."""
    s = runner.settings
    return evaluate_eager(runner.model, split, runner.normalize, s.bf16, s.channels_last, runner.fast_eval)


def _init_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Create missing momentum buffers as zeros: SGD's first step (buffer = gradient, dampening 0)
    then computes exactly 0 * momentum + gradient, and the compiled step sees one state layout."""
    for group in optimizer.param_groups:
        if group["momentum"] != 0:
            assert group["dampening"] == 0, "zero momentum buffers equal SGD's first step only without dampening"
            for p in group["params"]:
                optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


@contextlib.contextmanager
def _state_restored(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Weights, buffers and optimizer state copied back in place (same storage: graphs stay valid)."""
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [t for state in optimizer.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    saved = [t.detach().clone() for t in tensors]
    training = model.training
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        optimizer.zero_grad(set_to_none=True)
        model.train(training)


def prepare(runner: Runner, train: Split, val: Optional[Split] = None) -> float:
    """Compile and capture the steps now (once per run; a no-op when eager or already done) by
    running them on real batches, then undo every effect. Returns (and logs) the seconds it took."""
    if runner.fast_step is None or runner.prepared:
        return 0.0
    start = time.perf_counter()
    try:
        _capture(runner, train, val)
    except Exception as err:  # noqa: BLE001 - any compiler failure; re-raised when compile was asked for
        if not runner.settings.eager_fallback:
            raise
        log.warning(
            "could not compile the training step (%s: %s); training eagerly (trainer.compile=false skips the attempt)",
            type(err).__name__, " ".join(str(err).split())[:200],
        )
        runner.fast_step = runner.fast_eval = None
        return 0.0
    runner.compile_time_s = time.perf_counter() - start
    runner.prepared = True
    log.info("compiled and captured the training step in %.1f s (once per run)", runner.compile_time_s)
    return runner.compile_time_s


def _capture(runner: Runner, train: Split, val: Optional[Split]) -> None:
    """Run the compiled steps WARMUP_CALLS times on real batches, then restore every state they touched."""
    device = train.images.device
    _init_momentum(runner.optimizer)
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), _state_restored(runner.model, runner.optimizer):
        if len(train) >= runner.batch_size:
            runner.model.train()
            images, labels = train.images[: runner.batch_size], train.labels[: runner.batch_size]
            with _lrs(runner.optimizer, runner.lr_tensors):
                for _ in range(WARMUP_CALLS):
                    lam, perm = sample_mix(len(labels), runner.mixup_alpha, device) if runner.mixup_alpha else (None, None)
                    runner.fast_step(images, labels, lam, perm)
        if val is not None and len(val) >= EVAL_BATCH:
            runner.model.eval()
            with torch.no_grad():
                for _ in range(WARMUP_CALLS):
                    runner.fast_eval(val.images[:EVAL_BATCH], val.labels[:EVAL_BATCH])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
