"""The training and evaluation steps of k runs fused in one network (`Group`), compiled where the
device allows; the same semantics as the eager path in engine/step.py. A single run is a group of one.

StepSettings (each resolved per device from `trainer.*`, see `resolve_settings`):
- compile (`trainer.compile`, auto = on for CUDA): `torch.compile(mode="reduce-overhead")` over the
  batch forward (augmentation, mixup, model, loss, metrics; its backward is compiled with it), over
  the optimizer step (optim.sgd_update, its state passed as arguments) and over the evaluation
  batch, so on CUDA each runs as a CUDA graph. Compilation and capture happen once per group in
  `capture.prepare` (timed, logged, checked against the eager step, and undone: weights, momentum and loss
  scales are restored; no run's generator is touched), never inside an epoch. A compiled group of
  the same settings and shapes as the one before (the next part of equal size) reuses its graphs
  (re-recorded as CUDA graphs for the new tensors); any other resets Dynamo, and so does every
  (recompile limit - 1)th group, so no group of a long sweep runs eagerly because Dynamo's recompile
  limit was reached (one compiled group at a time per process).
- precision (`trainer.precision`, precision.py: auto = bf16 on GPUs with native bf16, fp16 with
  per-run loss scaling on older ones, fp32 on the CPU); a run keeps the precision it started with.
- channels_last: per device and model, from measurements (CHANNELS_LAST).

Graph-safe details: every random draw is an input tensor made outside the graph by the run's own
generators (draws.py), laid out the same in the capture as in every batch, so no graph compiles a
second time; weights, buffers, momentum, learning rates and loss scales have static addresses
(torch._dynamo.mark_static_address), so CUDA graphs are not skipped for mutated inputs; the
learning rates are device tensors written in place each epoch (no recompilation); the epoch's
last, smaller batch runs eagerly on the same model and optimizer state (no second graph, no
dynamic shapes); metrics stay on the device until the epoch ends.

Trust (compile_guard.py): after capture one batch is trained compiled and eagerly from the same
state and compared; a mismatch, or an error of the compiled step during the group's first epoch,
makes the group train eagerly from a clean state (trainer.compile=auto, one warning line) or is a
one-line error (trainer.compile=true), after Dynamo's caches and the graphs' memory are dropped. On
CUDA a failed compiled step first has the process made sound again (`capture.failed`, gpu.py), or the
job ends (gpu.DeviceUnusable) and the runs resume eagerly in a fresh process. CUDA out of memory,
anywhere in the exception chain, is never taken for a compiler failure (train/sizing.py halves).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import nn

from hw_hparams.config.schema import flag
from hw_hparams.data import Normalize, Split
from hw_hparams.engine import gpu
from hw_hparams.engine.capture import failed, prepare
from hw_hparams.engine.compile_guard import CompiledStepError, CompileRecord, Snapshot, reuse_dynamo
from hw_hparams.engine.draws import RunRandom, init_weights, stack_plans
from hw_hparams.engine.fusion import fuse
from hw_hparams.engine.models import build_model
from hw_hparams.engine.optim import FusedSGD, LossScale, sgd_update
from hw_hparams.engine.precision import device_capability, precision_for, use_tf32
from hw_hparams.engine.step import EpochMetrics, eval_batch, run_train_epoch, sgd_step, train_forward
from hw_hparams.engine.step import evaluate as evaluate_eager

log = logging.getLogger(__name__)

# torch.compile backend; tests swap in "aot_eager" (same graphs, no code generation) to stay fast.
COMPILE_BACKEND: Union[str, Callable] = "inductor"
COMPILE_MODE = "reduce-overhead"  # CUDA graphs on CUDA; plain Inductor on the CPU
# (device type, model) -> channels_last (else NCHW). CPU, fp32 training at batch 128: mobilenetv2
# 1.3-1.8x faster in every measurement; mobilenetv1 anywhere from 0.2x to 1.25x, tiny 0.88x, so NCHW.
# On the H100 NCHW was faster for mobilenetv2 in bf16 with CUDA graphs (the reference H100 figures in BENCHMARKS.md).
CHANNELS_LAST = {("cpu", "mobilenetv2"): True}


@dataclass(frozen=True)
class StepSettings:
    compile: bool
    precision: str  # fp32, bf16, fp16 (precision.PRECISIONS)
    channels_last: bool
    mode: Optional[str] = COMPILE_MODE
    backend: Union[str, Callable] = "inductor"
    eager_fallback: bool = False  # trainer.compile=auto: a compiled step that fails or disagrees runs eagerly instead
    tf32: bool = True  # trainer.tf32: fp32 matmuls and convolutions in TF32 on CUDA

    def describe(self) -> str:
        parts = [f"compile={self.mode or self.backend}" if self.compile else "eager", self.precision]
        return ", ".join(parts + ["channels_last" if self.channels_last else "NCHW"])


def resolve_settings(
    trainer_cfg: Any, device: torch.device, model_name: str, precision: Optional[str] = None, **overrides: Any
) -> StepSettings:
    """The settings for `device` from `trainer.*` (auto = fast path on CUDA, plain eager fp32 on the
    CPU); `precision`: the one a resumed run started with (instead of trainer.precision's rule);
    keyword overrides (the benchmark's) win."""
    cuda = device.type == "cuda"
    chosen, warning = precision_for(device_capability(device), precision or trainer_cfg.precision)
    if warning:
        log.warning(warning)
    settings = StepSettings(
        compile=flag(trainer_cfg.compile, cuda),
        precision=chosen,
        channels_last=CHANNELS_LAST.get((device.type, model_name), False),
        backend=COMPILE_BACKEND,
        eager_fallback=str(trainer_cfg.compile).lower() == "auto",
        tf32=bool(trainer_cfg.get("tf32", True)),
    )
    settings = dataclasses.replace(settings, **overrides)
    return settings if settings.backend == "inductor" else dataclasses.replace(settings, mode=None)


@dataclass
class RunSpec:
    """What each run of a group trains with on its own: the keys config/roles.py declares RUN, one field
    each (everything else of a group is shared: roles.SHARED_KEYS; tests/config/test_roles.py holds the
    two together)."""

    seed: int
    lr: float  # the schedule's base learning rate (set per epoch: FusedSGD.set_lr)
    schedule: str  # schedule.name: constant or cosine
    momentum: float
    weight_decay: float
    crop_flip: bool
    mixup_alpha: Optional[float]


def run_spec(cfg: Any) -> RunSpec:
    """A run's spec from its config: its value of every RUN key (config/roles.py)."""
    return RunSpec(
        seed=cfg.seed,
        lr=cfg.optim.lr,
        schedule=cfg.schedule.name,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
        crop_flip=cfg.augmentation.crop_flip,
        mixup_alpha=cfg.augmentation.mixup_alpha,
    )


_update_no_grad = torch.no_grad()(sgd_update)


@dataclass
class Group:
    """k runs as one fused network: its model, optimizer and steps, and each run's own generators.
    Use `train_epoch`, `evaluate`, `prepare`; `record` is what its runs' summary.json says under `compile`."""

    model: nn.Module  # fusion.fuse of the runs' networks (model.k copies)
    optimizer: FusedSGD
    normalize: Normalize
    settings: StepSettings
    batch_size: int
    runs: list[RunSpec]
    randoms: list[RunRandom]
    prepared: bool = False
    trusted: bool = False  # a compiled training epoch has ended without error
    eval_trusted: bool = False  # a compiled evaluation pass has ended without error
    record: CompileRecord = field(init=False)
    eager_step: Callable = field(init=False)
    fast_step: Optional[Callable] = field(init=False, default=None)
    fast_eval: Optional[Callable] = field(init=False, default=None)
    stream: Any = field(init=False, default=None)  # CUDA: the stream it trains on, restored after a failed capture

    def __post_init__(self) -> None:
        model, s, optimizer = self.model, self.settings, self.optimizer
        log.info("training step: %s%s", s.describe(), f", {model.k} runs fused" if model.k > 1 else "")
        self.record = CompileRecord(s.precision)
        scale = optimizer.scaler.scale if optimizer.scaler is not None else None

        def forward(*batch):
            return train_forward(model, self.normalize, s.precision, s.channels_last, *batch, loss_scale=scale)

        self.eager_step = sgd_step(optimizer, forward)
        if not s.compile:
            return
        card = gpu.for_device(self.device)
        self.stream = card.stream() if card is not None else None
        self.record.reused = reuse_dynamo((s, self.batch_size, repr(model), *(t.shape for t in self.state_tensors())))
        for t in self.state_tensors():  # not copied into CUDA graphs, so never a skip for mutated inputs; unguarded:
            torch._dynamo.mark_static_address(t, guard=False)  # a part of equal size reuses the graphs (re-recorded)
        compiled_forward = torch.compile(forward, backend=s.backend, mode=s.mode, dynamic=False)
        compiled_update = torch.compile(_update_no_grad, backend=s.backend, mode=s.mode, dynamic=False)
        compiled_eval = torch.compile(
            lambda images, labels: eval_batch(model, self.normalize, s.precision, s.channels_last, images, labels),
            backend=s.backend,
            mode=s.mode,
            dynamic=False,
        )

        def new_step(fn):  # tell cudagraph trees that the previous step's outputs are consumed
            def call(*args):
                torch.compiler.cudagraph_mark_step_begin()
                return fn(*args)

            return call

        self.fast_step = sgd_step(
            optimizer, new_step(compiled_forward), lambda: compiled_update(*optimizer.update_args())
        )
        self.fast_eval = new_step(compiled_eval)

    @property
    def k(self) -> int:
        return self.model.k

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor a training step reads as state or changes: weights, buffers, momentum, lrs, loss scales."""
        seen, out = set(), []
        for t in [*self.model.parameters(), *self.model.buffers(), *self.optimizer.static_tensors()]:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    def dropout_masks(self, size: int) -> Optional[torch.Tensor]:
        """The runs' dropout masks [k, size, width] for one batch, each from its own generator (None: no dropout)."""
        net = self.model
        if net.dropout <= 0:
            return None
        return torch.stack([r.dropout_mask((size, net.width), net.dropout) for r in self.randoms])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def fall_back(self, reason: str, err: Optional[BaseException] = None) -> None:
        """Train eagerly from here (trainer.compile=auto: one warning line), or a one-line CompiledStepError (true).
        The caller then calls `release_compiled`, outside any except block."""
        if not self.settings.eager_fallback:
            raise CompiledStepError(
                f"trainer.compile=true: {reason}; trainer.compile=auto would train eagerly instead"
            ) from err
        log.warning("%s; training eagerly (trainer.compile=false skips the attempt)", reason)
        self.fast_step = self.fast_eval = None
        self.record.compiled, self.record.fallback = False, reason

    def release_compiled(self) -> None:
        """After a fallback: drop Dynamo's caches and the CUDA graphs' memory, so the eager retry has it."""
        gpu.release(self.device)


def build_group(
    model_name: str,
    runs: list[RunSpec],
    device: torch.device,
    normalize: Normalize,
    settings: StepSettings,
    batch_size: int,
) -> Group:
    """A group of fresh runs: each network initialised from its own seed, fused; the optimizer's
    momentum and weight decay per run (learning rates are set per epoch: FusedSGD.set_lr), with
    per-run loss scales under fp16."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution kernels once
        use_tf32(device, settings.tf32)
    networks = [init_weights(lambda: build_model(model_name), r.seed) for r in runs]
    model = fuse(networks).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    scaler = LossScale(len(runs), device) if settings.precision == "fp16" else None
    optimizer = FusedSGD(model, len(runs), [r.momentum for r in runs], [r.weight_decay for r in runs], scaler)
    randoms = [RunRandom(r.seed, device) for r in runs]
    return Group(model, optimizer, normalize, settings, batch_size, runs, randoms)


def train_epoch(group: Group, split: Split, bar: Optional[Any] = None) -> list[EpochMetrics]:
    """One pass over `split` for every run of the group, each in its own fresh random order. In the
    group's first compiled epoch an error of the compiled step restarts the epoch eagerly from the
    state it began with (Group.fall_back); CUDA out of memory propagates."""
    if group.fast_step is not None and not group.prepared:
        prepare(group, split)
    if group.fast_step is None or group.trusted:
        return _train_epoch(group, split, bar)
    clean = Snapshot(group.state_tensors(), group.randoms)
    trained = None
    try:
        trained = _train_epoch(group, split, bar)
    except Exception as err:  # noqa: BLE001 - any failure of the compiled step; out of memory and an unusable GPU raise
        failed(group, "the compiled training step failed in its first epoch", err)
    if trained is None:  # out of the except block: the failed epoch's tensors are gone
        group.release_compiled()
        clean.restore()
        group.optimizer.zero_grad()
        return _train_epoch(group, split, bar)
    group.trusted = True
    return trained


def _train_epoch(group: Group, split: Split, bar: Optional[Any]) -> list[EpochMetrics]:
    group.model.train()
    plans = [
        r.epoch_plan(len(split), group.batch_size, s.crop_flip, s.mixup_alpha)
        for r, s in zip(group.randoms, group.runs)
    ]
    plan = stack_plans(plans, split.images.device)
    step = group.fast_step or group.eager_step
    return run_train_epoch(split, plan, group.batch_size, step, group.eager_step, group.dropout_masks, bar)


def evaluate(group: Group, split: Split) -> list[EpochMetrics]:
    """Each run's mean loss and accuracy over `split` in eval mode (see engine.evaluate). An error of
    the compiled evaluation in its first pass makes evaluation eager (it changes no state; training
    stays compiled) under trainer.compile=auto, and is a one-line error under true."""
    s = group.settings
    metrics = None
    try:
        metrics = evaluate_eager(group.model, split, group.normalize, s.precision, s.channels_last, group.fast_eval)
        group.eval_trusted = group.fast_eval is not None
    except Exception as err:  # noqa: BLE001
        if group.fast_eval is None or group.eval_trusted:
            raise
        failed(group, "the compiled evaluation step failed", err, training=False)
    return metrics or evaluate_eager(group.model, split, group.normalize, s.precision, s.channels_last)
