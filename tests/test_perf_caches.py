"""Speed features that must not change a sample: decoded-image cache, clip cache, worker
defaults, channels_last, precision flags.  Behaviour only, never timing."""
import os

import numpy as np
import pytest
import torch

import fer_bench.data.io as fio
import fer_bench.data.video as fvideo
from fer_bench.data.base import default_num_workers, usable_cpus
from fer_bench.data.cache import ClipCache, DecodedImageCache
from fer_bench.data.dfew import DFEW
from fer_bench.data.fer2013 import FER2013
from fer_bench.errors import UnreadableSample, UserError
from fer_bench.synth import write_layout
from fer_bench.train import TrainConfig, build


@pytest.fixture(scope="module")
def fer_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer_folders")
    write_layout("fer2013", str(root), per_class=3, layout="folders")
    return root


@pytest.fixture(scope="module")
def dfew_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfew")
    write_layout("dfew", str(root), per_class=1, layout="release", size=32, min_frames=5, max_frames=20)
    return root


def _fer(root, **kw):
    dm = FER2013(str(root), batch_size=8, layout="folders", **kw)
    dm.setup()
    return dm


def _items(ds):
    return [ds[i] for i in range(len(ds))]


def _same_items(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == torch.uint8 and torch.equal(xa, xb) and ya == yb


# -- decoded-image cache ----------------------------------------------------------------
def test_image_cache_is_bit_identical_and_decodes_once(fer_folders, monkeypatch):
    plain = _fer(fer_folders, cache_images="off", num_workers=0)
    assert not isinstance(plain.splits["train"].base, DecodedImageCache)
    plain_items = _items(plain.splits["train"].base)
    calls = []
    real = fio.decode_image
    monkeypatch.setattr(fio, "decode_image", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    cached = _fer(fer_folders, cache_images="on", num_workers=0)
    base = cached.splits["train"].base
    assert isinstance(base, DecodedImageCache) and calls == []  # lazy: nothing decoded at setup
    # two epochs through the loader: every sample decoded exactly once, on the first
    loader = cached.train_dataloader()
    seen = sum(len(b[0]) for b in loader)
    assert len(calls) == seen == len(cached.splits["train"]) == len(set(calls))
    assert sum(len(b[0]) for b in loader) == seen and len(calls) == seen
    _same_items(_items(base), plain_items)
    assert len(calls) == seen
    # the transformed samples too, under the same torch seed
    for split in ("train", "test"):
        torch.manual_seed(5)
        a = [cached.splits[split][i] for i in range(len(cached.splits[split]))]
        torch.manual_seed(5)
        with monkeypatch.context() as m:
            m.setattr(fio, "decode_image", real)
            b = [plain.splits[split][i] for i in range(len(plain.splits[split]))]
        for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
            assert torch.equal(xa, xb) and (ya, ia) == (yb, ib)


def test_image_cache_filled_once_and_shared_with_workers(fer_folders):
    plain = _fer(fer_folders, cache_images="off", num_workers=0)
    dm = _fer(fer_folders, cache_images="on", num_workers=1)
    cache = dm.splits["train"].base
    assert cache._packed is not None and cache._packed["buf"].is_shared()
    decoded = cache.decodes
    _same_items(_items(cache), _items(plain.splits["train"].base))
    assert cache.decodes == decoded  # served from the packed buffer
    xs = torch.cat([b[0] for b in dm.test_dataloader()])  # through a worker process
    ref = torch.cat([b[0] for b in plain.test_dataloader()])
    assert torch.equal(xs, ref)


def test_image_cache_auto_follows_budget(fer_folders):
    assert isinstance(_fer(fer_folders, num_workers=0).splits["train"].base, DecodedImageCache)  # default auto
    small = _fer(fer_folders, num_workers=0, cache_images="auto", cache_budget_mb=1e-6)
    assert not isinstance(small.splits["train"].base, DecodedImageCache)
    with pytest.raises(UserError):
        _fer(fer_folders, cache_images="sometimes")


def test_in_memory_datasets_are_not_wrapped(tmp_path):
    write_layout("fer2013", str(tmp_path), per_class=2, layout="csv")
    dm = FER2013(str(tmp_path), batch_size=4, cache_images="on", num_workers=0)
    dm.setup()
    assert not isinstance(dm.splits["train"].base, DecodedImageCache)


def test_image_cache_remembers_unreadable_files(tmp_path):
    good = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(good), np.full((6, 5), 7, np.uint8))
    bad = tmp_path / "b.png"
    bad.write_bytes(b"")
    cache = DecodedImageCache(fio.ImageListDataset([str(good), str(bad)], [0, 1], grey=True))
    for _ in range(2):
        assert cache[0][0].shape == (1, 6, 5)
        with pytest.raises(UnreadableSample):
            cache[1]
    assert cache.decodes == 2
    cache.fill([0, 1])
    with pytest.raises(UnreadableSample):
        cache[1]
    assert torch.equal(cache[0][0], torch.full((1, 6, 5), 7, dtype=torch.uint8)) and cache[0][1] == 0


# -- on-disk clip cache -----------------------------------------------------------------
def _clip_ds(root, source, cache_dir=None, train=False):
    dm = DFEW(str(root), fold=1, layout="release", source=source, batch_size=2, num_workers=0,
              clip_cache=str(cache_dir) if cache_dir else None, input_size=32)
    dm.setup()
    return dm.splits["train"].base if train else dm.splits["test"].base


def _clips(ds, seed=0):
    torch.manual_seed(seed)
    return [ds[i][0] for i in range(len(ds))]


@pytest.mark.parametrize("source", ["mp4", "frames"])
def test_clip_cache_bit_identical_built_once_and_reused(dfew_release, tmp_path, source, monkeypatch):
    cache_dir = tmp_path / "cc"
    for train in (False, True):
        plain = _clip_ds(dfew_release, source, train=train)
        cached = _clip_ds(dfew_release, source, cache_dir, train=train)
        assert cached.cache is not None and plain.cache is None
        for seed in (0, 1):  # two epochs (different random frames in training)
            for a, b in zip(_clips(cached, seed), _clips(plain, seed)):
                assert a.dtype == torch.uint8 and torch.equal(a, b)
        assert cached.cache.builds == len(cached)  # built on the first epoch only
    # a new run on the same folder decodes nothing
    opened = []
    real_vr = fvideo.decord.VideoReader
    monkeypatch.setattr(fvideo.decord, "VideoReader", lambda *a, **k: opened.append(a[0]) or real_vr(*a, **k))
    real_img = fvideo.decode_image
    monkeypatch.setattr(fvideo, "decode_image", lambda *a, **k: opened.append(a[0]) or real_img(*a, **k))
    again = _clip_ds(dfew_release, source, cache_dir, train=True)
    _clips(again)
    assert again.cache.builds == 0 and opened == []


def test_clip_cache_invalidated_when_source_changes(dfew_release, tmp_path):
    root = tmp_path / "dfew"
    import shutil

    shutil.copytree(dfew_release, root)
    cache_dir = tmp_path / "cc"
    for source in ("mp4", "frames"):
        ds = _clip_ds(root, source, cache_dir)
        before = _clips(ds)
        assert ds.cache.builds == len(ds)
        src = ds.sources[0]
        # rewrite the source with other content (new size / mtime)
        if source == "mp4":
            fvideo.write_mp4(src, np.full((7, 32, 32, 3), 200, np.uint8))
        else:
            first = sorted(os.listdir(src))[0]
            import cv2

            cv2.imwrite(os.path.join(src, first), np.full((32, 32, 3), 250, np.uint8))
        ds2 = _clip_ds(root, source, cache_dir)
        after = _clips(ds2)
        assert ds2.cache.builds == 1  # only the changed clip
        assert not torch.equal(after[0], before[0])
        plain = _clips(_clip_ds(root, source))
        assert all(torch.equal(a, b) for a, b in zip(after, plain))
        assert all(torch.equal(a, b) for a, b in zip(after[1:], before[1:]))


def test_clip_cache_skips_missing_and_mixed_size_sources(tmp_path):
    import cv2

    folder = tmp_path / "clip"
    folder.mkdir()
    for k, size in enumerate((16, 16, 20)):
        cv2.imwrite(str(folder / f"{k:03d}.png"), np.full((size, size, 3), 10 * k, np.uint8))
    ds = fvideo.ClipDataset([str(folder), str(tmp_path / "gone")], [0, 1], frames=4, train=False,
                            cache=ClipCache(tmp_path / "cc"))
    ref = fvideo.ClipDataset([str(folder)], [0], frames=4, train=False)
    assert torch.equal(ds[0][0], ref[0][0]) and ds.cache.builds == 1
    assert torch.equal(ds[0][0], ref[0][0]) and ds.cache.builds == 1  # remembered as not cacheable
    with pytest.raises(UnreadableSample):
        ds[1]


# -- worker defaults, loader settings ---------------------------------------------------
def test_worker_defaults_from_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert usable_cpus() == 2 and default_num_workers() == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert usable_cpus() == 16 and default_num_workers() == 8
    assert default_num_workers(devices=4) == 3 and default_num_workers(cpus=4) == 3
    assert default_num_workers(cpus=1) == 0

    def no_affinity(pid):
        raise OSError

    monkeypatch.setattr(os, "sched_getaffinity", no_affinity)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert default_num_workers() == 5
    dm = FER2013("/nonexistent", num_workers=None, prefetch_factor=4)
    assert dm.num_workers == 5
    kw = dm.loader_kwargs()
    assert kw["persistent_workers"] and kw["prefetch_factor"] == 4
    assert kw["pin_memory"] == torch.cuda.is_available()
    assert FER2013("/x", num_workers=2).num_workers == 2  # an override stays an override


def test_train_config_passes_speed_flags(tmp_path, dfew_release):
    cfg = TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", cache_images="off", num_workers=0,
                      channels_last=True, clip_cache=str(tmp_path))
    dm, model = build(cfg)
    assert dm.cache_images == "off" and dm.num_workers == 0 and dm.channels_last
    assert not hasattr(dm, "clip_cache")  # a static dataset takes no clip cache
    cfg = TrainConfig(method="resnet18_lstm", dataset="dfew", root=str(dfew_release), fold=1, num_workers=0,
                      clip_cache=str(tmp_path / "cc"), data_args={"layout": "release", "source": "mp4"})
    dm, _ = build(cfg)
    assert dm.clip_cache is not None and dm.clip_cache.root == tmp_path / "cc"
    assert "clip_cache" not in dm.protocol_args()  # speed only, never a protocol argument


# -- GPU flags --------------------------------------------------------------------------
def test_channels_last_changes_memory_format_not_results():
    torch.manual_seed(0)
    cfg = dict(method="resnet18_pretrained", dataset="synthetic-static", input_size=32, num_workers=0)
    _, ref = build(TrainConfig(**cfg))
    dm, cl = build(TrainConfig(**cfg, channels_last=True))
    cl.load_state_dict(ref.state_dict())
    convs = [m.weight for m in cl.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(m.weight.is_contiguous(memory_format=torch.channels_last)
                   for m in ref.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.rand(4, 3, 32, 32)  # the recipe's RGB input (a 1-channel batch is channels-last already)
    batch = dm.on_after_batch_transfer((x, torch.zeros(4, dtype=torch.long), torch.arange(4), []), 0)
    assert batch[0].is_contiguous(memory_format=torch.channels_last) and torch.equal(batch[0], x)
    ref.eval(), cl.eval()
    with torch.no_grad():
        torch.testing.assert_close(cl(batch[0]), ref(x), rtol=1e-4, atol=1e-4)


def test_precision_flags():
    from fer_bench.cli import build_parser

    args = build_parser().parse_args(["train", "--method", "resnet18_pretrained", "--dataset", "synthetic-static",
                                      "--precision", "bf16-mixed", "--channels-last", "--clip-cache", "/tmp/c",
                                      "--cache-images", "off"])
    assert (args.precision, args.channels_last, args.clip_cache, args.cache_images, args.num_workers) == \
        ("bf16-mixed", True, "/tmp/c", "off", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--method", "r", "--dataset", "d", "--precision", "fp8"])
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="bf16-mixed"):
            build(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", precision="16-mixed"))
    build(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", precision="bf16-mixed", num_workers=0))
