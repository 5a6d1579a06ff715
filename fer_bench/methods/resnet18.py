"""The static ResNet-18 baselines as the FER literature runs them (their metafiles cite the code).

``resnet18_cifar`` — from scratch at the dataset's native grey size, CIFAR stem (3x3 stride-1
conv, no max-pool): the FER2013 / CK+ baseline of WuJie1010/Facial-Expression-Recognition.Pytorch
(``models/resnet.py``, ``mainpro_FER.py``, ``mainpro_CK+.py``): 44 px crops of the 48 px faces,
grey replicated to three channels, SGD with a late step decay, ten-crop test.  Its head is the
official one: ``avg_pool2d(layer4, 4)`` (at 44 px the 6x6 map's top-left 4x4 window: a CIFAR
32 px habit, kept), dropout 0.5, linear.

``resnet18_pretrained`` — torchvision ResNet-18 (ImageNet stem) at 224 RGB from MS-Celeb-1M (or
ImageNet) weights: the RAF-DB / AffectNet softmax baseline of the DACL code
(amirhfarzaneh/dacl ``main.py``, ``workspace.py``; Farzaneh & Qi, WACV 2021), whose README
gives its anchors.  Alias ``resnet18``: the old single baseline row (the same network, then run
at 48 px grey from scratch), so that suites, scripts and checkpoints naming it still resolve.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.methods.base import FERMethod
from fer_bench.nn.backbones import cifar_resnet18, resnet18_trunk
from fer_bench.registry import METHODS


@METHODS.register("resnet18_cifar")
class ResNet18CIFAR(FERMethod):
    """CIFAR-stem ResNet-18 -> ``avg_pool2d(·, 4)`` -> dropout 0.5 -> linear, cross entropy."""

    modality = "static"
    default_input_size = 44
    default_in_chans = 3

    def __init__(self, dropout: float = 0.5, **kwargs: Any) -> None:
        super().__init__(dropout=dropout, **kwargs)
        self.backbone = cifar_resnet18(self.in_chans)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(512, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        m = b.layer4(b.layer3(b.layer2(b.layer1(b.relu(b.bn1(b.conv1(x)))))))
        # the official F.avg_pool2d(out, 4): one 4x4 window at 32-55 px; averaged over any more windows
        pooled = F.avg_pool2d(m, min(4, m.shape[-2], m.shape[-1])).mean(dim=(2, 3))
        return self.head(self.dropout(pooled))


@METHODS.register("resnet18_pretrained")
class ResNet18Pretrained(FERMethod):
    """torchvision ResNet-18 with a linear classifier, cross entropy; grey or RGB, any input size."""

    modality = "static"
    default_input_size = 224
    default_in_chans = 3

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = resnet18_trunk(self.in_chans, num_classes=None)
        self.head = nn.Linear(512, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


METHODS.alias("resnet18", "resnet18_pretrained")
