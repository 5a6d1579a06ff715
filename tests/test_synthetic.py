"""The procedural synthetic faces: determinism, balance, shapes, clip dynamics, and signal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.synthetic import SyntheticClips, SyntheticDynamic, SyntheticImages, SyntheticStatic
from fer_bench.registry import DATASETS
from fer_bench.synth import Identity, Pose, intensity_curve, make_clips, make_static, render_face

K = len(CANONICAL_CLASSES)
NEUTRAL = CANONICAL_CLASSES.index("neutral")


# -- determinism -----------------------------------------------------------------------
def test_static_is_deterministic_by_seed():
    a = make_static(3, seed=7, size=32)
    b = make_static(3, seed=7, size=32)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    c = make_static(3, seed=8, size=32)
    assert not np.array_equal(a[0], c[0])
    # different seed: different pictures, not just a permutation of the same ones
    assert np.abs(a[0].astype(np.int16) - c[0].astype(np.int16)).mean() > 5


def test_clips_are_deterministic_by_seed():
    a = make_clips(1, seed=3, size=32, frames=4)
    b = make_clips(1, seed=3, size=32, frames=4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    c = make_clips(1, seed=4, size=32, frames=4)
    assert not np.array_equal(a[0], c[0])


def test_render_face_is_deterministic_given_rng():
    idt = Identity.sample(np.random.default_rng(0))
    pose = Pose.sample(np.random.default_rng(1))
    x = render_face(3, 0.8, idt, pose, 40, True, np.random.default_rng(2))
    y = render_face(3, 0.8, idt, pose, 40, True, np.random.default_rng(2))
    assert x.shape == (40, 40, 3) and x.dtype == np.uint8
    assert np.array_equal(x, y)
    # the expression changes the picture (same identity, pose and noise)
    z = render_face(NEUTRAL, 0.8, idt, pose, 40, True, np.random.default_rng(2))
    assert not np.array_equal(x, z)


# -- balance and identities ------------------------------------------------------------
def test_static_class_balance_and_identity_range():
    x, y, g = make_static(5, seed=1, size=24, n_identities=4, identity_offset=10)
    assert y.dtype == np.int64 and g.dtype == np.int64
    assert np.array_equal(np.bincount(y, minlength=K), np.full(K, 5))
    assert set(np.unique(g)) == {10, 11, 12, 13}
    # every class is spread over the subjects, not concentrated on one
    for c in range(K):
        assert len(np.unique(g[y == c])) >= 2


def test_clip_class_balance():
    _, y, g, inten = make_clips(2, seed=1, size=24, frames=3, n_identities=3, identity_offset=5)
    assert np.array_equal(np.bincount(y, minlength=K), np.full(K, 2))
    assert set(np.unique(g)) <= {5, 6, 7}
    assert inten.shape == (2 * K, 3) and inten.dtype == np.float32


def _split_groups(dm, split):
    sd = dm.splits[split]
    return np.asarray(sd.base.groups)[sd.indices]


def test_static_datamodule_splits_are_balanced_and_subject_disjoint():
    assert DATASETS.get("synthetic-static") is SyntheticStatic
    dm = SyntheticStatic(train_per_class=6, val_per_class=3, test_per_class=4, seed=0)
    dm.setup()
    sizes = {"train": 6, "val": 3, "test": 4}
    for split, n in sizes.items():
        labels = dm.splits[split].labels
        assert np.array_equal(np.bincount(labels, minlength=K), np.full(K, n)), split
        assert isinstance(dm.splits[split].base, SyntheticImages)
    tr, va, te = (set(_split_groups(dm, s).tolist()) for s in ("train", "val", "test"))
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    # the loader view: float [1,48,48]
    x, y, i = dm.splits["test"][0]
    assert x.shape == (1, 48, 48) and x.dtype == torch.float32 and 0 <= y < K and i == 0
    args = dm.protocol_args()
    assert args["train_per_class"] == 6 and args["data_seed"] == 1234 and args["image_size"] == 48
    assert args["rgb"] is False


def test_static_data_depends_on_data_seed_not_training_seed():
    kw = dict(train_per_class=2, val_per_class=1, test_per_class=1)
    a, b = SyntheticStatic(seed=0, **kw), SyntheticStatic(seed=5, **kw)
    c = SyntheticStatic(seed=0, data_seed=99, **kw)
    for dm in (a, b, c):
        dm.setup()
    for split in ("train", "val", "test"):
        assert np.array_equal(a.splits[split].base.images, b.splits[split].base.images)
    assert not np.array_equal(a.splits["train"].base.images, c.splits["train"].base.images)
    # train / val / test are different draws, not copies
    assert not np.array_equal(a.splits["val"].base.images[:7], a.splits["test"].base.images[:7])


def test_dynamic_datamodule():
    assert DATASETS.get("synthetic-dynamic") is SyntheticDynamic
    assert SyntheticDynamic.info.modality == "dynamic" and not SyntheticDynamic.requires_root
    dm = SyntheticDynamic(train_per_class=2, val_per_class=1, test_per_class=1, frames=4, image_size=32)
    dm.setup()
    assert dm.split_sizes() == {"train": 2 * K, "val": K, "test": K}
    base = dm.splits["train"].base
    assert isinstance(base, SyntheticClips) and base.clips.shape == (2 * K, 4, 32, 32, 3)
    x, y, _ = dm.splits["val"][0]
    assert x.shape == (4, 3, 48, 48) and x.dtype == torch.float32
    tr, va, te = (set(_split_groups(dm, s).tolist()) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert dm.protocol_args()["frames"] == 4 and dm.protocol_args()["rgb"] is True


# -- exact pixels (the smoke regression baseline depends on them) ----------------------
@pytest.mark.parametrize("name,kw,digest", [
    ("synthetic-static", dict(train_per_class=3, val_per_class=2, test_per_class=2),
     "08a6eefa8f0b4944c3d22d177c52006fa761e878426d20d908b82f8605ae2103"),
    ("synthetic-static", dict(train_per_class=2, val_per_class=1, test_per_class=1, rgb=True, image_size=40),
     "b129f65183304f0a320c35afb83afb3b45af272577140b1cae6b93b37cceee1c"),
    ("synthetic-dynamic", dict(train_per_class=2, val_per_class=1, test_per_class=1, frames=4),
     "055fe3a29573861e4430e5928a40fc17435189c2c774adbcebb419e5b1bce1ae"),
])
def test_synthetic_datamodules_give_the_pinned_pixels(name, kw, digest):
    """sha256 of every uint8 sample, label and position of the three splits, pinned before the
    renderer moved to fer_bench.synth: any change of the drawn pixels or the split fails here."""
    import hashlib

    dm = DATASETS.get(name)(**kw, num_workers=0)
    dm.setup()
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        ds = dm.splits[split]
        for i in range(len(ds)):
            x, y = ds.base[int(ds.indices[i])]
            h.update(x.numpy().tobytes())
            h.update(str((y, int(ds.indices[i]))).encode())
    assert h.hexdigest() == digest


# -- shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 48, 112])
@pytest.mark.parametrize("rgb", [False, True])
def test_static_shapes(size, rgb):
    x, y, g = make_static(1, seed=0, size=size, rgb=rgb, n_identities=3)
    assert x.dtype == np.uint8
    assert x.shape == ((K, size, size, 3) if rgb else (K, size, size))
    assert x.std() > 10  # a picture, not a flat field
    ds = SyntheticImages(x, y, g)
    item, label = ds[0]
    assert item.dtype == torch.uint8 and item.shape == (3 if rgb else 1, size, size)
    assert isinstance(label, int) and label == y[0]
    assert np.array_equal(ds.labels, y) and np.array_equal(ds.groups, g)
    if rgb:  # colour pictures, not grey copied into three channels
        assert np.abs(x[..., 0].astype(int) - x[..., 2].astype(int)).mean() > 3


@pytest.mark.parametrize("rgb", [False, True])
def test_clip_shapes(rgb):
    c, y, g, inten = make_clips(1, seed=0, size=32, rgb=rgb, frames=5, n_identities=2)
    assert c.dtype == np.uint8 and c.shape == ((K, 5, 32, 32, 3) if rgb else (K, 5, 32, 32))
    ds = SyntheticClips(c, y, g)
    item, label = ds[1]
    assert item.dtype == torch.uint8 and item.shape == (5, 3 if rgb else 1, 32, 32)
    assert label == y[1]
    frame = item[2].permute(1, 2, 0).numpy()
    assert np.array_equal(frame, c[1, 2] if rgb else c[1, 2][..., None])


# -- clip dynamics ---------------------------------------------------------------------
def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean())


def test_clip_intensity_rises_from_neutral_to_apex():
    clips, y, _, inten = make_clips(6, seed=3, size=48, frames=12)
    neutral, expr = y == NEUTRAL, y != NEUTRAL
    assert np.abs(inten[neutral]).max() < 1e-6
    assert (inten[expr, 0] < inten[expr].max(1) - 0.15).all()
    assert (np.diff(inten, axis=1) >= -1e-6).all()  # onset -> apex, no offset
    assert inten.min() >= 0 and inten.max() <= 1

    apex = inten.argmax(1)
    apex_vs_first = np.mean([_mse(clips[i, apex[i]], clips[i, 0]) for i in np.flatnonzero(expr)])
    neutral_steps = np.mean([_mse(clips[i, t + 1], clips[i, t]) for i in np.flatnonzero(neutral)
                             for t in range(clips.shape[1] - 1)])
    assert apex_vs_first > 2 * neutral_steps, (apex_vs_first, neutral_steps)
    # and more than a neutral clip drifts over its whole length (pose jitter accumulates)
    neutral_span = np.mean([_mse(clips[i, -1], clips[i, 0]) for i in np.flatnonzero(neutral)])
    assert apex_vs_first > 1.5 * neutral_span, (apex_vs_first, neutral_span)


def test_clip_intensity_distribution_has_low_intensity_clips():
    apex = np.array([intensity_curve(16, np.random.default_rng([9, i])).max() for i in range(2000)])
    low = (apex >= 0.2) & (apex <= 0.45)
    assert 0.16 < low.mean() < 0.24
    assert apex.max() <= 1.0 and (apex[~low] >= 0.5).all()
    assert intensity_curve(16, np.random.default_rng(0), neutral=True).max() == 0


# -- signal: learnable, but not by a linear model on pixels ---------------------------------
def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    bs = 64
    steps = epochs * ((len(x) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _conv(i: int, o: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(i, o, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU()]


def test_learnable_but_not_trivial():
    """Same train set, same 12 epochs, same optimiser: pixels-linear vs a 3-conv CNN.

    Measured on this generator (2-core CPU, one thread, ~15-20 s), test accuracy on 20
    unseen subjects (train accuracy in brackets); chance is 1/7 = 0.143:
    linear 0.309 (0.633), CNN 0.717 (0.971).  Other data seeds (train/test 7/8, 55/56):
    linear 0.337 / 0.314, CNN 0.737 / 0.697.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs on a shared 2-core box: 1 thread is faster and steadier
    try:
        xtr, ytr, _ = make_static(150, seed=101, size=48, n_identities=40)
        xte, yte, _ = make_static(50, seed=202, size=48, n_identities=20, identity_offset=40)
        to_t = lambda a: torch.from_numpy(a).float().div(255).unsqueeze(1)  # noqa: E731
        xtr_t, xte_t = to_t(xtr), to_t(xte)
        mu, sd = xtr_t.mean(0), xtr_t.std(0) + 1e-3
        xtr_t, xte_t = (xtr_t - mu) / sd, (xte_t - mu) / sd
        ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)

        torch.manual_seed(0)
        linear = _fit(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, K)), xtr_t, ytr_t, 12, 3e-3)
        torch.manual_seed(0)
        cnn = nn.Sequential(
            *_conv(1, 24, 5, stride=2), *_conv(24, 24), nn.MaxPool2d(2), *_conv(24, 48), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(48 * 6 * 6, K),
        )
        cnn = _fit(cnn, xtr_t, ytr_t, 12, 3e-3)
        linear_acc, cnn_acc = _acc(linear, xte_t, yte_t), _acc(cnn, xte_t, yte_t)
    finally:
        torch.set_num_threads(threads)
    assert cnn_acc > 0.5, (linear_acc, cnn_acc)
    assert cnn_acc > linear_acc + 0.10, (linear_acc, cnn_acc)
    assert linear_acc < 0.9, (linear_acc, cnn_acc)
    assert linear_acc > 1 / K - 0.03  # sanity: the linear model is trained, not broken
