"""Dynamic FER with global-convolution attention and the intensity-aware loss.

``ial_gca``: IAL + GCA as published — H. Li, H. Niu, Z. Zhu, F. Zhao, "Intensity-Aware Loss
for Dynamic Facial Expression Recognition in the Wild", AAAI 2023 (arXiv 2208.10335); the
architecture, loss weights and optimiser follow the official code
(github.com/muse1998/IAL-for-Facial-Expression-Recognition: ``modules.py``,
``final_model.py``, ``main.py``), re-written here.

``gcsa_cai``: **[reconstruction]** of 梁成旭, 董建设, 李金良 (Liang, Dong & Li), "全局卷积和双注意力
机制在动态表情识别中的应用", J. Tianjin Univ. of Technology and Education 2024, 34(3):57-63:
IAL + GCA with GCA replaced by GCSA (SE + global-convolution weights, averaged) and the CAI
loss (CE + auxiliary CE on layer2 and layer3 + IAL); see ``metafiles/gcsa_cai.yaml``.

Network (both methods; input clips ``[B, T, C, H, W]`` in [0, 1], T >= 2)::

    stem   conv3x3 s2 (C->64)-BN-ReLU-conv3x3 (64->64)-BN-ReLU-maxpool 3/2     112 -> 28
    layer1 BasicBlock(64)                                                           28
    layer2 BasicBlock(128, s2) + GCA/GCSA (global conv kernel = map, 14 at 112)   14
    layer3 BasicBlock(256, s2) + GCA/GCSA (kernel 7 at 112)                        7
    fusion frame differences -> 3 BasicBlocks(256, first s2);                      4
           frames 0..T-2 -> conv3x3 s2 + spatial Transformer over 4x4 tokens; sum
    temporal Transformer over the T-1 steps (dim 256*4*4 = 4096 at 112), mean over time,
    Linear(4096, num_classes)

Loss (official ``main.py``): ``CE + 0.05 * CE(aux_layer2) + 0 * CE(aux_layer3) + 0.1 * IAL``;
the layer3 term is kept with weight 0 as in the official code (it also keeps every
parameter in the graph, which DDP needs).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_bench.methods.base import FERMethod
from fer_bench.nn.functional import soft_cross_entropy
from fer_bench.nn.ial import intensity_aware_loss
from fer_bench.nn.temporal import (
    AttentionBasicBlock,
    DynamicStaticFusion,
    TemporalTransformer,
    conv_out_size,
    init_like_official,
)
from fer_bench.registry import METHODS

__all__ = ["IALNet", "IALGCA", "GCSACAI"]

IAL_CITATION = ("H. Li, H. Niu, Z. Zhu, F. Zhao, \"Intensity-Aware Loss for Dynamic Facial Expression "
                "Recognition in the Wild\", AAAI 2023 (arXiv 2208.10335)")
IAL_CODE = "https://github.com/muse1998/IAL-for-Facial-Expression-Recognition"

# the official recipe (optimiser, schedule, batch, augmentation): recipes/ial_gca.yaml


class IALNet(nn.Module):
    """The IAL+GCA network (official ``GCA_IAL()`` + ``GenerateModel``) for any input size.

    The global-convolution kernels are sized from ``input_size`` at construction (the
    layer2 / layer3 map sizes), so a forward at another spatial size raises a clear error.
    ``forward(x)`` returns ``(logits [B, K], aux_layer2 [B, K], aux_layer3 [B, K])``.
    """

    def __init__(self, in_chans: int = 3, input_size: int = 112, num_classes: int = 7, attention: str = "gca",
                 coupling: bool = True, max_steps: int = 16) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.input_size = input_size
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        s1 = conv_out_size(conv_out_size(input_size))  # stem conv s2, then max-pool s2
        s2 = conv_out_size(s1)
        s3 = conv_out_size(s2)
        self.map_sizes = {"layer1": s1, "layer2": s2, "layer3": s3}
        self.layer1 = AttentionBasicBlock(64, 64)
        self.layer2 = AttentionBasicBlock(64, 128, stride=2, attention=attention, map_size=s2,
                                          num_classes=num_classes, coupling=coupling)
        self.layer3 = AttentionBasicBlock(128, 256, stride=2, attention=attention, map_size=s3,
                                          num_classes=num_classes, coupling=coupling)
        self.fusion = DynamicStaticFusion(256, s3)
        self.temporal = TemporalTransformer(self.fusion.out_dim, max_steps=max_steps)
        self.fc = nn.Linear(self.fusion.out_dim, num_classes)
        init_like_official(self)

    @property
    def feature_dim(self) -> int:
        return self.fusion.out_dim

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5:
            raise ValueError(f"expected clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        b, t, c, h, w = x.shape
        if c != self.in_chans:
            raise ValueError(f"built for {self.in_chans}-channel frames, got {c} channels")
        if (h, w) != (self.input_size, self.input_size):
            raise ValueError(
                f"built for {self.input_size}x{self.input_size} frames (the global convolutions cover the "
                f"{self.map_sizes['layer2']}x{self.map_sizes['layer2']} and {self.map_sizes['layer3']}x"
                f"{self.map_sizes['layer3']} maps of layer2/layer3), got {h}x{w}: build with input_size={h}"
            )
        if t < 2:
            raise ValueError(f"clips need at least 2 frames (frame differences), got T={t}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check_input(x)
        b, t = x.shape[:2]
        f = self.stem(x.reshape(b * t, *x.shape[2:]))
        f, _ = self.layer1(f)
        f, aux2 = self.layer2(f, t)
        f, aux3 = self.layer3(f, t)
        steps = self.temporal(self.fusion(f, t))  # [B, T-1, D]
        return self.fc(steps.mean(dim=1)), aux2, aux3


@METHODS.register("ial_gca")
class IALGCA(FERMethod):
    """IAL + GCA (Li et al., AAAI 2023) as published in the official code.

    Hyper-parameters of its own: ``aux2_weight`` (0.05), ``aux3_weight`` (0: the official
    code multiplies the layer3 auxiliary CE by 0), ``ial_weight`` (0.1), ``coupling`` (GCA
    temporal coupling, True), ``max_steps`` (rows of the temporal position table, 16).
    """

    modality = "dynamic"
    default_input_size = 112
    default_in_chans = 3
    attention_kind = "gca"
    loss_weights = {"aux2_weight": 0.05, "aux3_weight": 0.0, "ial_weight": 0.1}

    def __init__(self, aux2_weight: float | None = None, aux3_weight: float | None = None,
                 ial_weight: float | None = None, coupling: bool = True, max_steps: int = 16, **kwargs: Any) -> None:
        w = dict(self.loss_weights)
        for k, v in (("aux2_weight", aux2_weight), ("aux3_weight", aux3_weight), ("ial_weight", ial_weight)):
            if v is not None:
                w[k] = float(v)
        super().__init__(coupling=coupling, max_steps=max_steps, **w, **kwargs)
        self.net = IALNet(self.in_chans, self.input_size, self.num_classes, attention=self.attention_kind,
                          coupling=coupling, max_steps=max_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]

    def training_outputs(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, aux2, aux3 = self.net(x)
        return {"logits": logits, "aux_layer2": aux2, "aux_layer3": aux3}

    def compute_loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.hparams
        ce = soft_cross_entropy(out["logits"], y, hp.label_smoothing)
        aux2 = soft_cross_entropy(out["aux_layer2"], y)
        aux3 = soft_cross_entropy(out["aux_layer3"], y)
        ial = intensity_aware_loss(out["logits"], y)
        total = ce + hp.aux2_weight * aux2 + hp.aux3_weight * aux3 + hp.ial_weight * ial
        parts = {"ce": ce, "aux_layer2": aux2, "aux_layer3": aux3, "ial": ial}
        return total, {k: v.detach() for k, v in parts.items()}


@METHODS.register("gcsa_cai")
class GCSACAI(IALGCA):
    """GCSA + CAI loss (Liang, Dong & Li 2024) — a reconstruction on the IAL+GCA network.

    GCA is replaced by GCSA (:class:`fer_bench.nn.temporal.GlobalConvSEAttention`: mean of
    the SE and global-convolution channel weights, then the same temporal coupling); the
    CAI loss is ``CE + 0.05 * CE(aux_layer2) + 0.05 * CE(aux_layer3) + 0.1 * IAL``.
    Training recipe: that of IAL+GCA (the paper's is not public).
    """

    attention_kind = "gcsa"
    loss_weights = {"aux2_weight": 0.05, "aux3_weight": 0.05, "ial_weight": 0.1}
