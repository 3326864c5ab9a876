"""`trainer.precision` and `trainer.tf32`: which arithmetic a run trains in, from the device it runs on.

The rule is a pure function of (CUDA compute capability, setting) (`precision_for`; None stands for
the CPU), the table in docs/speed.md:

    setting   CPU    CUDA >= 8.0 (A100, H100, RTX 30xx+)   CUDA < 8.0 (T4, V100, RTX 20xx)
    auto      fp32   bf16                                   fp16 (+ per-run loss scaling)
    bf16      bf16   bf16                                   bf16, with one warning line (emulated)
    fp16      fp16   fp16                                   fp16
    fp32      fp32   fp32 (TF32 matmuls/convolutions)       fp32

bf16 needs native support (compute capability 8.0): `torch.cuda.is_bf16_supported()` is True on
older cards too (it counts emulation), where Inductor declines to compile bf16 graphs, so the fast
path would silently run eagerly. A run keeps the precision it started with when it resumes
(train/loop.py), wherever it resumes. On CUDA, fp32 matmuls and convolutions use TF32 unless
`trainer.tf32=false` (fp32 inputs, ~10-bit mantissa products, fp32 sums).
"""

from __future__ import annotations

from typing import Optional

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
NATIVE_BF16 = (8, 0)


def precision_for(capability: Optional[tuple[int, int]], setting: str) -> tuple[str, Optional[str]]:
    """(precision, warning line or None) for a CUDA device of compute `capability` (None: the CPU)
    and `trainer.precision` = `setting` (auto, fp32, bf16, fp16)."""
    setting = str(setting).lower()
    native = capability is not None and tuple(capability) >= NATIVE_BF16
    if setting == "auto":
        return ("fp32" if capability is None else "bf16" if native else "fp16"), None
    if setting == "bf16" and capability is not None and not native:
        major, minor = capability
        return "bf16", (
            f"trainer.precision=bf16 on a GPU of compute capability {major}.{minor}, which has no native bf16: "
            "it is emulated (slow) and may not compile; trainer.precision=auto gives fp16 there"
        )
    return setting, None


def device_capability(device: torch.device) -> Optional[tuple[int, int]]:
    """The CUDA compute capability of `device`, None for the CPU."""
    return tuple(torch.cuda.get_device_capability(device)) if device.type == "cuda" else None


def use_tf32(device: torch.device, enabled: bool) -> None:
    """TF32 for fp32 matmuls and convolutions on CUDA (process-wide torch switches); nothing on the CPU."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
