"""Batch-wise augmentation and normalisation on the training device.

Semantics equal torchvision's `RandomCrop(32, padding=4)` (zero padding, all 81 offsets equally
likely) followed by `RandomHorizontalFlip(0.5)`, drawn independently for every image of a batch
(the offsets and flips are drawn by the run's own generator, draws.py, and passed in), then
`Normalize(mean, std)` on [0, 1] pixels.
"""

from __future__ import annotations

import torch

PAD = 4


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Padded crop + horizontal flip of uint8 [B, C, H, W] images; same shape and dtype.

    Image i is the window at row `top[i]`, column `left[i]` (0..2*PAD) of the image zero-padded by
    PAD pixels, mirrored left-right where `flip[i]`; (PAD, PAD, False) gives the image unchanged.
    """
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))  # zeros: black, as torchvision pads
    dev = images.device
    top, left, flip = top.view(b, 1), left.view(b, 1), flip.view(b, 1)
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flip, w - 1 - cols, cols) + left  # [B, W] column of the padded image
    rows = torch.arange(h, device=dev).expand(b, h) + top  # [B, H]
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


class Normalize:
    """uint8 [B, C, H, W] -> float32 (x / 255 - mean) / std, per channel."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean) / self.std
