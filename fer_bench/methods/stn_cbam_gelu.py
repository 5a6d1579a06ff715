"""``stn_cbam_gelu`` — Wang, Wang & Cui 2021: STN + channel/spatial attention + GELU.

Caixia Wang, Zhihui Wang, Dong Cui, "Facial Expression Recognition with Attention
Mechanism", CISP-BMEI 2021, doi 10.1109/CISP-BMEI53629.2021.9624355.

Stated by the paper (abstract): a spatial transformer network first transforms the input
image; channel attention and spatial attention are added to the CNN; GELU activations.  No
numbers are public.

**Reconstruction** (recorded in the method's metafile,
``fer_bench/methods/metafiles/stn_cbam_gelu.yaml``):

* STN (Jaderberg et al., NeurIPS 2015) on the 48x48 input: localisation conv7 (8) -> maxpool
  -> ReLU -> conv5 (10) -> maxpool -> ReLU -> FC 32 -> FC 6, initialised to the identity,
  ``F.affine_grid`` + ``F.grid_sample`` (:class:`~fer_bench.nn.stn.SpatialTransformer`);
* four stages of two 3x3 conv-BN-GELU layers (widths 64-128-256-512), each followed by CBAM
  (Woo et al., ECCV 2018: channel MLP on average- and max-pooled maps, reduction 16, then a
  7x7 spatial attention on the channel-mean and channel-max maps) and 2x2 max-pooling;
* global average pooling, dropout 0.5, linear classifier; cross entropy.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_bench.methods.base import FERMethod
from fer_bench.nn.attention import CBAM
from fer_bench.nn.blocks import conv_bn_act
from fer_bench.nn.stn import SpatialTransformer
from fer_bench.registry import METHODS


@METHODS.register("stn_cbam_gelu")
class STNCBAMGELU(FERMethod):
    """Spatial transformer -> 4 x (2 conv3x3-BN-GELU + CBAM + maxpool) -> GAP -> dropout -> FC
    (Wang, Wang & Cui 2021) [reconstruction]."""

    modality = "static"
    default_input_size = 48
    default_in_chans = 1

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), convs_per_stage: int = 2,
                 cbam_reduction: int = 16, dropout: float = 0.5, **kwargs: Any) -> None:
        widths = tuple(int(w) for w in widths)
        super().__init__(widths=list(widths), convs_per_stage=convs_per_stage, cbam_reduction=cbam_reduction,
                         dropout=dropout, **kwargs)
        self.stn = SpatialTransformer(self.in_chans, self.input_size)
        stages = []
        prev = self.in_chans
        for w in widths:
            layers: list[nn.Module] = []
            for _ in range(convs_per_stage):
                layers.append(conv_bn_act(prev, w, act=nn.GELU))
                prev = w
            layers += [CBAM(w, cbam_reduction), nn.MaxPool2d(2, ceil_mode=True)]
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(prev, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stn(x))
        return self.head(self.dropout(x.mean(dim=(2, 3))))
