"""Backbones of the baselines (nothing is downloaded: weights come from a local file through
``fer_bench.weights``).

* :func:`resnet18_trunk` — torchvision ResNet-18 (ImageNet stem: 7x7 stride-2 conv + max-pool),
  the backbone of the pre-trained 224 px FER baselines (SCN / DAN / DACL lineage) and of the
  ResNet-18 paper methods; torchvision and MS-Celeb-1M state dicts load key for key.
* :func:`cifar_resnet18` — the same network with a CIFAR stem (3x3 stride-1 conv, no max-pool),
  the from-scratch baseline of the 44-48 px grey FER literature
  (WuJie1010/Facial-Expression-Recognition.Pytorch ``models/resnet.py``).
* :class:`BottleneckV1ResNet` — a ResNet of bottleneck blocks with the stride on the first 1x1
  convolution (the original ResNet form, not torchvision's v1.5) and the max-pool of the
  official DFEW ResNet-LSTM (jiangxingxun/DFEW ``DataDistributedParallel/makemodel/ResLSTM.py``:
  ``Bottleneck``, layers [2, 2, 2, 2], ``MaxPool2d(3, 2, padding=0, ceil_mode=True)``).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18


def resnet18_trunk(in_chans: int = 3, num_classes: int | None = None) -> nn.Module:
    """torchvision ResNet-18 for ``in_chans`` input.

    With ``num_classes=None`` the classifier is replaced by ``nn.Identity`` so the module
    returns the 512-d pooled feature.  A grey stem is a 1-channel ``conv1``; the rest is the
    unmodified torchvision network, so torchvision state dicts load key for key.
    """
    net = resnet18(weights=None, num_classes=num_classes or 1000)
    if in_chans != 3:
        net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if num_classes is None:
        net.fc = nn.Identity()
    return net


def cifar_resnet18(in_chans: int = 3) -> nn.Module:
    """ResNet-18 with the CIFAR stem: ``conv3x3(stride 1) -> BN -> ReLU`` and no max-pool, then
    torchvision's four BasicBlock stages (64-128-256-512, strides 1-2-2-2, 1x1 conv + BN
    projection shortcuts: the blocks of WuJie1010's ``models/resnet.py``).  Returns the
    layer4 map (no pooling, no classifier): 44 px in, 6x6 out."""
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.avgpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def resnet_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer4 feature map of a torchvision-style ResNet (stem, max-pool, four stages)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


class BottleneckV1(nn.Module):
    """``1x1 (stride) -> 3x3 -> 1x1 (x4)``, BN after each, ReLU; 1x1 conv + BN shortcut when the
    shape changes.  The stride sits on the first 1x1 convolution, as in the DFEW ResNet-LSTM."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class BottleneckV1ResNet(nn.Module):
    """Stem ``conv7x7 s2 -> BN -> ReLU -> MaxPool(3, 2, padding 0, ceil_mode)``, four stages of
    :class:`BottleneckV1` (planes 64-128-256-512, strides 1-2-2-2), global average pooling:
    a ``planes[-1] * 4`` (2048) feature per image.  At 112 px the layer4 map is 4x4, which the
    official ``AvgPool2d(4, stride=1)`` averages whole, as the global pool here does at any size."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True))
        stages, ch = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for k in range(n):
                blocks.append(BottleneckV1(ch, planes, stride=2 if (k == 0 and i > 0) else 1))
                ch = planes * BottleneckV1.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def kaiming_fan_in_(module: nn.Module) -> None:
    """Every Conv2d and Linear weight ``kaiming_normal_(fan_in, relu)``, BN weights 1 and biases 0:
    the ``model_init: True`` re-initialisation of the DFEW code (``libs/Performer.py``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet18_stages(net: nn.Module) -> list[nn.Module]:
    """The stem and four stages of a torchvision ResNet, for multi-scale features."""
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4]


def frames_to_batch(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """``[B,T,C,H,W]`` -> ``[B*T,C,H,W]`` plus (B, T), for per-frame 2-D networks."""
    b, t = x.shape[:2]
    return x.reshape(b * t, *x.shape[2:]), b, t
