"""``resnet18_lstm`` — the DFEW baseline ResNet-LSTM as its official code builds it.

X. Jiang et al., "DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions in the
Wild", ACM MM 2020, doi 10.1145/3394171.3413620; official code jiangxingxun/DFEW
``DataDistributedParallel/makemodel/ResLSTM.py`` (``resnet18_LSTM`` = ``ResNetLSTM(Bottleneck,
[2, 2, 2, 2])``) trained by ``libs/Performer.py`` with ``config/reslstm.yaml``.

Per frame: a bottleneck ResNet (stride on the first 1x1 conv, layers [2, 2, 2, 2]: 26 layers
despite the name) to a 2048-d feature (:class:`~fer_bench.nn.backbones.BottleneckV1ResNet`);
over the clip: a 3-layer LSTM of 256 units (batch first, one direction, no dropout); the
classifier is one linear layer over **all** ``frames`` LSTM outputs concatenated
(``Linear(16 * 256, 7)``), so the clip length is part of the network.  Conv and linear weights
are re-initialised ``kaiming_normal_(fan_in, relu)`` as ``model_init: True`` does.

The official model runs at 112 px only (``reshape(-1, 3, 112, 112)``, ``AvgPool2d(4)``); the
global average pooling here equals it there and works at any size.  FERV39K's R18-LSTM
(its README's baseline row) has no public code; this network stands in for it there.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_bench.methods.base import FERMethod
from fer_bench.nn.backbones import BottleneckV1ResNet, frames_to_batch, kaiming_fan_in_
from fer_bench.registry import METHODS


@METHODS.register("resnet18_lstm")
class ResNetLSTM(FERMethod):
    """Per-frame bottleneck ResNet [2,2,2,2] -> 3-layer LSTM(256) -> linear over all T outputs."""

    modality = "dynamic"
    default_input_size = 112
    default_in_chans = 3

    def __init__(self, frames: int = 16, lstm_hidden: int = 256, lstm_layers: int = 3, **kwargs: Any) -> None:
        super().__init__(frames=frames, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, **kwargs)
        self.frames = int(frames)
        self.backbone = BottleneckV1ResNet((2, 2, 2, 2), self.in_chans)
        self.lstm = nn.LSTM(self.backbone.out_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True)
        self.head = nn.Linear(self.frames * lstm_hidden, self.num_classes)
        kaiming_fan_in_(self.backbone)
        kaiming_fan_in_(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.frames:
            raise ValueError(f"resnet18_lstm classifies all {self.frames} LSTM outputs at once: expected clips "
                             f"[B, {self.frames}, C, H, W], got {tuple(x.shape)} (build with frames=T)")
        frames, b, t = frames_to_batch(x)
        out, _ = self.lstm(self.backbone(frames).reshape(b, t, -1))
        return self.head(out.reshape(b, -1))
