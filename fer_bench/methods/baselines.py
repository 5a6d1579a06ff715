"""Baselines: torchvision ResNet-18 (static) and ResNet-18 + LSTM (dynamic).

``resnet18_lstm`` is the official baseline architecture of DFEW (Jiang et al., ACM MM 2020)
and FERV39K (Wang et al., CVPR 2022): per-frame ResNet-18 features, an LSTM over time, a
linear classifier on the last hidden state.
"""
from __future__ import annotations

import torch
from torch import nn

from fer_bench.methods.base import FERMethod, PaperRecord
from fer_bench.nn.backbones import frames_to_batch, resnet18_trunk
from fer_bench.registry import METHODS


@METHODS.register("resnet18")
class ResNet18(FERMethod):
    """torchvision ResNet-18 trained with cross entropy; grey or RGB, any input size."""

    modality = "static"
    default_input_size = 48
    default_in_chans = 1
    paper = PaperRecord(
        citation="K. He, X. Zhang, S. Ren, J. Sun, \"Deep Residual Learning for Image Recognition\", CVPR 2016",
        doi="10.1109/CVPR.2016.90",
        fidelity="Baseline: torchvision resnet18, unmodified except a 1-channel conv1 for grey input. "
        "FER anchors for this backbone: RAF-DB about 86-87 % with MS-Celeb-1M pre-training, far lower from scratch.",
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backbone = resnet18_trunk(self.in_chans, num_classes=None)
        self.head = nn.Linear(512, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@METHODS.register("resnet18_lstm")
class ResNet18LSTM(FERMethod):
    """Per-frame ResNet-18 -> LSTM -> FC over clips ``[B, T, C, H, W]``."""

    modality = "dynamic"
    default_input_size = 112
    default_in_chans = 3
    paper = PaperRecord(
        citation="X. Jiang et al., \"DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions "
        "in the Wild\", ACM MM 2020; Y. Wang et al., \"FERV39k: A Large-Scale Multi-Scene Dataset for "
        "Facial Expression Recognition in Videos\", CVPR 2022",
        doi="10.1145/3394171.3413620",
        reported={"dfew": {"uar": 51.32, "war": 63.85}, "ferv39k": {"uar": 30.92, "war": 42.59}},
        fidelity="Dataset papers' baseline architecture; LSTM width 512, one layer, last hidden state "
        "classified (the papers do not state these details).",
        reconstructed=True,
    )

    def __init__(self, lstm_hidden: int = 512, **kwargs) -> None:
        super().__init__(lstm_hidden=lstm_hidden, **kwargs)
        self.backbone = resnet18_trunk(self.in_chans, num_classes=None)
        self.lstm = nn.LSTM(512, lstm_hidden, batch_first=True)
        self.head = nn.Linear(lstm_hidden, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames, b, t = frames_to_batch(x)
        feats = self.backbone(frames).reshape(b, t, -1)
        out, _ = self.lstm(feats)
        return self.head(out[:, -1])
