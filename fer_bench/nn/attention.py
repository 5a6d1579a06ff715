"""Channel and spatial attention blocks."""
from __future__ import annotations

import torch
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
