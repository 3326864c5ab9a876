"""How far a fused run drifts from the same run alone, step by step, against float32 rounding itself.

`python benchmarks/fused_drift.py [--steps 6] [--batch 32]` (CPU, a few minutes) trains MobileNetV2
(model=mobilenetv2, 100 classes) for a few SGD steps on the project's own path (steps.build_group,
the settings `trainer.*=auto` gives on the CPU: eager, channels_last; crop + flip, dropout, lr 0.05,
momentum 0.9) from the same initial weights, on the same random CIFAR-shaped images, with the same
draws (each run's own generators, draws.py):

- alone: run A as a group of one;
- fused: run A fused with run B (seed 1, same settings) into one network, k = 2, as
  `hydra/launcher=fused` trains it (tests/test_fused.py compares the two through whole runs);

each in float32 and in float64, and prints per step the largest |difference| of run A's training
loss of that step's batch (computed before the step's update) and the relative difference of its
weights after the step (||a - b|| / ||a|| over every trained parameter), for fused vs alone in
float32, fused vs alone in float64, and float32 alone vs float64 alone (float32's own rounding).

float64 is the same path with the model, its momentum buffers and the normalised images in float64;
the training step's cast of the logits to float32 (engine.train_forward's `.float()`) is made a no-op
for float64 tensors here, so that the float64 runs are float64 throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from hw_hparams.config.schema import TrainerConfig  # noqa: E402
from hw_hparams.data import Normalize, Split  # noqa: E402
from hw_hparams.engine.draws import stack_plans  # noqa: E402
from hw_hparams.engine.fusion import copy_state  # noqa: E402
from hw_hparams.engine.group import RunSpec, build_group, resolve_settings  # noqa: E402
from hw_hparams.engine.models import build_model  # noqa: E402
from hw_hparams.engine.step import batch_inputs  # noqa: E402

CPU = torch.device("cpu")
LR = 0.05
RUN_A = RunSpec(seed=0, momentum=0.9, weight_decay=0.0, crop_flip=True, mixup_alpha=None)
RUN_B = RunSpec(seed=1, momentum=0.9, weight_decay=0.0, crop_flip=True, mixup_alpha=None)


class Normalize64(Normalize):
    """The project's normalisation, in float64."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.double() / 255.0 - self.mean.double()) / self.std.double()


@contextlib.contextmanager
def float_keeps_float64():
    """`t.float()` leaves a float64 tensor as it is (the logits' cast in engine.train_forward)."""
    original = torch.Tensor.float

    def float_(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = float_
    try:
        yield
    finally:
        torch.Tensor.float = original


def trained(runs: list[RunSpec], split: Split, mean, std, dtype: torch.dtype, steps: int, batch: int):
    """Train `runs` fused (a group of len(runs)) for `steps` steps; run 0's (losses, weights after each step)."""
    settings = resolve_settings(OmegaConf.structured(TrainerConfig), CPU, "mobilenetv2")
    normalize = Normalize(mean, std, CPU)
    group = build_group("mobilenetv2", runs, CPU, normalize, settings, batch)
    if dtype == torch.float64:
        group.model.double()  # the same Parameter objects, so the optimizer still holds them
        opt = group.optimizer
        for name, p in group.model.named_parameters():
            opt.buffers[name] = opt.state[p]["momentum_buffer"] = opt.buffers[name].double()
        group.normalize = Normalize64(mean, std, CPU)
    group.optimizer.set_lr([LR] * len(runs))
    group.model.train()
    plans = [r.epoch_plan(len(split), batch, s.crop_flip, s.mixup_alpha) for r, s in zip(group.randoms, group.runs)]
    plan = stack_plans(plans, CPU)
    losses, weights = [], []
    with float_keeps_float64() if dtype == torch.float64 else contextlib.nullcontext():
        for j in range(steps):
            stats = group.eager_step(*batch_inputs(split, plan, j), group.dropout_masks(batch))
            losses.append(stats[0, 0].item() / batch)
            state = copy_state(group.model, 0)
            weights.append(torch.cat([state[n].flatten().double() for n in plain_parameters()]))
    return losses, weights


@functools.cache
def plain_parameters() -> tuple[str, ...]:
    """The names of the plain network's trained parameters (BatchNorm statistics are buffers, left out)."""
    return tuple(n for n, _ in build_model("mobilenetv2").named_parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    n = args.steps * args.batch
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 100, (n,), generator=g)
    split = Split(images, labels)
    x = images.double() / 255
    mean, std = x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()

    print(
        f"MobileNetV2, batch {args.batch}, {args.steps} SGD steps (lr {LR}, momentum 0.9, crop+flip, dropout 0.2); "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    start = time.perf_counter()
    runs = {}
    for dtype in (torch.float32, torch.float64):
        for label, group in (("alone", [RUN_A]), ("fused", [RUN_A, RUN_B])):
            runs[str(dtype).split(".")[1], label] = trained(group, split, mean, std, dtype, args.steps, args.batch)
    comparisons = {
        "fused vs alone, float32": (runs["float32", "fused"], runs["float32", "alone"]),
        "fused vs alone, float64": (runs["float64", "fused"], runs["float64", "alone"]),
        "float32 vs float64, alone": (runs["float32", "alone"], runs["float64", "alone"]),
    }
    print(f"{'step':>4}  " + "  ".join(f"{name:>36}" for name in comparisons))
    print(f"{'':>4}  " + "  ".join(f"{'|d loss|':>17} {'|d w| / |w|':>18}" for _ in comparisons))
    for j in range(args.steps):
        cells = []
        for (la, wa), (lb, wb) in comparisons.values():
            dl = abs(la[j] - lb[j])
            dw = ((wa[j] - wb[j]).norm() / wb[j].norm()).item()
            cells.append(f"{dl:>17.2e} {dw:>18.2e}")
        print(f"{j + 1:>4}  " + "  ".join(cells))
    print(
        f"run A's training loss per step (float64, alone): {', '.join(f'{v:.6f}' for v in runs['float64', 'alone'][0])}"
    )
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
