"""Backbones built from torchvision models (nothing is downloaded: weights come from a
local file through ``FERMethod.load_weights``)."""
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


def resnet18_stages(net: nn.Module) -> list[nn.Module]:
    """The stem and four stages of a torchvision ResNet, for multi-scale features."""
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4]


def frames_to_batch(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """``[B,T,C,H,W]`` -> ``[B*T,C,H,W]`` plus (B, T), for per-frame 2-D networks."""
    b, t = x.shape[:2]
    return x.reshape(b * t, *x.shape[2:]), b, t
