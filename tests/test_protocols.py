"""The test-time and data protocols the FER literature uses, as recipes name them: the ten-crop
test, resize-then-crop inputs, the official frame rules of the DFEW and IAL code, short clips
dropped or looped, the test curve that prices selection on test, and the triplet-centre term
summed over the batch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from fer_bench.data.transforms import build_transform
from fer_bench.data.video import sample_indices
from fer_bench.nn.tta import TTA_MODES, mean_softmax_log, views
from fer_bench.settings import TTA_MODES as SETTING_TTA_MODES
from fer_bench.settings import TrainConfig

from conftest import run_cli


# -- ten-crop test ------------------------------------------------------------------------------
class MeanBrightness(torch.nn.Module):
    """Logits that are known by hand: class 0 scores the crop's mean pixel times 10, class 1 its
    mean of the left half minus the right half (so a mirror changes it), class 2 nothing."""

    def forward(self, x):
        w = x.shape[-1]
        left, right = x[..., : w // 2].mean(dim=(1, 2, 3)), x[..., w // 2:].mean(dim=(1, 2, 3))
        return torch.stack([10 * x.mean(dim=(1, 2, 3)), 10 * (left - right), torch.zeros(len(x))], dim=1)


def test_tencrop_is_the_mean_softmax_of_the_ten_views_torchvision_makes():
    assert TTA_MODES == SETTING_TTA_MODES
    torch.manual_seed(0)
    x = torch.rand(3, 1, 48, 48)
    x[0, :, :10, :10] = 1.0  # a bright top-left corner: only one corner crop (and its mirror) sees all of it
    model = MeanBrightness()
    expected = []
    for img in x:
        crops = v2.functional.ten_crop(img, [44, 44])  # tl, tr, bl, br, centre, and their mirrors
        probs = torch.stack([torch.softmax(model(c[None]), dim=1)[0] for c in crops]).mean(0)
        expected.append(probs.log())
    got = mean_softmax_log(model, x, "tencrop", 44)
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)
    assert len(views(x, "tencrop", 44)) == 10 and views(x, "tencrop", 44)[0].shape == (3, 1, 44, 44)
    # not the same as one centre view, and not the logits' mean (the official code averages logits)
    assert not torch.allclose(got, torch.log_softmax(model(x[..., 2:46, 2:46]), dim=1), atol=1e-4)
    # clips: the crops are taken on the last two axes of [B, T, C, H, W]
    clip = torch.rand(2, 3, 1, 48, 48)
    assert views(clip, "tencrop", 44)[4].shape == (2, 3, 1, 44, 44)
    assert torch.equal(views(clip, "tencrop", 44)[4], clip[..., 2:46, 2:46])


def test_tencrop_needs_a_test_image_larger_than_the_crop():
    from fer_bench.errors import UserError

    with pytest.raises(UserError, match="tencrop: crops of 48 px need a larger test image"):
        views(torch.rand(1, 1, 44, 44), "tencrop", 48)


def test_resize_then_crop_transforms_and_the_full_test_image_for_tencrop():
    x = torch.randint(0, 256, (1, 48, 48), dtype=torch.uint8)
    train = build_transform(train=True, input_size=44, in_chans=3, augmentation="crop", resize=48)
    assert train(x).shape == (3, 44, 44)
    val = build_transform(train=False, input_size=44, in_chans=1, resize=48)
    assert torch.allclose(val(x), x[:, 2:46, 2:46].float() / 255, atol=1e-6)  # the centre crop of the 48 px face
    full = build_transform(train=False, input_size=44, in_chans=1, resize=48, crop=False)
    assert torch.allclose(full(x), x.float() / 255, atol=1e-6)  # kept whole: the model takes the ten crops
    # DACL: one of the five 224 crops of the 256 px image; its mean/std
    big = torch.randint(0, 256, (3, 100, 100), dtype=torch.uint8)
    dacl = build_transform(train=True, input_size=224, in_chans=3, augmentation="dacl", normalization="dacl",
                           resize=256)
    assert dacl(big).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="resize 40 is smaller than the input size 44"):
        build_transform(train=False, input_size=44, in_chans=1, resize=40)


def test_a_tencrop_run_tests_on_the_whole_resized_image(tmp_path):
    from fer_bench.train import build

    cfg = TrainConfig(method="resnet18_cifar", dataset="synthetic-static", input_size=32,
                      data_args={"train_per_class": 2, "val_per_class": 1, "test_per_class": 1})
    dm, model = build(cfg)
    dm.setup()
    assert model.test_tta == "tencrop" and dm.resize == 35  # 48 * 32 / 44
    assert dm.splits["test"][0][0].shape == (3, 35, 35) and dm.splits["val"][0][0].shape == (3, 32, 32)
    assert model.test_forward(dm.splits["test"][0][0][None]).shape == (1, 7)


# -- frame rules -----------------------------------------------------------------------------------
def test_the_official_dfew_and_ial_frame_rules():
    for n in (16, 17, 40, 97):
        assert sample_indices(n, 16, train=False, eval_frames="linspace-floor").tolist() == \
            np.linspace(0, n - 1, 16).astype(int).tolist()
    rng = np.random.default_rng(0)
    for n in (16, 33, 97):  # IAL's _get_train_indices: k * (n // 16) + randint(n // 16)
        for _ in range(20):
            idx = sample_indices(n, 16, train=True, rng=rng, train_frames="segment-tsn")
            step = n // 16
            assert all(k * step <= i < (k + 1) * step for k, i in enumerate(idx))
    seen = set()
    for _ in range(50):  # DFEW: 16 distinct random frames of the whole clip, sorted
        idx = sample_indices(40, 16, train=True, rng=rng, train_frames="random-sorted")
        assert len(set(idx.tolist())) == 16 and (np.diff(idx) > 0).all()
        seen.update(idx.tolist())
    assert seen == set(range(40))


def test_a_short_clip_is_looped_as_the_dfew_loader_loops_it():
    # n = 5: the frame list concatenated with itself to 20 positions; linspace(0, 19, 16) truncated, mod 5
    positions = np.linspace(0, 19, 16).astype(int)
    assert sample_indices(5, 16, train=False, eval_frames="linspace-floor", short_clips="loop").tolist() == \
        (positions % 5).tolist()
    looped = sample_indices(5, 16, train=True, rng=np.random.default_rng(1), train_frames="random-sorted",
                            short_clips="loop")
    assert set(looped.tolist()) <= set(range(5)) and len(looped) == 16
    assert sample_indices(5, 16, train=False).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4]  # repeat


def test_short_clips_dropped_from_train_and_test_and_counted(tmp_path):
    from fer_bench.data import DATASETS
    from fer_bench.data.video import count_frames
    from fer_bench.synth import write_layout

    root = tmp_path / "dfew"
    write_layout("dfew", str(root), per_class=3, seed=0, min_frames=6, max_frames=20)
    kept = DATASETS.get("dfew")(str(root), fold=1, frames=16, short_clips="repeat", num_workers=0)
    kept.setup()
    dropped = DATASETS.get("dfew")(str(root), fold=1, frames=16, short_clips="drop", num_workers=0)
    dropped.setup()
    for split in ("train", "test"):
        lengths = [count_frames(s) for s in kept.splits[split].base.sources] if split == "test" else None
        if lengths is not None:
            short = sum(n < 16 for n in lengths)
            assert short > 0 and len(dropped.splits["test"]) == len(kept.splits["test"]) - short
            assert dropped.dropped_short["test"] == short
    assert all(count_frames(s) >= 16 for s in dropped.splits["test"].base.sources)
    assert all(count_frames(s) >= 16 for s in dropped.splits["train"].base.sources)
    assert dropped.protocol_args()["dropped_short_clips"]["train"] > 0
    assert "dropped" in dropped.protocol_args()["temporal_sampling"]


# -- selection on test, as a number ----------------------------------------------------------------
def test_the_test_curve_prices_selection_on_test(tmp_path):
    """Opt-in: the test split scored after every epoch, never used for selection; the curve's score at
    the selected epoch is the run's own test score, and the row gets the best test epoch's."""
    out = tmp_path / "run"
    run_cli("train", "--method", "resnet18_pretrained", "--dataset", "synthetic-static", "--max-epochs", "3",
            "--input-size", "32", "--in-chans", "1", "-d", "train_per_class=12", "-d", "val_per_class=4",
            "-d", "test_per_class=6", "--batch-size", "16", "-m", "optimizer=adamw", "-m", "lr=0.003",
            "--test-every-epoch", "--no-progress", "--out", str(out), timeout=600)
    m = json.loads((out / "metrics.json").read_text())
    curve = [line.split(",") for line in (out / "test_curve.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in curve] == [0, 1, 2]
    wars = [float(r[1]) for r in curve]
    assert float(curve[m["best_epoch"]][1]) == pytest.approx(m["war"], abs=1e-9)  # the same checkpoint, the same split
    assert m["best_test_war"] == max(wars) and m["best_test_war"] >= m["war"]
    assert m["best_test_epoch"] == int(np.argmax(wars))
    assert m["selection"] == "val/war"


# -- the triplet-centre term, summed over the batch -------------------------------------------------
def _tcl_batch():
    from fer_bench.synth import make_static

    x, y, _ = make_static(3, seed=4, size=32, rgb=True)
    return torch.from_numpy(x).float().permute(0, 3, 1, 2).contiguous() / 255, torch.from_numpy(y)


def test_the_tcl_term_is_the_batch_sum_and_the_three_strategies_pull_differently():
    from fer_bench.methods import METHODS
    from fer_bench.nn.losses import triplet_center_loss

    x, y = _tcl_batch()
    grads, terms = {}, {}
    for strategy in ("fully_synthesized", "semi_synthesized", "prediction_based"):
        torch.manual_seed(0)  # the same network and centres for each strategy
        model = METHODS.get("tcl_selective")(in_chans=3, input_size=32, strategy=strategy).eval()
        out = model.training_outputs(x, y)
        loss, parts = model.compute_loss(out, y)
        hinges = triplet_center_loss(out["features"], model.tcl.centers, y, strategy=strategy, logits=out["logits"],
                                     reduction="none", normalize=True)
        assert parts["tcl"] == pytest.approx(hinges.sum().item(), rel=1e-5)  # Σ_i, not the batch mean
        assert parts["tcl_weighted"] == pytest.approx(0.01 * hinges.sum().item(), rel=1e-5)
        terms[strategy] = parts["tcl_weighted"].item()
        # what the TCL term does to the network: its gradient on a network parameter (the attention MLP)
        (g,) = torch.autograd.grad(model.tcl_weight * model.tcl(out["features"], y, logits=out["logits"]),
                                   model.attention.element[0].weight)
        grads[strategy] = g
    for a, b in (("fully_synthesized", "semi_synthesized"), ("fully_synthesized", "prediction_based"),
                 ("semi_synthesized", "prediction_based")):
        cos = torch.nn.functional.cosine_similarity(grads[a].flatten(), grads[b].flatten(), dim=0)
        assert cos < 0.999, (a, b, cos)
        assert not torch.allclose(grads[a], grads[b], rtol=1e-3)
    # on this batch of 21 the weighted term is no longer inert next to a cross entropy near ln 7
    assert min(terms.values()) > 0.05, terms
