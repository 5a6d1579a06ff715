"""fer_bench.data.video: temporal sampling, decord/mp4 and frame-folder reading, ClipDataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fer_bench.data import video
from fer_bench.data.video import (
    ClipDataset,
    list_frames,
    read_frame_folder_clip,
    read_video_clip,
    sample_indices,
    write_frame_folder,
    write_mp4,
)
from fer_bench.errors import UnreadableSample


# --------------------------------------------------------------------------------------
# sample_indices
# --------------------------------------------------------------------------------------
def test_test_mode_is_rounded_linspace():
    # linspace(0, 31, 16) = 0, 2.067, 4.133, ... 14.467, 16.533, ... 31 -> rounded by hand
    assert sample_indices(32, 16, train=False).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31]
    assert sample_indices(16, 16, train=False).tolist() == list(range(16))
    # short clip: linspace(0, 4, 16) = 0, .27, .53, .8, 1.07, ... repeats frames
    assert sample_indices(5, 16, train=False).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4]
    assert sample_indices(1, 16, train=False).tolist() == [0] * 16
    assert sample_indices(10, 4, train=False).tolist() == [0, 3, 6, 9]
    # the rng is ignored in test mode
    a = sample_indices(97, 16, train=False, rng=np.random.default_rng(1))
    b = sample_indices(97, 16, train=False, rng=np.random.default_rng(2))
    assert a.tolist() == b.tolist() and a.dtype == np.int64


@pytest.mark.parametrize("n", [16, 17, 31, 100, 250])
def test_train_mode_one_frame_per_segment(n):
    lo = [(k * n) // 16 for k in range(16)]
    hi = [((k + 1) * n) // 16 for k in range(16)]
    for seed in range(30):
        idx = sample_indices(n, 16, train=True, rng=np.random.default_rng(seed))
        assert idx.dtype == np.int64 and len(idx) == 16
        assert all(lo[k] <= idx[k] < hi[k] for k in range(16)), (idx, lo, hi)
        assert np.all(np.diff(idx) > 0)  # sorted, no repeats when n >= 16
        assert 0 <= idx.min() and idx.max() <= n - 1


def test_train_mode_deterministic_random_and_reaches_every_frame():
    a = sample_indices(100, 16, train=True, rng=np.random.default_rng(7))
    b = sample_indices(100, 16, train=True, rng=np.random.default_rng(7))
    c = sample_indices(100, 16, train=True, rng=np.random.default_rng(8))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    # n=32: segment k is {2k, 2k+1}; both frames of every segment get drawn
    rng = np.random.default_rng(0)
    seen = np.stack([sample_indices(32, 16, train=True, rng=rng) for _ in range(200)])
    for k in range(16):
        assert set(seen[:, k].tolist()) == {2 * k, 2 * k + 1}
    # n=33: the last segment is [30, 33) -> frame 32 is reachable (the IAL code's n//16 would drop it)
    assert 32 in {int(sample_indices(33, 16, train=True, rng=rng)[-1]) for _ in range(200)}


def test_train_mode_short_clip_repeats_deterministically():
    for seed in range(5):
        idx = sample_indices(5, 16, train=True, rng=np.random.default_rng(seed))
        assert idx.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert sample_indices(1, 16, train=True, rng=np.random.default_rng(0)).tolist() == [0] * 16


def test_sample_indices_rejects_empty_clip():
    with pytest.raises(ValueError):
        sample_indices(0, 16, train=False)
    with pytest.raises(ValueError):
        sample_indices(0, 16, train=True, rng=np.random.default_rng(0))


# --------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------
def _coded_frames(t: int, size: int = 64) -> np.ndarray:
    """Frames whose grey level encodes the frame number (10 * t + 20) plus a red square."""
    f = np.empty((t, size, size, 3), np.uint8)
    for k in range(t):
        f[k] = 20 + 10 * k
        f[k, 8:24, 8:24] = (230, 30, 30)
    return f


def test_mp4_roundtrip_through_decord(tmp_path):
    frames = _coded_frames(20)
    path = write_mp4(tmp_path / "clip.mp4", frames)
    vr = video.decord.VideoReader(str(path), ctx=video.decord.cpu(0), num_threads=1)  # cv2 loaded first
    assert len(vr) == 20
    del vr
    got = read_video_clip(path, 20, train=False)
    assert got.shape == (20, 64, 64, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - frames.astype(np.int16)).mean(axis=(1, 2, 3))
    assert diff.max() < 10, diff
    # the right frames in the right order: background level 20 + 10 t
    assert np.all(np.abs(got[:, 40:, 40:].mean(axis=(1, 2, 3)) - (20 + 10 * np.arange(20))) < 4)
    # the red square stays red (RGB, not BGR)
    assert got[:, 12:20, 12:20, 0].mean() > 200 and got[:, 12:20, 12:20, 2].mean() < 60
    # 16 sampled frames = the linspace frames
    got16 = read_video_clip(path, 16, train=False)
    want = frames[sample_indices(20, 16, train=False)]
    assert np.abs(got16.astype(np.int16) - want.astype(np.int16)).mean() < 10
    grey = read_video_clip(path, 4, train=False, grey=True)
    assert grey.shape == (4, 64, 64)


def test_frame_folder_png_is_exact_and_naturally_sorted(tmp_path):
    frames = _coded_frames(12, size=24)
    write_frame_folder(tmp_path / "clip", frames, name=lambda k: f"{k}.png")  # 1.png ... 12.png
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    files = list_frames(tmp_path / "clip")
    assert [p.rsplit("/", 1)[-1] for p in files] == [f"{k}.png" for k in range(1, 13)]
    got = read_frame_folder_clip(tmp_path / "clip", 12, train=False)
    assert np.array_equal(got, frames)
    got16 = read_frame_folder_clip(tmp_path / "clip", 16, train=False)
    assert np.array_equal(got16, frames[sample_indices(12, 16, train=False)])
    grey = read_frame_folder_clip(tmp_path / "clip", 3, train=False, grey=True)
    assert grey.shape == (3, 24, 24) and grey[0, 2, 2] == 20 and grey[2, 2, 2] == 130


def test_unreadable_clips_raise_unreadable_sample(tmp_path):
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "nofr").mkdir()
    (tmp_path / "nofr" / "readme.txt").write_text("x")
    cases = {
        "garbage.mp4": "not a decodable video",
        "empty.mp4": "0 bytes",
        "absent.mp4": "missing",
        "nofr": "no frames",
        "absent_dir": "missing",
    }
    for name, reason in cases.items():
        with pytest.raises(UnreadableSample) as e:
            ClipDataset([tmp_path / name], [0], frames=4, train=False)[0]
        assert reason in e.value.reason, (name, e.value.reason)
        assert e.value.path == str(tmp_path / name)


# --------------------------------------------------------------------------------------
# ClipDataset
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coded_clip(tmp_path_factory):
    """A 64-frame png folder whose grey level is 2 * frame index + 1."""
    folder = tmp_path_factory.mktemp("coded") / "clip"
    levels = (2 * np.arange(64) + 1).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (64, 8, 8, 3)).copy()
    write_frame_folder(folder, frames, name=lambda k: f"f_{k:03d}.png")
    return folder


def _frame_ids(x: torch.Tensor) -> list[int]:
    return ((x[:, 0, 0, 0].long() - 1) // 2).tolist()


def test_clip_dataset_shapes_labels_and_modes(coded_clip):
    ds = ClipDataset([coded_clip, coded_clip], [3, 5], frames=16, train=False)
    assert ds.labels.tolist() == [3, 5] and len(ds) == 2
    x, y = ds[1]
    assert x.dtype == torch.uint8 and x.shape == (16, 3, 8, 8) and y == 5
    assert _frame_ids(x) == sample_indices(64, 16, train=False).tolist()
    xg, _ = ClipDataset([coded_clip], [0], frames=16, train=False, grey=True)[0]
    assert xg.shape == (16, 1, 8, 8)

    tr = ClipDataset([coded_clip], [0], frames=16, train=True, seed=3)
    torch.manual_seed(0)
    first = [_frame_ids(tr[0][0]) for _ in range(3)]
    torch.manual_seed(0)
    again = [_frame_ids(tr[0][0]) for _ in range(3)]
    assert first == again  # reproducible from torch's seed
    assert first[0] != first[1] != first[2]  # a new draw at every read (every epoch)
    for ids in first:  # segment k of 64 frames is [4k, 4k+4)
        assert all(4 * k <= i < 4 * k + 4 for k, i in enumerate(ids))
    torch.manual_seed(0)
    other_seed = _frame_ids(ClipDataset([coded_clip], [0], frames=16, train=True, seed=4)[0][0])
    assert other_seed != first[0]


def test_clip_dataset_workers_differ_per_epoch_and_reproduce(coded_clip):
    import lightning as L

    ds = ClipDataset([coded_clip] * 4, [0, 1, 2, 3], frames=16, train=True)

    def two_epochs():
        L.seed_everything(0, workers=True, verbose=False)
        dl = DataLoader(ds, batch_size=1, num_workers=2, persistent_workers=True)
        return [[_frame_ids(x[0]) for x, _ in dl] for _ in range(2)]

    a, b = two_epochs(), two_epochs()
    assert a == b  # reproducible from the seed, workers included
    assert a[0] != a[1]  # epochs differ even with persistent workers
    assert len({tuple(ids) for ids in a[0]}) == 4  # the same clip differs per sample/worker
