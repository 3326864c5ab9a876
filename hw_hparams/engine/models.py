"""The networks: MobileNetV2 for 32x32 inputs (torchvision's, re-strided), the course's MobileNet V1,
and a tiny CNN for tests and demos.

Each is a `Net`: `features` (convolutions, [B, 3, 32, 32] normalised images -> feature maps),
global average pooling, dropout (probability `dropout`, masks given as an input so that a run
draws them from its own generator: draws.py), and `classifier[1]`, a Linear layer -> logits
[B, num_classes]. Parameter names are torchvision's for MobileNetV2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's (t, c, n, s) table with the second stage's stride 2 -> 1: on 32x32 inputs the
# feature map goes 32 -> 32 -> 16 -> 8 -> 8 -> 4 instead of ImageNet's 224 -> 7.
CIFAR_INVERTED_RESIDUALS = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


class Net(nn.Module):
    """features -> global average pool -> dropout -> Linear (`classifier` = Sequential(Dropout, Linear))."""

    def __init__(self, features: nn.Module, width: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.features = features
        self.dropout, self.width = dropout, width
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for images `x`; in training mode with dropout, `dropout_mask` [B, width] (kept units
        1 / (1 - p)) says which features are kept (None: torch's own dropout draws them)."""
        h = torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)
        if self.training and self.dropout > 0 and dropout_mask is not None:
            return self.classifier[1](h * dropout_mask)
        return self.classifier(h)


def mobilenet_v2_cifar(num_classes: int = 100) -> Net:
    """torchvision's MobileNetV2 (dropout 0.2 before the classifier) with a stride-1 stem and stage 2 at stride 1.

    2,351,972 parameters for 100 classes; torchvision's weight initialisation.
    """
    from torchvision.models import mobilenet_v2  # here: torchvision's import costs ~1.4 s a command

    model = mobilenet_v2(num_classes=num_classes, inverted_residual_setting=CIFAR_INVERTED_RESIDUALS)
    model.features[0][0].stride = (1, 1)
    net = Net(model.features, model.last_channel, num_classes, dropout=0.2)
    net.classifier = model.classifier  # torchvision's Dropout(0.2) + Linear, initialised as torchvision does
    return net


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


def mobilenet_v1(num_classes: int = 100) -> Net:
    """The course handout's network (kuangliu's MobileNet): stride-1 stem, 13 depthwise-separable
    blocks, global pool (kuangliu's 2x2 average pool of the 2x2 map), Linear(1024, num_classes).
    3,309,476 parameters for 100 classes."""
    blocks = [64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024]
    layers, cin = [nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()], 32
    for spec in blocks:
        cout, stride = spec if isinstance(spec, tuple) else (spec, 1)
        layers.append(_DepthwiseSeparable(cin, cout, stride))
        cin = cout
    return Net(nn.Sequential(*layers), 1024, num_classes)


def tiny_cnn(num_classes: int = 100) -> Net:
    """A three-layer CNN (~100k parameters) for CPU smoke tests and the offline demo; not part of the study."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return Net(
        nn.Sequential(*block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128)),
        128,
        num_classes,
    )


MODELS = {"mobilenetv2": mobilenet_v2_cifar, "mobilenetv1": mobilenet_v1, "tiny": tiny_cnn}


def build_model(name: str, num_classes: int = 100) -> Net:
    """The network named by `model.name`, on the CPU in the default layout (group.build_group fuses the
    runs' networks, then moves the fused one to the device and its layout)."""
    return MODELS[name](num_classes)
