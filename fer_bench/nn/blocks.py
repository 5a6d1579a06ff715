"""Convolutional building blocks of the static paper methods.

* :func:`conv_bn_act` — 3x3 conv -> BN -> activation (the only kernel size of the
  small-kernel network of Su & Wang 2021).
* :class:`DotProductResidualBlock` — Su & Wang's "dot-product residual block" fused with
  spatial pyramid attention (SPANet, Guo et al., ICME 2020) [reconstruction:
  ``out = relu(x + F(x) ⊙ SPA(F(x)))``, see ``fer_bench/methods/metafiles/angular_sknet.yaml``].
* :class:`LowLevelFeatureMask` — Su & Wang's "low-level feature masking" [reconstruction:
  ``mask = sigmoid(conv3x3(upsample(high)))``, ``low ← low ⊙ mask``].
* :class:`ScheduledDropBlock2d` — ``torchvision.ops.DropBlock2d`` (Ghiasi, Lin, Le,
  "DropBlock: A regularization method for convolutional networks", NeurIPS 2018) whose drop
  probability can be ramped during training, as the DropBlock paper recommends (a linear
  schedule of the keep probability), and whose block size shrinks to fit small maps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DropBlock2d, drop_block2d

from fer_bench.nn.attention import SpatialPyramidAttention


def conv_bn_act(in_ch: int, out_ch: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """3x3 convolution (stride 1, padding 1, no bias) -> BatchNorm -> activation."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        act(),
    )


class DotProductResidualBlock(nn.Module):
    """``out = relu(x + F(x) ⊙ SPA(F(x)))`` (Su & Wang 2021, with SPANet attention) [reconstruction].

    ``F`` is two 3x3 conv-BN layers (ReLU between them), the residual branch of a ResNet
    basic block (He et al., CVPR 2016).  ``SPA(F(x))`` are the spatial-pyramid channel weights
    (:class:`~fer_bench.nn.attention.SpatialPyramidAttention`, bias-free FC layers) computed
    on the *residual branch*, as SENet (Hu et al. 2018, SE-ResNet) and SPANet place their
    attention, and multiplied element-wise ("dot product") into that branch before the
    identity is added (the revised reconstruction, ``fer_bench/methods/metafiles/angular_sknet.yaml``).
    Shape-preserving: ``[N, C, H, W] -> [N, C, H, W]``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.spa = SpatialPyramidAttention(channels, reduction, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.residual(x)
        return F.relu(x + r * self.spa(r))


class LowLevelFeatureMask(nn.Module):
    """Mask a low-level map with the semantics of a high-level one (Su & Wang 2021) [reconstruction].

    ``mask = sigmoid(conv3x3(upsample(high)))`` with the high-level map ``[N, C_h, h, w]``
    bilinearly upsampled to the low-level map's size and projected by a 3x3 convolution (3x3
    as every kernel of Su & Wang's network; ``metafiles/angular_sknet.yaml``) to its ``C_l`` channels,
    so each low-level channel gets its own per-position gate in (0, 1); then
    ``low ← low ⊙ mask``.  ``forward(low, high)`` returns ``(masked_low, mask)``.
    """

    def __init__(self, low_channels: int, high_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(high_channels, low_channels, 3, padding=1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.proj(up))
        return low * mask, mask


class ScheduledDropBlock2d(DropBlock2d):
    """``torchvision.ops.DropBlock2d`` with a settable drop probability and a size-safe block.

    ``p`` is an attribute the owner ramps during training (Ghiasi et al. 2018, sec. 3: a
    linear schedule from 0 to the target drop rate works best); :meth:`set_p` validates it.
    ``torchvision`` clips the block to the map size and rejects an even result (a 2x2 map
    with ``block_size=3``); here the block is clipped to the largest odd size that fits.
    Off in ``eval()`` (identity), like dropout.
    """

    def __init__(self, p: float = 0.0, block_size: int = 3, p_max: float | None = None) -> None:
        super().__init__(p=p, block_size=block_size)
        self.p_max = float(p if p_max is None else p_max)

    @staticmethod
    def linear_schedule(epoch: int, max_epochs: int, p_max: float) -> float:
        """Drop probability at ``epoch`` (0-based): ``p_max · epoch / (max_epochs − 1)``, i.e. 0 at the
        first epoch and ``p_max`` at the last (Ghiasi et al. 2018 ramp the keep probability linearly)."""
        return float(p_max) * min(1.0, max(0, int(epoch)) / max(1, int(max_epochs) - 1))

    def set_p(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bs = min(self.block_size, x.shape[-1], x.shape[-2])
        if bs % 2 == 0:
            bs -= 1
        return drop_block2d(x, self.p, max(1, bs), self.inplace, self.eps, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, p_max={self.p_max}, block_size={self.block_size}"
