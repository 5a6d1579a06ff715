"""Spatial transformer (Jaderberg, Simonyan, Zisserman, Kavukcuoglu, "Spatial Transformer
Networks", NeurIPS 2015).

A localisation network regresses the 6 parameters θ of an affine map; ``F.affine_grid``
builds the sampling grid and ``F.grid_sample`` resamples the input bilinearly.  The last
layer is initialised to the identity transform (zero weights, bias ``[1, 0, 0, 0, 1, 0]``)
so training starts from the untouched image, as the STN paper does.

Localisation layout [reconstruction, ``fer_bench/methods/metafiles/stn_cbam_gelu.yaml``, the widely used
48x48 FER STN]: conv7x7 (8) -> maxpool 2 -> ReLU -> conv5x5 (10) -> maxpool 2 -> ReLU ->
FC 32 -> ReLU -> FC 6.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _loc_out_side(n: int) -> int:
    """Side of the localisation's last map for an ``n x n`` input (valid convs, floor pools)."""
    return ((n - 6) // 2 - 4) // 2


class SpatialTransformer(nn.Module):
    """Affine spatial transformer for ``[N, C, H, W]`` inputs of any size.

    The localisation network is built for ``input_size`` (its flattened size is computed
    from it: ``10 · s²`` with ``s = ((n − 6)//2 − 4)//2``, 640 for 48x48).  An input of
    another size is resized for the *localisation only* (to ``loc_size``); the predicted
    transform is applied to the input at its own resolution.  Inputs smaller than 22 px are
    localised at 22 px, the smallest size the two valid convolutions and pools accept.
    """

    MIN_LOC_SIZE = 22

    def __init__(self, in_chans: int = 1, input_size: int = 48) -> None:
        super().__init__()
        self.loc_size = max(int(input_size), self.MIN_LOC_SIZE)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
        )
        side = _loc_out_side(self.loc_size)
        self.flat = 10 * side * side
        self.regressor = nn.Sequential(nn.Linear(self.flat, 32), nn.ReLU(inplace=True), nn.Linear(32, 6))
        nn.init.zeros_(self.regressor[-1].weight)
        with torch.no_grad():
            self.regressor[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted affine parameters ``[N, 2, 3]``."""
        if x.shape[-2:] != (self.loc_size, self.loc_size):
            x = F.interpolate(x, size=(self.loc_size, self.loc_size), mode="bilinear", align_corners=False)
        return self.regressor(self.features(x).flatten(1)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
