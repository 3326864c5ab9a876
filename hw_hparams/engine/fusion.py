"""k copies of a network trained as one (horizontal fusion, as in HFTA, MLSys 2021).

`fuse(models)` turns k networks of the same architecture into one module whose every layer holds the
k copies side by side:
- `Conv2d(cin, cout, groups=g)` -> `Conv2d(k*cin, k*cout, groups=k*g)`: copy i reads channels
  [i*cin, (i+1)*cin) and writes [i*cout, (i+1)*cout); its weight rows are copy i's, in order;
  a 1x1 convolution -> `FusedPointwise`, the same as one batched matmul;
- `BatchNorm2d(C)` -> `BatchNorm2d(k*C)`: statistics per channel, so exactly k separate BatchNorms;
- `Linear(n, m)` -> `FusedLinear(k, n, m)`: one batched matmul, features [N, k*n] -> [N, k*m];
- pooling, activations and residual additions act per channel and stay as they are.
So copy i's output channels depend on copy i's weights and inputs only: a copy that diverges (NaN)
leaves the others' numbers unchanged. Each copy computes what it would alone up to float rounding
(depthwise convolutions and BatchNorm exactly; a grouped or batched matmul may sum in another order).
Inputs are laid out [N, k*C, H, W] (copy i's images in channels [3i, 3i+3)). A group of one is the
network itself. `copy_state(fused, i)` gives copy i's state_dict in the plain network's names and
shapes, `load_copy` writes one back, so every run keeps its own single-run checkpoint.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class FusedPointwise(nn.Module):
    """k 1x1 convolutions Conv2d(cin, cout, 1) on [N, k*cin, H, W] -> [N, k*cout, H, W], as one batched
    matmul; weight [k*cout, cin, 1, 1] as Conv2d's, stacked. (On the CPU, MobileNetV2 k=2 trained at
    the same speed with this, a grouped convolution, or k convolutions on channel slices: 0.76-0.77x
    two runs in turn, 2026-11-27.)"""

    def __init__(self, k: int, in_channels: int, out_channels: int, bias: bool):
        super().__init__()
        self.k, self.in_channels, self.out_channels = k, in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(k * out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(k * out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        weight = self.weight.view(self.k, self.out_channels, self.in_channels)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():  # NHWC: no copies
            out = torch.einsum(
                "pkc,koc->pko", x.permute(0, 2, 3, 1).reshape(n * h * w, self.k, self.in_channels), weight
            )
            out = out.reshape(n, h, w, self.k * self.out_channels).permute(0, 3, 1, 2)
        else:
            out = torch.einsum("nkcs,koc->nkos", x.reshape(n, self.k, self.in_channels, h * w), weight)
            out = out.reshape(n, self.k * self.out_channels, h, w)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class FusedLinear(nn.Module):
    """k Linear(n, m) layers on features [N, k*n] -> [N, k*m]; weight [k, m, n], bias [k, m]."""

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        out = torch.baddbmm(
            self.bias.unsqueeze(1), x.view(n, self.k, self.in_features).transpose(0, 1), self.weight.transpose(1, 2)
        )
        return out.transpose(0, 1).reshape(n, self.k * self.out_features)


def _fused_layer(layers: list[nn.Module]) -> nn.Module | None:
    """The k-fold version of one layer (None: the layer acts per channel and is kept)."""
    k, first = len(layers), layers[0]
    pointwise = (
        isinstance(first, nn.Conv2d)
        and first.kernel_size == (1, 1)
        and first.stride == (1, 1)
        and first.padding == (0, 0)
        and first.groups == 1
    )
    if pointwise:
        fused = FusedPointwise(k, first.in_channels, first.out_channels, first.bias is not None)
    elif isinstance(first, nn.Conv2d):
        fused = nn.Conv2d(
            k * first.in_channels,
            k * first.out_channels,
            first.kernel_size,
            first.stride,
            first.padding,
            first.dilation,
            k * first.groups,
            first.bias is not None,
            first.padding_mode,
        )
    elif isinstance(first, nn.BatchNorm2d):
        fused = nn.BatchNorm2d(
            k * first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats
        )
    elif isinstance(first, nn.Linear):
        fused = FusedLinear(k, first.in_features, first.out_features)
    elif isinstance(
        first, (nn.Conv1d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.Embedding)
    ):
        raise TypeError(f"cannot fuse {type(first).__name__} layers")
    else:
        return None
    like = next(first.parameters())
    fused.to(device=like.device, dtype=like.dtype)
    with torch.no_grad():
        for name, tensor in [*fused.named_parameters(recurse=False), *fused.named_buffers(recurse=False)]:
            parts = [getattr(layer, name) for layer in layers]
            if name == "num_batches_tracked":
                tensor.copy_(parts[0])
            else:
                tensor.copy_(torch.stack(parts) if isinstance(fused, FusedLinear) else torch.cat(parts))
    return fused


def fuse(models: list[nn.Module]) -> nn.Module:
    """One module computing the k `models` (same architecture) side by side; see the module docstring.
    One model stays the network it is (same layers, same kernels as alone)."""
    fused = copy.deepcopy(models[0])
    if len(models) == 1:
        fused.k = 1
        return fused
    names = [name for name, _ in fused.named_modules() if name]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = fused.get_submodule(parent_name)
        layer = _fused_layer([m.get_submodule(name) for m in models])
        if layer is not None:
            setattr(parent, attr, layer)
    fused.k = len(models)
    return fused


def _stacked_names(fused: nn.Module) -> set[str]:
    """Names of the tensors laid out [k, ...] (FusedLinear's); all others are [k*n, ...]."""
    return {
        f"{n}.{p}" if n else p
        for n, m in fused.named_modules()
        if isinstance(m, FusedLinear)
        for p in ("weight", "bias")
    }


def _part(tensor: torch.Tensor, k: int, i: int, stacked: bool) -> torch.Tensor:
    """Copy i's part of a fused tensor, as a view (any memory format: only dim 0 is split)."""
    return tensor[i] if stacked else tensor.unflatten(0, (k, -1))[i]


def _copy_views(fused: nn.Module, i: int) -> dict[str, torch.Tensor]:
    """Copy i's part of each fused parameter and buffer (shared counters: the whole tensor)."""
    stacked = _stacked_names(fused)
    return {
        name: tensor if name.endswith("num_batches_tracked") else _part(tensor, fused.k, i, name in stacked)
        for name, tensor in fused.state_dict(keep_vars=True).items()
    }


def copy_state(fused: nn.Module, i: int) -> dict[str, torch.Tensor]:
    """Copy i's state_dict, in the plain network's names and shapes (detached clones)."""
    return {name: view.detach().clone() for name, view in _copy_views(fused, i).items()}


def load_copy(fused: nn.Module, i: int, state: dict[str, torch.Tensor]) -> None:
    """Write a plain network's state_dict into copy i of `fused` (in place); KeyError if it is another network's."""
    views = _copy_views(fused, i)
    if set(views) != set(state) or any(views[n].shape != state[n].shape for n in views):
        wrong = sorted(set(views) ^ set(state)) or [n for n in views if views[n].shape != state[n].shape]
        raise KeyError(f"not this network's state (differs in {', '.join(wrong[:3])})")
    with torch.no_grad():
        for name, view in views.items():
            view.copy_(state[name])


def part_of(fused: nn.Module, name: str, tensor: torch.Tensor, i: int) -> torch.Tensor:
    """Copy i's part of a tensor laid out like the fused parameter `name` (e.g. its momentum buffer), as a view."""
    return _part(tensor, fused.k, i, name in _stacked_names(fused))
