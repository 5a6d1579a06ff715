"""``multiscale_ccl`` — Wen, Zhou, Gan & Luo 2024: discriminative multiscale feature
extraction with a centre cosine loss.

Wen Xiaoyu, Zhou Juxiang, Gan Jianhou, Luo Sen, "A discriminative multiscale feature
extraction network for facial expression recognition in the wild", Measurement Science and
Technology 2024, doi 10.1088/1361-6501/ad191c.

Stated by the paper (abstract): a CNN extracting deep semantic and shallow geometric
features at several scales; channel-wise self-attention extracts and compresses salient
features; a "center cosine loss" inspired by the large cosine margin of face recognition
(CosFace).  Reported accuracy: RAF-DB 89.63 %, AffectNet 61.82 %, FERPlus 91.15 %.  The
abstract does not say whether the AffectNet number is the 7- or the 8-class protocol (61.82
sits in the 8-class range of this lineage: DAN 62.09 on 8 classes, 65.69 on 7): the static
suite runs both, and compares neither with it as a reproduction.

**Reconstruction** (recorded in the method's metafile,
``fer_bench/methods/metafiles/multiscale_ccl.yaml``):

* torchvision ResNet-18; layer2 (128 ch, 1/8), layer3 (256 ch, 1/16) and layer4 (512 ch,
  1/32) each reduced by conv1x1-BN-ReLU to 256 channels, average-pooled to layer4's size
  (``adaptive_avg_pool2d``) and concatenated (768 channels);
* channel-wise self-attention = SE gating over the 768 channels (reduction 16,
  :class:`~fer_bench.nn.attention.SqueezeExcite`), then GAP and a linear 512-d embedding;
* loss = CosFace (Wang et al., CVPR 2018; s = 30, m = 0.35) on the L2-normalised embedding
  and class weights + λ·mean(1 − cos(f_i, c_{y_i})), λ = 0.1, learnable centres.  The
  evaluation logits are the scaled cosines ``s·cos θ`` (no margin).

Default input: RGB 224x224.  The paper's resolution is not public; 224 is the resolution of
the ResNet-18 RAF-DB/AffectNet/FERPlus methods whose accuracies are in the reported range
(e.g. SCN, DAN, EAC), and at 112 layer4 would be a 4x4 map, leaving little for the
multi-scale fusion to pool.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.methods.margin import MarginCentreMethod
from fer_bench.nn.attention import SqueezeExcite
from fer_bench.nn.backbones import resnet18_trunk
from fer_bench.nn.losses import CenterCosineLoss, CosFaceLoss, CosineClassifier
from fer_bench.registry import METHODS


def _lateral(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


@METHODS.register("multiscale_ccl")
class MultiScaleCCL(MarginCentreMethod):
    """ResNet-18 layer2/3/4 fused at 256 ch each, SE channel attention, 512-d embedding,
    CosFace + centre-cosine loss (Wen et al. 2024) [reconstruction]."""

    modality = "static"
    margin_attr = "cosface"
    default_input_size = 224
    default_in_chans = 3

    def __init__(self, fuse_channels: int = 256, embedding_dim: int = 512, cos_s: float = 30.0, cos_m: float = 0.35,
                 center_weight: float = 0.1, se_reduction: int = 16, **kwargs: Any) -> None:
        super().__init__(fuse_channels=fuse_channels, embedding_dim=embedding_dim, cos_s=cos_s, cos_m=cos_m,
                         center_weight=center_weight, se_reduction=se_reduction, **kwargs)
        self.backbone = resnet18_trunk(self.in_chans, num_classes=None)
        self.lateral = nn.ModuleList([_lateral(c, fuse_channels) for c in (128, 256, 512)])
        fused = 3 * fuse_channels
        self.channel_attention = SqueezeExcite(fused, se_reduction)
        self.embedding = nn.Linear(fused, embedding_dim)
        self.classifier = CosineClassifier(embedding_dim, self.num_classes)
        self.cosface = CosFaceLoss(cos_s, cos_m)
        self.center_loss = CenterCosineLoss(self.num_classes, embedding_dim)
        self.center_weight = float(center_weight)

    def fused_map(self, x: torch.Tensor) -> torch.Tensor:
        """The SE-gated concatenation of the three scales ``[N, 3·fuse_channels, h4, w4]``."""
        b = self.backbone
        x = b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))
        c2 = b.layer2(x)
        c3 = b.layer3(c2)
        c4 = b.layer4(c3)
        size = c4.shape[-2:]
        maps = [F.adaptive_avg_pool2d(lat(c), size) for lat, c in zip(self.lateral, (c2, c3, c4))]
        fused = torch.cat(maps, dim=1)
        return fused * self.channel_attention(fused)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.fused_map(x).mean(dim=(2, 3)))
