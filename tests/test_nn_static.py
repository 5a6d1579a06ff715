"""Blocks and losses of the static paper methods (fer_bench.nn): hand-computed loss values,
negative-centre selection on constructed examples, STN identity, attention ranges, DropBlock."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_bench.nn.attention import (
    CBAM,
    ChannelAttention,
    SelectiveAttention,
    SpatialAttention,
    SpatialPyramidAttention,
    SqueezeExcite,
)
from fer_bench.nn.blocks import DotProductResidualBlock, LowLevelFeatureMask, ScheduledDropBlock2d
from fer_bench.nn.losses import (
    ArcFaceLoss,
    CenterCosineLoss,
    CosFaceLoss,
    CosineClassifier,
    TripletCenterLoss,
    center_cosine_loss,
    negative_centers,
    triplet_center_loss,
)
from fer_bench.nn.stn import SpatialTransformer


def ce(logits: list[float], y: int) -> float:
    return -logits[y] + math.log(sum(math.exp(v) for v in logits))


COS = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.6, -0.4]])
Y = torch.tensor([0, 2])


# ---------------------------------------------------------------------------------------- margin losses
@pytest.mark.parametrize("cls", [CosFaceLoss, ArcFaceLoss])
def test_zero_margin_is_scaled_cosine_cross_entropy(cls):
    loss = cls(s=2.0, m=0.0)(COS, Y)
    expected = (ce([1.0, -0.4, 0.2], 0) + ce([0.6, 1.2, -0.8], 2)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_cosface_margin_value_and_increase():
    loss = CosFaceLoss(s=2.0, m=0.35)(COS, Y)
    # target logits: 2*(0.5-0.35)=0.3 and 2*(-0.4-0.35)=-1.5
    expected = (ce([0.3, -0.4, 0.2], 0) + ce([0.6, 1.2, -1.5], 2)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() > CosFaceLoss(s=2.0, m=0.0)(COS, Y).item() + 0.3


def test_arcface_margin_value_and_increase():
    m = 0.5
    loss = ArcFaceLoss(s=2.0, m=m)(COS, Y)
    t0 = math.cos(math.acos(0.5) + m)          # theta + m < pi: cos(theta + m)
    t1 = math.cos(math.acos(-0.4) + m)         # acos(-0.4)=1.98 < pi - 0.5
    expected = (ce([2 * t0, -0.4, 0.2], 0) + ce([0.6, 1.2, 2 * t1], 2)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert loss.item() > ArcFaceLoss(s=2.0, m=0.0)(COS, Y).item() + 0.3


def test_arcface_past_pi_uses_the_monotonic_extension():
    m = 0.5
    cos = torch.tensor([[-0.9, 0.0]])  # theta = 2.69 > pi - m = 2.64
    logits = ArcFaceLoss(s=1.0, m=m).logits(cos, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(-0.9 - m * math.sin(m), abs=1e-6)
    assert logits[0, 1].item() == 0.0


def test_arcface_easy_margin_only_where_cosine_is_positive():
    m = 0.35
    cos = torch.tensor([[0.5, 0.1], [-0.4, 0.2], [-0.9, 0.0]])
    t = ArcFaceLoss(s=1.0, m=m, easy_margin=True).target_cosine(cos[:, 0])
    assert t[0].item() == pytest.approx(math.cos(math.acos(0.5) + m), abs=1e-6)  # cos θ > 0: cos(θ + m)
    assert t[1].item() == pytest.approx(-0.4, abs=1e-6) and t[2].item() == pytest.approx(-0.9, abs=1e-6)
    # beyond 90° the target's slope is 1 (softmax), not sin(θ+m)/sin θ < 1
    c = torch.tensor([-0.3], requires_grad=True)
    ArcFaceLoss(s=1.0, m=m, easy_margin=True).target_cosine(c).sum().backward()
    assert c.grad.item() == pytest.approx(1.0)


def test_margin_losses_accept_soft_targets():
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.1, 0.9]])
    loss = CosFaceLoss(s=2.0, m=0.35)(COS, soft)
    # margin at the argmax class, cross entropy against the soft distribution
    l0 = [0.3, -0.4, 0.2]
    l1 = [0.6, 1.2, -1.5]
    expected = (0.7 * ce(l0, 0) + 0.3 * ce(l0, 1) + 0.1 * ce(l1, 1) + 0.9 * ce(l1, 2)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    onehot = F.one_hot(Y, 3).float()
    assert CosFaceLoss(s=2.0, m=0.35)(COS, onehot).item() == pytest.approx(CosFaceLoss(s=2.0, m=0.35)(COS, Y).item())


def test_cosine_classifier_is_scale_invariant_cosine():
    head = CosineClassifier(4, 3)
    x = torch.randn(5, 4)
    cos = head(x)
    assert torch.allclose(cos, head(7.5 * x), atol=1e-6)
    expected = F.cosine_similarity(x[:, None, :], head.weight[None, :, :], dim=2)
    assert torch.allclose(cos, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------- centre-cosine
def test_center_cosine_loss_zero_when_aligned_and_exact_otherwise():
    centers = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 2])
    aligned = torch.tensor([[3.0, 0.0], [0.0, 0.5], [2.0, 2.0]])
    assert center_cosine_loss(aligned, centers, y).item() == pytest.approx(0.0, abs=1e-6)
    feats = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    # 1 - cos: orthogonal -> 1; 45 degrees -> 1 - 1/sqrt2 (twice)
    expected = (1.0 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert center_cosine_loss(feats, centers, y).item() == pytest.approx(expected, abs=1e-6)
    mod = CenterCosineLoss(3, 2)
    with torch.no_grad():
        mod.centers.copy_(centers)
    assert isinstance(mod.centers, torch.nn.Parameter)
    assert mod(feats, F.one_hot(y, 3).float()).item() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------- triplet-centre
C3 = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])


def test_negative_strategies_pick_the_right_centre():
    f = torch.tensor([[0.1, 0.0]])
    y = torch.tensor([0])
    # distances to the other centres: D(f,c1) = 0.5*2.9^2 = 4.205, D(f,c2) = 0.5*(0.01+16) = 8.005
    w1 = math.exp(-4.205) / (math.exp(-4.205) + math.exp(-8.005))
    synth = torch.tensor([[3.0 * w1, 4.0 * (1 - w1)]])
    got = negative_centers(f, C3, y, "fully_synthesized")
    assert torch.allclose(got, synth, atol=1e-6)
    semi = negative_centers(f, C3, y, "semi_synthesized")  # nearest other centre is c1
    assert torch.allclose(semi, 0.5 * (C3[1:2] + synth), atol=1e-6)
    # the classifier confuses the sample with class 2 although c1 is nearer
    logits = torch.tensor([[5.0, 1.0, 3.0]])
    pred = negative_centers(f, C3, y, "prediction_based", logits=logits)
    assert torch.equal(pred, C3[2:3])
    # the own class is never the negative, even when its logit/centre is the best
    assert not torch.equal(negative_centers(f, C3, y, "prediction_based", logits=torch.tensor([[9.0, 8.0, 1.0]])), C3[0:1])
    with pytest.raises(ValueError, match="needs the classifier logits"):
        negative_centers(f, C3, y, "prediction_based")
    with pytest.raises(ValueError, match="negative strategy: expected one of"):
        negative_centers(f, C3, y, "hardest")


def test_triplet_center_loss_zero_when_margin_met_and_exact_hinge_otherwise():
    f = torch.tensor([[0.1, 0.0], [3.0, 0.5]])
    y = torch.tensor([0, 1])
    # margin 1: sample 0: D_pos=0.005, nearest neg 4.205 -> satisfied; sample 1: D_pos=0.125,
    # D(f,c0)=0.5*(9+0.25)=4.625, D(f,c2)=0.5*(9+12.25)=10.625 -> satisfied
    for strategy in ("fully_synthesized", "semi_synthesized"):
        assert triplet_center_loss(f, C3, y, margin=1.0, strategy=strategy).item() == 0.0
    # margin 6 with the prediction-based negative: sample 0 negative c1 (logit 2 > 1)
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
    h0 = max(0.005 + 6.0 - 4.205, 0.0)            # 1.8
    h1 = max(0.125 + 6.0 - 10.625, 0.0)           # 0 (negative c2 is far)
    got = triplet_center_loss(f, C3, y, margin=6.0, strategy="prediction_based", logits=logits, reduction="none")
    assert got.tolist() == pytest.approx([h0, h1], abs=1e-5)
    mean = triplet_center_loss(f, C3, y, margin=6.0, strategy="prediction_based", logits=logits)
    assert mean.item() == pytest.approx((h0 + h1) / 2, abs=1e-5)
    total = triplet_center_loss(f, C3, y, margin=6.0, strategy="prediction_based", logits=logits, reduction="sum")
    assert total.item() == pytest.approx(h0 + h1, abs=1e-5)


def test_triplet_center_module_normalises_features_and_centres():
    tcl = TripletCenterLoss(3, 2, margin=1.0, strategy="prediction_based")
    with torch.no_grad():
        tcl.centers.copy_(torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]]))
    f = torch.tensor([[1.0, 1.0]])  # 45 degrees from c0 and c1, 135 from c2
    logits = torch.tensor([[0.0, 1.0, 0.0]])
    # on the unit sphere D = 1 - cos: D_pos = 1 - 1/sqrt2, D_neg(c1) = 1 - 1/sqrt2 -> hinge = margin
    assert tcl(f, torch.tensor([0]), logits=logits).item() == pytest.approx(1.0, abs=1e-6)
    assert tcl(3 * f, torch.tensor([0]), logits=logits).item() == pytest.approx(1.0, abs=1e-6)
    assert isinstance(tcl.centers, torch.nn.Parameter)


def simplex(n: int) -> torch.Tensor:
    """``n`` unit vectors in R^n with pairwise cosine −1/(n−1) (a regular simplex)."""
    e = torch.eye(n, dtype=torch.float64)
    return F.normalize(e - e.mean(0), dim=1)


STRATEGIES = ("fully_synthesized", "semi_synthesized", "prediction_based")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("layout", ["simplex", "orthonormal"])
def test_triplet_center_hinge_is_zero_with_features_on_their_centres(strategy, layout):
    """Normalised TCL, m = 1: every feature exactly on its own centre, centres well separated ->
    loss 0 for every strategy (before the fix the synthesized negatives, near-uniform mixes of
    norm ~1/6, left a floor of 0.319 / 0.198)."""
    c = simplex(7) if layout == "simplex" else torch.eye(7, 16, dtype=torch.float64)
    y = torch.arange(7).repeat(2)
    f = 3.0 * c[y]  # on the centre's ray: on the centre after normalisation
    noise = torch.rand(14, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits = 5.0 * F.one_hot(y, 7).double() + noise
    tcl = TripletCenterLoss(7, c.shape[1], margin=1.0, strategy=strategy).double()
    with torch.no_grad():
        tcl.centers.copy_(c)
    assert tcl(f, y, logits=logits).item() == pytest.approx(0.0, abs=1e-6)
    assert triplet_center_loss(f, c, y, strategy=strategy, logits=logits, normalize=True).item() == \
        pytest.approx(0.0, abs=1e-6)
    # the synthesized negatives lie on the unit sphere like real centres
    neg = negative_centers(F.normalize(f, dim=1), c, y, strategy, logits, on_sphere=True)
    assert torch.allclose(neg.norm(dim=1), torch.ones(14, dtype=torch.float64))


def test_unnormalised_synthesized_negative_had_a_floor():
    """The regression the fix removes: without re-projection the hinge stays on at the optimum."""
    c = simplex(7)
    y = torch.arange(7)
    floors = [triplet_center_loss(c, c, y, strategy=s).item() for s in STRATEGIES[:2]]
    assert floors == pytest.approx([0.3194, 0.1979], abs=1e-3)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("layout", ["simplex", "orthonormal"])
def test_triplet_center_hinge_positive_when_nearer_a_wrong_centre(strategy, layout):
    c = simplex(7) if layout == "simplex" else torch.eye(7, 16, dtype=torch.float64)
    y = torch.arange(7)
    wrong = (y + 1) % 7
    f = 0.3 * c[y] + 0.7 * c[wrong]  # nearer the wrong centre than its own
    assert (half_sq(F.normalize(f, dim=1), c[wrong]) < half_sq(F.normalize(f, dim=1), c[y])).all()
    logits = 5.0 * F.one_hot(wrong, 7).double()
    hinge = triplet_center_loss(f, c, y, strategy=strategy, logits=logits, normalize=True, reduction="none")
    assert (hinge > 0.1).all(), hinge


def half_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 * (a - b).pow(2).sum(1)


# ---------------------------------------------------------------------------------------- attention
def test_attention_weights_shapes_and_ranges():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 5)
    for mod, shape in [(SqueezeExcite(32), (2, 32, 1, 1)), (SpatialPyramidAttention(32), (2, 32, 1, 1)),
                       (ChannelAttention(32), (2, 32, 1, 1)), (SpatialAttention(), (2, 1, 6, 5))]:
        w = mod(x)
        assert w.shape == shape, type(mod).__name__
        assert (w > 0).all() and (w < 1).all(), type(mod).__name__
    assert CBAM(32)(x).shape == x.shape
    feat, pixel, element = SelectiveAttention(32)(x)
    assert feat.shape == (2, 32) and pixel.shape == (2, 1, 6, 5) and element.shape == (2, 32)
    assert (pixel > 0).all() and (pixel < 1).all() and (element > 0).all() and (element < 1).all()
    # default: the P-weighted spatial average of X, times E
    weighted = (x * pixel).sum(dim=(2, 3)) / pixel.sum(dim=(2, 3))
    assert torch.allclose(feat, weighted * element, atol=1e-5)
    literal = SelectiveAttention(32, normalize_pixel=False)
    literal.load_state_dict(SelectiveAttention(32).state_dict())
    f2, p2, e2 = literal(x)
    assert torch.allclose(f2, (x * p2).mean(dim=(2, 3)) * e2, atol=1e-6)


def test_selective_attention_pixel_map_cannot_switch_the_feature_off():
    """A pixel map driven towards 0 shrinks the literal GAP(X*P) with it, not the rescaled one."""
    torch.manual_seed(0)
    x = torch.rand(2, 16, 3, 3)
    feats = {}
    for norm in (True, False):
        att = SelectiveAttention(16, reduction=4, normalize_pixel=norm)
        with torch.no_grad():
            att.pixel.weight.zero_()
            att.pixel.bias.fill_(-8.0)  # P = sigmoid(-8) = 3.4e-4 everywhere
        feats[norm], _, element = att(x)
        if norm:  # uniform P: plain GAP times E
            assert torch.allclose(feats[True], x.mean(dim=(2, 3)) * element, atol=1e-6)
    assert feats[False].abs().max() < 1e-3 * feats[True].abs().max()


def test_spa_descriptor_has_21_values_per_channel():
    spa = SpatialPyramidAttention(16, reduction=4)
    x = torch.randn(3, 16, 8, 8)
    d = spa.descriptor(x)
    assert d.shape == (3, 21 * 16)
    assert torch.allclose(d[:, :16], x.mean(dim=(2, 3)), atol=1e-6)  # the 1x1 level is the GAP
    assert spa.fc[0].in_features == 21 * 16 and spa.fc[0].out_features == 4
    assert spa(torch.randn(3, 16, 2, 2)).shape == (3, 16, 1, 1)  # maps smaller than 4x4 work


def test_cbam_channel_then_spatial():
    cbam = CBAM(8, reduction=2)
    x = torch.randn(2, 8, 5, 5)
    x1 = x * cbam.channel(x)
    assert torch.allclose(cbam(x), x1 * cbam.spatial(x1), atol=1e-6)


def test_dot_product_residual_block():
    blk = DotProductResidualBlock(16, reduction=4).eval()
    x = torch.randn(2, 16, 6, 6)
    out = blk(x)
    assert out.shape == x.shape and (out >= 0).all()
    with torch.no_grad():
        blk.residual[-1].weight.zero_()
        blk.residual[-1].bias.zero_()
    assert torch.allclose(blk(x), F.relu(x))  # F(x) = 0 -> out = relu(x)


def test_dot_product_residual_block_attends_on_the_residual_branch():
    """out = relu(x + F(x) ⊙ SPA(F(x))): the attention reads F(x), not the block input."""
    torch.manual_seed(0)
    blk = DotProductResidualBlock(16, reduction=4).eval()
    x = torch.randn(2, 16, 6, 6)
    seen = []
    blk.spa.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    with torch.no_grad():
        out = blk(x)
        r = blk.residual(x)
    assert len(seen) == 1 and torch.allclose(seen[0], r)
    w = torch.sigmoid(blk.spa.fc[2](torch.relu(blk.spa.fc[0](blk.spa.descriptor(r)))))[:, :, None, None]
    assert torch.allclose(out, F.relu(x + r * w), atol=1e-6)
    assert not torch.allclose(out, F.relu(x + r * blk.spa(x)), atol=1e-4)  # the old SPA(x) form differs
    assert blk.spa.fc[0].bias is None and blk.spa.fc[2].bias is None  # bias-free FCs
    # attention switched off (weights 0): only the identity remains -> relu(x)
    blk.spa.forward = lambda t: torch.zeros(t.shape[0], t.shape[1], 1, 1)
    assert torch.allclose(blk(x), F.relu(x))


def test_dot_product_residual_block_hand_checked():
    """1 channel, F = identity (conv kernels with a single centre 1, BN identity in eval), x > 0:
    F(x) = x, SPA(F(x)) = sigmoid(w2·relu(w1·pyramid(x))) computed by hand."""
    blk = DotProductResidualBlock(1, reduction=1).eval()
    with torch.no_grad():
        for conv in (blk.residual[0], blk.residual[3]):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
        blk.spa.fc[0].weight.fill_(1.0 / 21)  # mean of the 21 pyramid values
        blk.spa.fc[2].weight.fill_(2.0)
    x = torch.arange(16.0).reshape(1, 1, 4, 4) / 16 + 0.1
    # every pyramid level of a 4x4 map averages to the global mean; mean(x) = 7.5/16 + 0.1
    a = torch.sigmoid(torch.tensor(2.0 * (7.5 / 16 + 0.1)))
    assert torch.allclose(blk(x), x + x * a, atol=1e-6)


def test_low_level_feature_mask():
    mod = LowLevelFeatureMask(8, 32)
    low, high = torch.randn(2, 8, 12, 12), torch.randn(2, 32, 3, 3)
    masked, mask = mod(low, high)
    assert mask.shape == low.shape and masked.shape == low.shape
    assert (mask > 0).all() and (mask < 1).all()
    assert torch.allclose(masked, low * mask)
    assert mod.proj.kernel_size == (3, 3) and mod.proj.padding == (1, 1)  # 3x3, as every kernel of the network


# ---------------------------------------------------------------------------------------- STN, DropBlock
@pytest.mark.parametrize("chans,built,size", [(1, 48, 48), (3, 48, 40), (1, 32, 32), (3, 112, 112)])
def test_stn_initialised_to_identity_returns_its_input(chans, built, size):
    stn = SpatialTransformer(chans, built)
    x = torch.rand(2, chans, size, size)
    theta = stn.theta(x)
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3))
    assert torch.allclose(stn(x), x, atol=1e-5)


def test_stn_localisation_flat_size():
    assert SpatialTransformer(1, 48).flat == 10 * 8 * 8
    assert SpatialTransformer(1, 100).flat == 10 * 21 * 21
    assert SpatialTransformer(1, 8).loc_size == SpatialTransformer.MIN_LOC_SIZE


def test_dropblock_off_in_eval_on_in_train_and_safe_on_tiny_maps():
    torch.manual_seed(0)
    db = ScheduledDropBlock2d(0.0, 3, p_max=0.1)
    x = torch.rand(4, 8, 12, 12) + 0.5
    db.train()
    assert torch.equal(db(x), x)  # p = 0
    db.set_p(0.3)
    a, b = db(x), db(x)
    assert not torch.equal(a, b)
    assert (a == 0).any()
    db.eval()
    assert torch.equal(db(x), x)
    db.train()
    assert db(torch.rand(2, 3, 2, 2)).shape == (2, 3, 2, 2)  # block clipped to 1, not an even size
    with pytest.raises(ValueError):
        db.set_p(1.5)
