"""Blocks of the dynamic methods: the intensity-aware loss, GCA / GCSA, temporal coupling,
the attention BasicBlock, the dynamic-static fusion and the temporal Transformer."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_bench.nn.attention import SqueezeExcite
from fer_bench.nn.ial import IntensityAwareLoss, hardest_negative, intensity_aware_loss
from fer_bench.nn.temporal import (
    AttentionBasicBlock,
    DynamicStaticFusion,
    GlobalConvAttention,
    GlobalConvSEAttention,
    TemporalTransformer,
    TransformerEncoder,
    conv_out_size,
    temporal_coupling,
)


# -- intensity-aware loss ---------------------------------------------------------------
def test_ial_uses_highest_non_target_logit_when_target_is_the_max():
    # target 0 holds the overall max (5); the highest NON-target logit is class 2 (3), not 3 (2)
    z = torch.tensor([[5.0, 1.0, 3.0, 2.0]])
    y = torch.tensor([0])
    assert hardest_negative(z, y).tolist() == [2]
    expected = math.log(1 + math.exp(3.0 - 5.0))  # -log(e^5 / (e^5 + e^3)) = 0.126928
    assert intensity_aware_loss(z, y).item() == pytest.approx(expected, abs=1e-6)
    assert intensity_aware_loss(z, y).item() == pytest.approx(0.126928, abs=1e-6)
    wrong_j = math.log(1 + math.exp(2.0 - 5.0))  # what picking class 3 would give
    assert abs(intensity_aware_loss(z, y).item() - wrong_j) > 0.07


def test_ial_three_class_exact_value_and_batch_mean():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, 4.0, -1.0]])
    y = torch.tensor([2, 0])
    # row 0: y=2 (0.5), j=1 (2.0): -log(e^0.5/(e^0.5+e^2)) = log(1+e^1.5) = 1.701413
    # row 1: y=0 (0.0), j=1 (4.0): log(1+e^4) = 4.018150
    per = intensity_aware_loss(z, y, reduction="none")
    assert per.tolist() == pytest.approx([1.701413, 4.018150], abs=1e-5)
    assert intensity_aware_loss(z, y).item() == pytest.approx((1.701413 + 4.018150) / 2, abs=1e-5)
    assert intensity_aware_loss(z, y, reduction="sum").item() == pytest.approx(1.701413 + 4.018150, abs=1e-5)
    assert IntensityAwareLoss()(z, y).item() == pytest.approx((1.701413 + 4.018150) / 2, abs=1e-5)


def test_ial_near_zero_when_target_dominates():
    z = torch.tensor([[20.0, 0.0, -1.0, -3.0]])
    assert intensity_aware_loss(z, torch.tensor([0])).item() < 1e-8  # log(1 + e^-20) = 2.1e-9


def test_ial_equals_official_masked_cross_entropy_and_grads_only_two_logits():
    torch.manual_seed(0)
    z = torch.randn(6, 7, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 6])
    loss = intensity_aware_loss(z, y)
    # official main.py: CE(z - 9999 * (1 - onehot(y) - onehot(j)), y)
    j = hardest_negative(z, y)
    keep = F.one_hot(y, 7) + F.one_hot(j, 7)
    official = F.cross_entropy(z - 9999 * (1 - keep), y)
    assert loss.item() == pytest.approx(official.item(), abs=1e-6)
    loss.backward()
    g = z.grad
    zy, zj = z.detach().gather(1, y[:, None])[:, 0], z.detach().gather(1, j[:, None])[:, 0]
    s = torch.sigmoid(zj - zy) / 6  # d softplus(zj - zy) / d zj, mean over 6 rows
    assert torch.allclose(g.gather(1, y[:, None])[:, 0], -s, atol=1e-6)
    assert torch.allclose(g.gather(1, j[:, None])[:, 0], s, atol=1e-6)
    assert (g * (1 - keep)).abs().max().item() == 0.0


def test_ial_soft_targets_use_argmax():
    z = torch.tensor([[1.0, 2.0, 0.5]])
    soft = torch.tensor([[0.1, 0.2, 0.7]])
    assert intensity_aware_loss(z, soft).item() == pytest.approx(1.701413, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        intensity_aware_loss(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))


# -- temporal coupling ------------------------------------------------------------------
def test_temporal_coupling_formula_on_constructed_weights():
    # 2 clips x 3 frames, 2 channels; clip 0 channel 0 weights 0.5, 1.0, 1.5 (mean 1.0)
    w = torch.tensor([
        [0.5, 2.0], [1.0, 2.0], [1.5, 2.0],      # clip 0: ch0 mean 1.0, ch1 mean 2.0
        [0.2, 0.0], [0.4, 0.0], [0.9, 0.3],      # clip 1: ch0 mean 0.5, ch1 mean 0.1
    ]).reshape(6, 2, 1, 1)
    out = temporal_coupling(w, frames=3).reshape(6, 2)
    eps = 1e-5
    expected = [
        [math.sqrt(0.5 * 1.0 + eps), math.sqrt(4.0 + eps)],
        [math.sqrt(1.0 + eps), math.sqrt(4.0 + eps)],
        [math.sqrt(1.5 + eps), math.sqrt(4.0 + eps)],
        [math.sqrt(0.2 * 0.5 + eps), math.sqrt(eps)],
        [math.sqrt(0.4 * 0.5 + eps), math.sqrt(eps)],
        [math.sqrt(0.9 * 0.5 + eps), math.sqrt(0.3 * 0.1 + eps)],
    ]
    assert out.tolist() == [pytest.approx(r, abs=1e-6) for r in expected]
    with pytest.raises(ValueError, match="multiple of T=4"):
        temporal_coupling(w, frames=4)


def _fill(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


# -- GCA / GCSA -------------------------------------------------------------------------
def test_gca_shapes_kernel_and_aux_head():
    b, t, c, s, k = 2, 4, 32, 4, 5
    att = GlobalConvAttention(c, s, num_classes=k)
    assert tuple(att.gc.weight.shape) == (c, 1, s, s)  # depthwise, kernel = whole map, no bias
    assert att.gc.bias is None and att.gc.groups == c
    assert tuple(att.fc1.weight.shape) == (c // 16, c, 1, 1)
    out = torch.randn(b * t, c, s, s)
    w, aux = att(out, t)
    assert tuple(w.shape) == (b * t, c, 1, 1)
    assert tuple(aux.shape) == (b, k)
    # aux = Linear(C,2C) -> Linear(2C,K) (no bias) on the time-mean of w0 = gc(out)
    w0 = att.gc(out).reshape(b, t, c).mean(1)
    assert torch.allclose(aux, w0 @ att.aux_fc[0].weight.T @ att.aux_fc[1].weight.T, atol=1e-5)
    with pytest.raises(ValueError, match="built for a 4x4 feature map .* got 5x5"):
        att(torch.randn(b * t, c, 5, 5), t)


def test_gca_weight_is_coupled_two_sigmoid():
    b, t, c, s = 2, 4, 32, 3
    att = GlobalConvAttention(c, s, num_classes=7)
    _fill(att)
    out = torch.randn(b * t, c, s, s)
    w, _ = att(out, t)
    w0 = F.conv2d(out, att.gc.weight, groups=c)
    raw = 2 * torch.sigmoid(F.conv2d(F.relu(F.conv2d(w0, att.fc1.weight)), att.fc2.weight))
    assert raw.min() > 0 and raw.max() < 2
    mean = raw.reshape(b, t, c, 1, 1).mean(1, keepdim=True)
    expected = torch.sqrt(raw.reshape(b, t, c, 1, 1) * mean + 1e-5).reshape(b * t, c, 1, 1)
    assert torch.allclose(w, expected, atol=1e-6)
    att.coupling = False
    assert torch.allclose(att(out, t)[0], raw, atol=1e-6)


def test_gcsa_weight_is_mean_of_se_and_global_conv_weights():
    b, t, c, s = 2, 4, 32, 3
    att = GlobalConvSEAttention(c, s, num_classes=7, coupling=False)
    assert isinstance(att.se, SqueezeExcite)
    _fill(att, seed=1)
    out = torch.randn(b * t, c, s, s)
    w, aux = att(out, t)
    se = att.se(out)  # GAP -> FC C/16 -> ReLU -> FC C -> sigmoid
    gap = out.mean((2, 3))
    se_manual = torch.sigmoid(F.linear(F.relu(F.linear(gap, att.se.fc[1].weight[:, :, 0, 0], att.se.fc[1].bias)),
                                       att.se.fc[3].weight[:, :, 0, 0], att.se.fc[3].bias))
    assert torch.allclose(se[:, :, 0, 0], se_manual, atol=1e-6)
    _, gc = att.global_weights(out)
    assert torch.allclose(w, 0.5 * (se + gc), atol=1e-6)
    assert not torch.allclose(w, gc) and not torch.allclose(w, se)
    assert tuple(aux.shape) == (b, 7)
    att.coupling = True
    assert torch.allclose(att(out, t)[0], temporal_coupling(0.5 * (se + gc), t), atol=1e-6)


@pytest.mark.parametrize("attention", ["gca", "gcsa"])
def test_coupling_really_couples_frames(attention):
    b, t, s = 2, 4, 8
    torch.manual_seed(0)
    blocks = {}
    for coupling in (True, False):
        blk = AttentionBasicBlock(16, 32, stride=2, attention=attention, map_size=s // 2, num_classes=7,
                                  coupling=coupling)
        _fill(blk, seed=3)
        blk.eval()  # BatchNorm in eval: no batch statistics linking the frames
        blocks[coupling] = blk
    x = torch.randn(b * t, 16, s, s)
    x2 = x.clone()
    x2[2] += torch.randn(16, s, s)  # change frame 2 of clip 0 only
    for coupling, blk in blocks.items():
        with torch.no_grad():
            (y1, _), (y2, _) = blk(x, t), blk(x2, t)
            w1, _ = blk.attention(blk.bn2(blk.conv2(F.relu(blk.bn1(blk.conv1(x))))), t)
            w2, _ = blk.attention(blk.bn2(blk.conv2(F.relu(blk.bn1(blk.conv1(x2))))), t)
        assert tuple(y1.shape) == (b * t, 32, s // 2, s // 2)
        # clip 1 (frames 4..7) never sees clip 0
        assert torch.equal(y1[4:], y2[4:]) and torch.equal(w1[4:], w2[4:])
        if coupling:  # frame 0's channel weights and output move with frame 2
            assert (w1[0] - w2[0]).abs().max() > 1e-4
            assert (y1[0] - y2[0]).abs().max() > 1e-4
        else:  # without coupling frame 0 is untouched
            assert torch.equal(w1[0], w2[0]) and torch.equal(y1[0], y2[0])


def test_basic_block_plain_and_with_attention():
    blk = AttentionBasicBlock(16, 16)
    assert blk.attention is None and blk.downsample is None
    y, aux = blk(torch.randn(3, 16, 5, 5))
    assert tuple(y.shape) == (3, 16, 5, 5) and aux is None and (y >= 0).all()
    blk = AttentionBasicBlock(16, 32, stride=2, attention="gca", map_size=3, num_classes=6)
    y, aux = blk(torch.randn(2 * 2, 16, 5, 5), 2)
    assert tuple(y.shape) == (4, 32, 3, 3) and tuple(aux.shape) == (2, 6)
    with pytest.raises(ValueError, match="frames=T"):
        blk(torch.randn(4, 16, 5, 5))
    with pytest.raises(ValueError, match="attention: expected one of .*got 'cbam'"):
        AttentionBasicBlock(16, 32, attention="cbam", map_size=3)


# -- fusion and transformers ------------------------------------------------------------
def test_conv_out_size_matches_official_112_pipeline():
    sizes = [112]
    for _ in range(5):
        sizes.append(conv_out_size(sizes[-1]))
    # stem conv s2 -> 56, maxpool -> 28, layer2 -> 14, layer3 -> 7, fusion -> 4 (256*4*4 = 4096)
    assert sizes == [112, 56, 28, 14, 7, 4]


def test_dynamic_static_fusion_shapes_and_difference_branch():
    b, t, c, s = 2, 5, 32, 3
    fus = DynamicStaticFusion(c, s)
    assert fus.out_size == 2 and fus.out_dim == c * 4
    assert tuple(fus.spatial_pos.shape) == (1, 4, c)
    fus.eval()
    x = torch.randn(b * t, c, s, s)
    out = fus(x, t)
    assert tuple(out.shape) == (b, t - 1, c * 4)
    # shifting every frame of a clip by the same map leaves the differences unchanged:
    # only the static branch (frames 0..T-2) sees the shift
    with torch.no_grad():
        shifted = x + torch.randn(1, c, s, s)
        static_only = fus.spatial_transformer(fus.patch_embedding(shifted.reshape(b, t, c, s, s)[:, :-1].reshape(-1, c, s, s))
                                              .flatten(2).transpose(1, 2) + fus.spatial_pos)
        d = (x.reshape(b, t, c, s, s)[:, 1:] - x.reshape(b, t, c, s, s)[:, :-1]).reshape(-1, c, s, s)
        for blk in fus.dynamic:
            d, _ = blk(d)
        manual = static_only.transpose(1, 2).reshape(-1, c, 2, 2) + d
        assert torch.allclose(fus(shifted, t), manual.reshape(b, t - 1, -1), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 frames"):
        fus(torch.randn(2, c, s, s), 1)


def test_transformer_encoder_is_pre_norm_residual():
    enc = TransformerEncoder(dim=16, depth=2, heads=4, dim_head=8, mlp_dim=32)
    x = torch.randn(3, 5, 16)
    assert tuple(enc(x).shape) == (3, 5, 16)
    with torch.no_grad():  # zeroed output projections -> identity map
        for layer in enc.layers:
            layer["attn"].to_out[0].weight.zero_()
            layer["attn"].to_out[0].bias.zero_()
            layer["ff"][3].weight.zero_()
            layer["ff"][3].bias.zero_()
    assert torch.equal(enc(x), x)


def test_temporal_transformer_any_number_of_steps():
    tt = TemporalTransformer(dim=16, max_steps=16)
    assert torch.equal(tt.position(15), tt.pos_embedding[:, :15])  # official: first 15 rows
    for steps in (1, 3, 15, 16, 20):
        assert tuple(tt(torch.randn(2, steps, 16)).shape) == (2, steps, 16)
    pos = tt.position(31)  # longer clips: the table interpolated, ends kept
    assert tuple(pos.shape) == (1, 31, 16)
    assert torch.allclose(pos[:, 0], tt.pos_embedding[:, 0]) and torch.allclose(pos[:, -1], tt.pos_embedding[:, -1])
    assert torch.allclose(pos[:, 2], tt.pos_embedding[:, 1], atol=1e-6)  # 31 rows: every 2nd is a table row
