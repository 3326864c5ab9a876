"""Compilation and capture of a group's steps (group.Group), once per group before its first epoch:
the compiled steps run WARMUP_CALLS times on real images with neutral draws (on CUDA: compile, record
the CUDA graphs, replay), one training step and one evaluation batch are compared with the eager
ones (compile_guard.self_check, tolerance per precision), and every state they touched is restored.
A compiled step that raises, in its capture or its first epoch, is judged by `failed`: on CUDA a
device that no longer works ends the job, else the process is made sound again first (gpu.py); out
of memory goes to train/sizing.py; anything else makes the group eager. On CUDA the peak memory of
the capture, per run, is recorded. `group` is a group.Group; engine/group.py calls in here, so this
module names none of its types (imports flow one way).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import torch

from hw_hparams.data import Split
from hw_hparams.engine import gpu
from hw_hparams.engine.compile_guard import TOLERANCE, CompiledStepError, Snapshot, one_line, self_check
from hw_hparams.engine.draws import neutral_plan, stack_plans
from hw_hparams.engine.step import EVAL_BATCH, batch_inputs, eval_batch

log = logging.getLogger(__name__)

WARMUP_CALLS = 3  # cudagraph trees: 1st call compiles and warms up, 2nd records, 3rd replays


def prepare(group: Any, train: Split, val: Optional[Split] = None) -> float:
    """Compile and capture the steps now (once per group; a no-op when eager or already done) by
    running them on real images with neutral draws, check them against the eager steps, then undo
    every effect. Returns (and logs) the seconds it took (0 when it fell back to eager)."""
    if group.fast_step is None or group.prepared:
        return 0.0
    card = gpu.for_device(train.images.device)
    if card is not None:
        base, _ = card.start_peak()
    group.record.started()
    start = time.perf_counter()
    diff = None
    try:
        diff = _capture(group, train, val)
    except Exception as err:  # noqa: BLE001 - any compiler failure; out of memory and an unusable GPU raise
        failed(group, "could not compile the training step", err)
    if diff is None:
        group.release_compiled()  # out of the except block: nothing of the failed attempt is kept alive
        return 0.0
    seconds = time.perf_counter() - start
    group.prepared = True
    group.record.captured(seconds)
    if card is not None:
        group.record.per_run_bytes = (card.peak()[0] - base) // group.k
    tolerance = TOLERANCE[group.settings.precision]
    group.record.self_check = {"max_rel_diff": diff, "tolerance": tolerance}
    if not diff <= tolerance:
        group.fall_back(
            f"the compiled step disagrees with the eager one (relative difference {diff:.2e} > {tolerance:g} "
            f"allowed in {group.settings.precision})"
        )
        group.release_compiled()
        return 0.0
    log.info(
        "compiled and captured the training step in %.1f s (once per run); it agrees with the eager step to %.1e",
        seconds,
        diff,
    )
    return seconds


def _capture(group: Any, train: Split, val: Optional[Split]) -> float:
    """Run the compiled steps WARMUP_CALLS times on real batches laid out as an epoch's (no crop, no
    mixup, dropout keeping everything), then compare one step and one evaluation batch with the eager
    ones; restore every state they touched. Returns the largest relative difference."""
    device, k, b, model = train.images.device, group.k, group.batch_size, group.model
    state, diffs = Snapshot(group.state_tensors(), []), [0.0]
    params = list(model.parameters())
    try:
        if len(train) >= b:
            model.train()
            plan = stack_plans([neutral_plan(b, b)] * k, device)
            masks = torch.ones(k, b, model.width, device=device) if model.dropout > 0 else None
            batch = (*batch_inputs(train, plan, 0), masks)
            for _ in range(WARMUP_CALLS):
                group.fast_step(*batch)
            state.restore()
            diffs.append(self_check([group.eager_step, group.fast_step], params, state, batch))
        if val is not None and len(val) >= EVAL_BATCH:
            model.eval()
            images, labels = val.images[:EVAL_BATCH], val.labels[:EVAL_BATCH]
            s = group.settings
            with torch.no_grad():
                for _ in range(WARMUP_CALLS):
                    fast = group.fast_eval(images, labels)[:, 0].clone()
                eager = eval_batch(model, group.normalize, s.precision, s.channels_last, images, labels)[:, 0]
            diffs.append(((fast - eager).norm() / eager.norm().clamp_min(1e-30)).item())
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # a capture's asynchronous error surfaces here, inside the try
    finally:
        state.restore()
        group.optimizer.zero_grad()
        model.train()
    return max(diffs)


def failed(group: Any, what: str, err: Exception, training: bool = True) -> None:
    """A compiled step of `group` raised `err` (in its capture or its first epoch; `training`: else the evaluation).
    On CUDA a device that no longer works ends the job (DeviceUnusable, never a fallback); else the process
    is first made sound again (gpu.Gpu.recover), or the job ends (DeviceUnusable; under compile=auto the
    runs resume eagerly in a fresh process, as their compile record says); out of memory is then raised
    again for train/sizing.py; anything else makes the group (or its evaluation) eager."""
    card = gpu.for_device(group.device)
    if card is not None:
        if gpu.device_error(err) is not None and not card.works():  # a sticky CUDA error: never a fallback
            raise gpu.unusable(one_line(gpu.device_error(err))) from err
        problem = card.recover(group.stream)
        if problem is not None:
            reason = f"{what} ({one_line(err)}), which left this process's GPU state unsound ({problem})"
            eager = group.settings.eager_fallback
            group.record.compiled = False
            if eager:  # what the runs' summaries say, so the next process trains them eagerly (loop.eager_since)
                group.record.fallback = reason + "; its runs train on eagerly in a fresh process"
            raise gpu.unusable(reason, eager=eager) from err
    if gpu.out_of_memory(err):
        raise err
    if training:
        group.fall_back(f"{what} ({one_line(err)})", err)
        return
    reason = f"{what} ({one_line(err)})"
    if not group.settings.eager_fallback:
        raise CompiledStepError(f"trainer.compile=true: {reason}") from err
    log.warning("%s; evaluating eagerly", reason)
    group.fast_eval, group.record.fallback = None, reason + "; evaluated eagerly"
