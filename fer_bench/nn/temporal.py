"""Blocks of the dynamic (clip) methods: GCA / GCSA channel attention with temporal
coupling, the residual block that carries them, the dynamic-static fusion and the
pre-norm Transformer encoder used over space and over time.

Source: H. Li, H. Niu, Z. Zhu, F. Zhao, "Intensity-Aware Loss for Dynamic Facial Expression
Recognition in the Wild", AAAI 2023 (arXiv 2208.10335), and its official code
(github.com/muse1998/IAL-for-Facial-Expression-Recognition, ``modules.py``), read and
re-written here; the facts taken from it are cited where they are used.  GCSA is the
reconstruction of Liang, Dong & Li 2024 (J. Tianjin Univ. of Technology and Education
34(3):57-63) recorded in ``fer_bench/methods/metafiles/gcsa_cai.yaml``.

Clip tensors travel through the 2-D layers as frame batches ``[B*T, C, H, W]`` (clip-major:
the frames of clip ``b`` are rows ``b*T .. b*T+T-1``); the blocks that need the clip
structure take ``frames=T``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.errors import verify_choice
from fer_bench.nn.attention import SqueezeExcite

__all__ = [
    "conv_out_size",
    "temporal_coupling",
    "GlobalConvAttention",
    "GlobalConvSEAttention",
    "AttentionBasicBlock",
    "TransformerEncoder",
    "DynamicStaticFusion",
    "TemporalTransformer",
    "init_like_official",
]


def conv_out_size(n: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> int:
    """Spatial size after a convolution / pooling: ``floor((n + 2p - k) / s) + 1``."""
    return (n + 2 * padding - kernel) // stride + 1


def temporal_coupling(w: torch.Tensor, frames: int, eps: float = 1e-5) -> torch.Tensor:
    """Couple per-frame channel weights with the clip's mean weight.

    ``w`` is ``[B*T, C, 1, 1]``; returns ``sqrt(w * mean_T(w) + eps)`` (the geometric mean of
    a frame's weight and the clip's time-average weight), eps = 1e-5 as in the official
    ``modules.py`` ("introduce global temporal information").
    """
    n, c = w.shape[:2]
    if n % frames:
        raise ValueError(f"{n} frames in the batch is not a multiple of T={frames}")
    per_clip = w.reshape(n // frames, frames, c, *w.shape[2:])
    mean = per_clip.mean(dim=1, keepdim=True)
    return torch.sqrt(per_clip * mean + eps).reshape(w.shape)


class GlobalConvAttention(nn.Module):
    """GCA: global-convolution channel attention with temporal coupling (Li et al. 2023).

    For the block's feature map ``out`` (after conv2 + BN, before the residual add):

    * ``w0 = gc(out)``: a depthwise convolution (``groups=C``, no bias) whose kernel covers
      the whole ``map_size x map_size`` map, giving one value per channel ``[N, C, 1, 1]``
      (official kernel ``256 // planes * 7``, i.e. 14 at layer2 and 7 at layer3 for 112x112
      input: the map size; here it is sized from the map at construction);
    * auxiliary logits = ``Linear(C, 2C) -> Linear(2C, num_classes)`` (no biases, no
      activation between, as in the official ``AUX_fc``) on the time-mean of ``w0``: one
      row per clip;
    * ``w = 2 * sigmoid(conv1x1(C/16 -> C)(relu(conv1x1(C -> C/16)(w0))))`` (1x1 convs
      without bias, reduction r = 16);
    * temporal coupling ``w <- sqrt(w * mean_T(w) + 1e-5)`` (:func:`temporal_coupling`),
      switched off with ``coupling=False`` (an ablation; the published block couples).

    ``forward(out, frames)`` returns ``(w [N, C, 1, 1], aux_logits [N / T, num_classes])``.
    """

    def __init__(self, channels: int, map_size: int, num_classes: int, reduction: int = 16,
                 coupling: bool = True) -> None:
        super().__init__()
        if map_size < 1:
            raise ValueError(f"map_size must be >= 1, got {map_size}")
        hidden = max(1, channels // reduction)
        self.channels = channels
        self.map_size = map_size
        self.coupling = coupling
        self.gc = nn.Conv2d(channels, channels, kernel_size=map_size, groups=channels, bias=False)
        self.aux_fc = nn.Sequential(nn.Linear(channels, 2 * channels, bias=False),
                                    nn.Linear(2 * channels, num_classes, bias=False))
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def check_map(self, out: torch.Tensor) -> None:
        h, w = out.shape[-2:]
        if (h, w) != (self.map_size, self.map_size):
            raise ValueError(
                f"{type(self).__name__} was built for a {self.map_size}x{self.map_size} feature map (its global "
                f"convolution kernel covers the whole map) but got {h}x{w}: build the model with the input size "
                "of the clips it is given"
            )

    def global_weights(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w0 [N, C, 1, 1], 2*sigmoid(fc2(relu(fc1(w0)))) [N, C, 1, 1])`` before coupling."""
        self.check_map(out)
        w0 = self.gc(out)
        return w0, 2.0 * torch.sigmoid(self.fc2(F.relu(self.fc1(w0))))

    def aux_logits(self, w0: torch.Tensor, frames: int) -> torch.Tensor:
        n, c = w0.shape[:2]
        return self.aux_fc(w0.reshape(n // frames, frames, c).mean(dim=1))

    def couple(self, w: torch.Tensor, frames: int) -> torch.Tensor:
        return temporal_coupling(w, frames) if self.coupling else w

    def forward(self, out: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        w0, w = self.global_weights(out)
        return self.couple(w, frames), self.aux_logits(w0, frames)


class GlobalConvSEAttention(GlobalConvAttention):
    """GCSA **[reconstruction]** of Liang, Dong & Li 2024: GCA plus a squeeze-and-excitation
    branch.

    The SE branch (GAP -> FC C/16 -> ReLU -> FC C -> sigmoid, Hu et al. CVPR 2018; the
    shared :class:`~fer_bench.nn.attention.SqueezeExcite`) and the global-convolution
    branch of :class:`GlobalConvAttention` (``2*sigmoid(...)`` of the whole-map depthwise
    convolution) each give channel weights; their average is coupled over time exactly as
    in GCA.  The auxiliary head reads the global-convolution descriptor ``w0`` as in GCA.
    The paper's text is not public: the branch combination (mean of the two weights, before
    the coupling) is fer_bench's reading, recorded in ``metafiles/gcsa_cai.yaml``.
    """

    def __init__(self, channels: int, map_size: int, num_classes: int, reduction: int = 16,
                 coupling: bool = True) -> None:
        super().__init__(channels, map_size, num_classes, reduction=reduction, coupling=coupling)
        self.se = SqueezeExcite(channels, reduction)

    def forward(self, out: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        w0, w_gc = self.global_weights(out)
        w = 0.5 * (w_gc + self.se(out))
        return self.couple(w, frames), self.aux_logits(w0, frames)


_ATTENTION = {"gca": GlobalConvAttention, "gcsa": GlobalConvSEAttention}


class AttentionBasicBlock(nn.Module):
    """ResNet BasicBlock (He et al. 2016) with optional GCA / GCSA before the residual add.

    ``out = bn2(conv2(relu(bn1(conv1(x)))))``; with attention ``out = out * w`` (``w`` from
    the attention module, ``[N, C, 1, 1]``); then ``relu(out + identity)``.  The identity is
    ``BN(conv1x1(x, stride))`` when the stride or the width changes (torchvision's
    downsample).  Without attention this is the plain block (the official ``BasicBlock`` at
    layer1 and ``BasicBlock_act`` of the dynamic-static fusion).

    ``forward(x, frames)`` returns ``(out, aux_logits or None)``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *, attention: str | None = None,
                 map_size: int | None = None, num_classes: int = 7, coupling: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))
        self.attention = None
        if attention is not None:
            verify_choice(attention, "attention", sorted(_ATTENTION))
            if map_size is None:
                raise ValueError("an attention block needs the map_size its global convolution covers")
            self.attention = _ATTENTION[attention](planes, map_size, num_classes, coupling=coupling)

    def forward(self, x: torch.Tensor, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        aux = None
        if self.attention is not None:
            if frames is None:
                raise ValueError("an attention block needs frames=T to couple the frames of a clip")
            w, aux = self.attention(out, frames)
            out = out * w
        return F.relu(out + identity), aux


class _Attention(nn.Module):
    """Multi-head self-attention: ``Linear(dim, 3*h*d, bias=False)`` -> softmax(QK^T/sqrt(d))V
    -> ``Linear(h*d, dim)`` (the official ``Attention``; dropout after the projection)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(dim_head)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class TransformerEncoder(nn.Module):
    """Pre-norm Transformer encoder (ViT form), as the official ``Transformer``:
    per layer ``x = x + Attn(LN(x))``, ``x = x + FF(LN(x))`` with
    ``FF = Linear(dim, mlp) -> GELU (tanh form) -> Dropout -> Linear(mlp, dim)``; no final
    norm.  Input and output ``[B, N, dim]``."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim),
                "attn": _Attention(dim, heads, dim_head, dropout),
                "norm2": nn.LayerNorm(dim),
                "ff": nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                    nn.Linear(mlp_dim, dim)),
            }))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer["attn"](layer["norm1"](x))
            x = x + layer["ff"](layer["norm2"](x))
        return x


class DynamicStaticFusion(nn.Module):
    """Dynamic-static fusion of the official code (``ResNet.forward`` after layer3).

    Input: layer3 maps of a clip ``[B*T, C, s, s]``.  Output: ``[B, T-1, C * s' * s']`` with
    ``s' = ceil(s / 2)`` (4 for the 7x7 map of a 112x112 input, hence the official 4096).

    * dynamic branch: frame differences ``x[t+1] - x[t]`` (t = 0..T-2) through 3 residual
      blocks (the first with stride 2; official ``layer4 = [BasicBlock_act] * 3``);
    * static branch: the frames ``x[0..T-2]`` through a patch embedding
      (conv3x3 stride 2 -> BN -> ReLU) and a small *spatial Transformer* over the ``s'*s'``
      patch tokens with a learned position embedding (official ``pos_transformer``: dim C,
      depth 2, 4 heads of 32, MLP 256).  This is a Transformer over spatial positions, not a
      spatial transformer network (STN): nothing is warped.
    * the two ``[B*(T-1), C, s', s']`` maps are added and flattened per step.
    """

    def __init__(self, channels: int, map_size: int, depth: int = 2, heads: int = 4, dim_head: int = 32,
                 mlp_dim: int = 256, blocks: int = 3) -> None:
        super().__init__()
        self.map_size = map_size
        self.out_size = conv_out_size(map_size)
        self.channels = channels
        self.dynamic = nn.ModuleList(
            [AttentionBasicBlock(channels, channels, stride=2 if i == 0 else 1) for i in range(blocks)]
        )
        self.patch_embedding = nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.spatial_pos = nn.Parameter(torch.randn(1, self.out_size * self.out_size, channels))
        self.spatial_transformer = TransformerEncoder(channels, depth, heads, dim_head, mlp_dim)

    @property
    def out_dim(self) -> int:
        return self.channels * self.out_size * self.out_size

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        if frames < 2:
            raise ValueError(f"the dynamic-static fusion needs clips of at least 2 frames, got T={frames}")
        clips = x.reshape(n // frames, frames, c, h, w)
        b = clips.shape[0]
        diff = (clips[:, 1:] - clips[:, :-1]).reshape(-1, c, h, w)
        for block in self.dynamic:
            diff, _ = block(diff)
        static = self.patch_embedding(clips[:, :-1].reshape(-1, c, h, w))
        s = static.shape[-1]
        tokens = static.flatten(2).transpose(1, 2) + self.spatial_pos
        static = self.spatial_transformer(tokens).transpose(1, 2).reshape(-1, c, s, s)
        return (static + diff).reshape(b, frames - 1, -1)


class TemporalTransformer(nn.Module):
    """Learned position embedding + :class:`TransformerEncoder` over the ``T-1`` fused steps
    (official ``temporal_transformer``: depth 2, 4 heads of 32, MLP 512, on ``dim`` =
    fused feature size; position table of 16 rows of which the first 15 are used).

    The table has ``max_steps`` rows; a clip with ``T-1 <= max_steps`` steps uses the first
    ``T-1`` rows (as the official code), a longer clip gets the table linearly interpolated
    to ``T-1`` rows (the usual ViT practice for longer sequences).
    """

    def __init__(self, dim: int, max_steps: int = 16, depth: int = 2, heads: int = 4, dim_head: int = 32,
                 mlp_dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, max_steps, dim))
        self.encoder = TransformerEncoder(dim, depth, heads, dim_head, mlp_dim, dropout)

    def position(self, steps: int) -> torch.Tensor:
        table = self.pos_embedding
        if steps <= table.shape[1]:
            return table[:, :steps]
        return F.interpolate(table.transpose(1, 2), size=steps, mode="linear", align_corners=True).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x + self.position(x.shape[1]))


def init_like_official(module: nn.Module) -> None:
    """Initialisation of the official ``ResNet.__init__``: every conv ``kaiming_normal_``
    (fan_out, ReLU gain), every BatchNorm weight 1 / bias 0; Linear and LayerNorm keep the
    PyTorch defaults, position embeddings are standard normal."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)

