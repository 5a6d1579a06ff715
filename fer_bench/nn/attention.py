"""Channel and spatial attention blocks used by the paper methods.

Every block here returns *weights* (or a refined map, where the block's paper defines it as
a refinement) so that it can be reused on its own:

* :class:`SqueezeExcite` — Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
* :class:`SpatialPyramidAttention` — Guo, Yuan, Li, Wang, Zhao, "SPANet: Spatial Pyramid
  Attention Network for Enhanced Image Recognition", ICME 2020 (channel weights from a 1x1,
  2x2 and 4x4 average-pooling pyramid, i.e. 21 values per channel).
* :class:`ChannelAttention`, :class:`SpatialAttention`, :class:`CBAM` — Woo, Park, Lee,
  Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
* :class:`SelectiveAttention` — the selective attention of Rajoli, Lotfi, Atyabi, Afghah,
  CISS 2023 (arXiv 2302.04108): pixel-wise and element-wise coefficients computed from the
  last (high-semantic) feature map.  The paper's layer details are not public; the layout
  used here is the reconstruction recorded in ``fer_bench/methods/metafiles/tcl_selective.yaml``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation channel weights (Hu et al., CVPR 2018): GAP -> FC C/r -> ReLU ->
    FC C -> sigmoid.  ``forward`` returns the weights ``[N, C, 1, 1]`` (multiply them in)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class SpatialPyramidAttention(nn.Module):
    """SPA channel weights (Guo et al., ICME 2020, SPANet).

    The input ``[N, C, H, W]`` is average-pooled to each pyramid level (1x1, 2x2, 4x4 by
    default: 1 + 4 + 16 = 21 values per channel), the pooled maps are flattened and
    concatenated (``21·C`` values), then FC ``21·C -> C/r`` -> ReLU -> FC ``C/r -> C`` ->
    sigmoid.  Unlike SE's single global average, the pyramid keeps coarse *where*
    information in the channel descriptor.  ``forward`` returns weights ``[N, C, 1, 1]`` in
    (0, 1).  Adaptive pooling makes it work on any map size (a 2x2 map pooled to 4x4 repeats
    values, which is what ``adaptive_avg_pool2d`` does).  ``bias=False`` gives the bias-free
    FC layers of SENet/SPANet's excitation (Guo et al., ICME 2020: FC C·21→C/16 without bias).
    """

    def __init__(self, channels: int, reduction: int = 16, levels: tuple[int, ...] = (1, 2, 4),
                 bias: bool = True) -> None:
        super().__init__()
        self.levels = tuple(int(l) for l in levels)
        hidden = max(1, channels // reduction)
        n_in = channels * sum(l * l for l in self.levels)
        self.fc = nn.Sequential(
            nn.Linear(n_in, hidden, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=bias),
            nn.Sigmoid(),
        )

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated pyramid ``[N, C·Σ l²]`` (level-major, as the pooled maps are stacked)."""
        return torch.cat([F.adaptive_avg_pool2d(x, l).flatten(1) for l in self.levels], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.descriptor(x))[:, :, None, None]


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al., ECCV 2018, eq. 2):
    ``M_c = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))`` with one MLP shared by both
    descriptors (``C -> C/r -> ReLU -> C``, no bias as in the paper's figure).  Returns
    ``[N, C, 1, 1]`` weights in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Woo et al., ECCV 2018, eq. 3):
    ``M_s = sigmoid(conv7x7([AvgPool_c(F); MaxPool_c(F)]))`` — the channel-wise mean and max
    maps are stacked (2 channels) and convolved to one map.  Returns ``[N, 1, H, W]`` in (0, 1)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(desc))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): channel attention, then
    spatial attention, applied sequentially — ``F' = M_c(F) ⊙ F``, ``F'' = M_s(F') ⊙ F'``.
    ``forward`` returns the refined map ``F''`` (same shape as the input)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


class SelectiveAttention(nn.Module):
    """Selective attention over a high-semantic map (Rajoli et al., CISS 2023) [reconstruction].

    * pixel-wise map ``P = sigmoid(conv1x1(X))``: ``[N, 1, H, W]``, one coefficient per position;
    * element-wise vector ``E = sigmoid(MLP(GAP(X)))``: ``[N, C]``, one coefficient per
      feature dimension (MLP ``C -> C/r -> ReLU -> C``, as in SE);
    * feature ``f = GAP(X ⊙ P̂) ⊙ E``: ``[N, C]``, where ``P̂ = P / mean_hw(P)`` is the pixel
      map rescaled to spatial mean 1 (``normalize_pixel=True``, the default), i.e. ``f`` is the
      ``P``-weighted average of ``X`` over positions.  ``normalize_pixel=False`` gives the
      literal ``GAP(X ⊙ P)`` of the reconstruction (``metafiles/tcl_selective.yaml``).

    Why the rescaling (a choice made here; the paper's exact form is not public): with the
    literal form, the features shrink when ``P`` does, and nothing stops the optimiser from
    driving ``P`` to 0.  Measured on 48x48 synthetic faces, ResNet-18 trunk, AdamW 1e-3,
    batch 16: the mean of ``P`` fell from 0.49 to 0.04 within 20 steps and stayed near 0.01-0.05,
    and cross entropy stayed at ln 7 = 1.95 for 100 steps (no learning).  With the rescaled map
    the same run reached a cross entropy of 1.37 by step 50.  The rescaled map still selects
    positions (their relative weights), but it cannot switch the whole feature off.

    ``forward`` returns ``(f, P, E)`` so callers (and tests) can inspect the coefficients.
    The element-wise vector plays the role of DACL's per-dimension attention (Farzaneh & Qi,
    WACV 2021), which the paper builds on; the pixel-wise map adds the spatial selection.
    """

    def __init__(self, channels: int, reduction: int = 16, normalize_pixel: bool = True) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.normalize_pixel = normalize_pixel
        self.pixel = nn.Conv2d(channels, 1, 1)
        self.element = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pixel = torch.sigmoid(self.pixel(x))
        element = torch.sigmoid(self.element(x.mean(dim=(2, 3))))
        weights = pixel / pixel.mean(dim=(2, 3), keepdim=True) if self.normalize_pixel else pixel
        feat = (x * weights).mean(dim=(2, 3)) * element
        return feat, pixel, element
