"""Video clips for the dynamic datasets: one reader, one Dataset, one DataModule base.

Sources
    A clip is either a **video file** (``.mp4``, ``.avi``, ...), decoded with decord
    (``decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)``; only the sampled frames
    are decoded, through ``get_batch``), or a **frame folder** (``.jpg``/``.jpeg``/``.png``
    files, natural-sorted by name so that ``2.jpg`` comes before ``10.jpg``; the zero-padded
    DFEW names ``00001_00001.jpg`` sort the same either way), decoded with OpenCV through
    :func:`fer_bench.data.io.decode_image`.  A frame folder is listed when a clip is read
    (one ``os.scandir`` per read, ~tens of microseconds next to ~1 ms per decoded JPEG), not
    at setup: indexing 11,697 DFEW clips then touches only the label files, and nothing is
    cached per worker.

Clip cache (optional, ``clip_cache=DIR``; :class:`fer_bench.data.cache.ClipCache`)
    Every frame of a clip decoded once (:func:`decode_all_frames`, exactly as the sampling
    readers decode them) into a uint8 ``.npy``; later reads memory-map it and copy only the
    sampled frames, so a cached clip equals an uncached one bit for bit.  Rebuilt when the
    source's size or mtime (a frame folder: any frame file's) changes.

Temporal sampling (:func:`fer_bench.data.sampling.sample_indices`, re-exported here)
    16 frames per clip by the DFEW protocol, or the frame rules of a method's official code,
    as the recipe's ``train_frames`` / ``test_frames`` / ``short_clips`` name them.

Errors
    A missing file or folder, a zero-byte or undecodable video, a folder without frames or
    an undecodable frame raises :class:`~fer_bench.errors.UnreadableSample`; the DataModule
    turns it into a skipped-and-counted sample, ``fer-bench data check`` lists it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import cv2
import decord
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.cache import ClipCache
from fer_bench.data.io import decode_image, require_nonempty_file, write_frame_folder, write_mp4  # noqa: F401  (writers re-exported)
from fer_bench.data.sampling import EVAL_FRAMES, SHORT_CLIPS, TRAIN_FRAMES, sample_indices
from fer_bench.data.splits import stratified_split
from fer_bench.errors import UnreadableSample, UserError, verify_choice


def _png_works() -> bool:
    ok, buf = cv2.imencode(".png", np.zeros((2, 2), np.uint8))
    return bool(ok) and cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) is not None


# Import order matters: eva-decord 0.6.1 bundles its own zlib, and when ``decord`` is loaded
# before ``cv2`` OpenCV's libpng binds to it and every PNG read/write fails ("libpng error:
# bad parameters to zlib").  This module imports cv2 first; a process that imported decord
# earlier is told so here instead of silently skipping every PNG frame as unreadable.
if not _png_works():  # pragma: no cover - depends on the caller's import order
    import warnings

    warnings.warn("OpenCV cannot encode/decode PNG in this process: decord was imported before cv2 "
                  "(zlib clash). Import cv2 or fer_bench before decord.", RuntimeWarning, stacklevel=2)

# decord's "native" bridge: ``get_batch`` returns decord NDArrays (``.asnumpy()``).  It is the
# library default; set explicitly so that the reader never depends on someone else's choice.
decord.bridge.set_bridge("native")

__all__ = [
    "VIDEO_EXTENSIONS", "FRAME_EXTENSIONS", "sample_indices", "is_video_file", "list_frames", "read_video_clip",
    "read_frame_folder_clip", "read_clip", "open_video", "decode_all_frames", "ClipDataset", "write_mp4",
    "write_frame_folder", "ClipDataModule",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
FRAME_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------
def is_video_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def _natural_key(name: str) -> tuple:
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


def list_frames(folder: str | os.PathLike) -> list[str]:
    """Image files of a frame folder, natural-sorted by name (``2.jpg`` before ``10.jpg``).

    Raises :class:`UnreadableSample` when the folder is missing or holds no frame.
    """
    folder = os.fspath(folder)
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if e.name.lower().endswith(FRAME_EXTENSIONS)
                     and not e.name.startswith(".") and e.is_file()]
    except FileNotFoundError:
        raise UnreadableSample(folder, "frame folder is missing") from None
    except NotADirectoryError:
        raise UnreadableSample(folder, "not a frame folder (a file, not a directory)") from None
    except OSError as e:
        raise UnreadableSample(folder, f"frame folder cannot be listed ({e.strerror})") from None
    if not names:
        raise UnreadableSample(folder, "frame folder holds no frames (no .jpg/.jpeg/.png file)")
    names.sort(key=_natural_key)
    return [os.path.join(folder, n) for n in names]


def _unique_gather(indices: np.ndarray, read: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Decode each distinct index once, then repeat: short clips repeat frames for free."""
    uniq, inv = np.unique(indices, return_inverse=True)
    return read(uniq)[inv.reshape(-1)]


def _to_grey(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def open_video(path: str | os.PathLike):
    """``(path, VideoReader, frame count)``; :class:`UnreadableSample` for an empty, undecodable
    or frameless file."""
    path = require_nonempty_file(path)
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except (RuntimeError, decord.DECORDError) as e:
        raise UnreadableSample(path, f"not a decodable video ({_first_line(e)})") from None
    n = len(vr)
    if n < 1:
        del vr
        raise UnreadableSample(path, "video holds no frames")
    return path, vr, n


def read_video_clip(path: str | os.PathLike, num_segments: int = 16, *, train: bool,
                    rng: np.random.Generator | None = None, grey: bool = False,
                    eval_frames: str = "linspace", train_frames: str = "segment",
                    short_clips: str = "repeat") -> np.ndarray:
    """Sampled frames of a video file: uint8 ``[T,H,W,3]`` RGB (``[T,H,W]`` when ``grey``).

    Only the sampled indices are decoded (``VideoReader.get_batch``).
    """
    path, vr, n = open_video(path)
    try:
        idx = sample_indices(n, num_segments, train=train, rng=rng, eval_frames=eval_frames,
                             train_frames=train_frames, short_clips=short_clips)

        def read(uniq: np.ndarray) -> np.ndarray:
            batch = vr.get_batch(uniq.tolist())  # noqa: F821  (vr is deleted after the reads, in finally)
            return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)

        try:
            frames = _unique_gather(idx, read)
        except (RuntimeError, IndexError, decord.DECORDError) as e:
            raise UnreadableSample(path, f"frames cannot be decoded ({_first_line(e)})") from None
    finally:
        del vr
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    return _to_grey(frames) if grey else frames


def _first_line(e: BaseException) -> str:
    """decord's message, short; its bare "Error reading <path>..." says only that FFmpeg failed."""
    text = str(e).strip().splitlines()
    line = text[-1].strip() if text else type(e).__name__
    if line.startswith("Error reading"):
        return "FFmpeg cannot open it"
    return line[-200:]


def read_frame_folder_clip(folder: str | os.PathLike, num_segments: int = 16, *, train: bool,
                           rng: np.random.Generator | None = None, grey: bool = False,
                           eval_frames: str = "linspace", train_frames: str = "segment",
                           short_clips: str = "repeat") -> np.ndarray:
    """Sampled frames of a frame folder: uint8 ``[T,H,W,3]`` RGB (``[T,H,W]`` when ``grey``).

    Only the sampled files are decoded.  A frame whose size differs from the first sampled
    frame's is resized to it (``cv2.INTER_AREA``) so that the clip stacks.
    """
    files = list_frames(folder)
    idx = sample_indices(len(files), num_segments, train=train, rng=rng, eval_frames=eval_frames,
                         train_frames=train_frames, short_clips=short_clips)

    def read(uniq: np.ndarray) -> np.ndarray:
        imgs = [decode_image(files[i], grey=grey) for i in uniq]
        h, w = imgs[0].shape[:2]
        imgs = [im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
                for im in imgs]
        return np.stack(imgs)

    return _unique_gather(idx, read)


def read_clip(source: str | os.PathLike, num_segments: int = 16, *, train: bool,
              rng: np.random.Generator | None = None, grey: bool = False, eval_frames: str = "linspace",
              train_frames: str = "segment", short_clips: str = "repeat") -> np.ndarray:
    """A video file (by extension, see :data:`VIDEO_EXTENSIONS`) or a frame folder."""
    reader = read_video_clip if is_video_file(source) else read_frame_folder_clip
    return reader(source, num_segments, train=train, rng=rng, grey=grey, eval_frames=eval_frames,
                  train_frames=train_frames, short_clips=short_clips)


def count_frames(source: str | os.PathLike) -> int | None:
    """The number of frames of a clip (a video's ``len``, a folder's frame files), ``None`` when it
    cannot be read (the readers then report it as unreadable)."""
    try:
        if is_video_file(source):
            _, vr, n = open_video(source)
            del vr
            return n
        return len(list_frames(source))
    except UnreadableSample:
        return None


def decode_all_frames(source: str | os.PathLike, grey: bool = False) -> np.ndarray:
    """Every frame of a clip, decoded exactly as the sampling readers decode them (the clip
    cache's content).  Raises :class:`UnreadableSample` when the clip cannot be read whole,
    or when a frame folder's frames differ in size (the sampling reader resizes those to the
    first *sampled* frame, which depends on the sample: such a clip is not cacheable)."""
    source = os.fspath(source)
    if is_video_file(source):
        path, vr, n = open_video(source)
        try:
            batch = vr.get_batch(list(range(n)))
        except (RuntimeError, IndexError, decord.DECORDError) as e:
            raise UnreadableSample(path, f"frames cannot be decoded ({_first_line(e)})") from None
        finally:
            del vr
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        return _to_grey(frames) if grey else frames
    imgs = [decode_image(f, grey=grey) for f in list_frames(source)]
    if any(im.shape != imgs[0].shape for im in imgs):
        raise UnreadableSample(source, "frames differ in size (not cacheable)")
    return np.stack(imgs)


# --------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------
class ClipDataset(Dataset):
    """Clips read lazily from video files or frame folders: ``(uint8 [T,C,H,W], label)``.

    ``train=True`` samples one random frame per segment, ``train=False`` the uniform
    ``linspace`` frames (:func:`sample_indices`); ``T = frames``.  Exposes ``labels`` (and
    ``sources``) so that splitting and counting never decode anything.

    Training randomness: each read draws one 62-bit number from torch's global generator
    and seeds ``np.random.default_rng([seed, index, draw])``.  torch's generator is seeded
    by ``lightning.seed_everything(seed, workers=True)`` in the main process and, in a
    DataLoader worker, from the loader's base seed + worker id (Lightning's worker init);
    it advances with every read, so the frames differ per epoch (also with persistent
    workers) and per worker, and a run is reproducible from its seed.
    """

    def __init__(self, sources: Sequence[str | os.PathLike], labels: Sequence[int] | np.ndarray, *,
                 frames: int = 16, train: bool, grey: bool = False, seed: int = 0,
                 cache: ClipCache | None = None, eval_frames: str = "linspace", train_frames: str = "segment",
                 short_clips: str = "repeat") -> None:
        if len(sources) != len(labels):
            raise ValueError(f"sources ({len(sources)}) and labels ({len(labels)}) differ in length")
        if int(frames) < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.sources = [os.fspath(s) for s in sources]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.frames = int(frames)
        self.train = bool(train)
        self.grey = bool(grey)
        self.seed = int(seed)
        self.cache = cache
        self.eval_frames = verify_choice(eval_frames, "test_frames", EVAL_FRAMES)
        self.train_frames = verify_choice(train_frames, "train_frames", TRAIN_FRAMES)
        self.short_clips = verify_choice(short_clips, "short_clips", SHORT_CLIPS)

    def __len__(self) -> int:
        return len(self.sources)

    def read(self, i: int, rng: np.random.Generator | None) -> np.ndarray:
        """The sampled frames of clip ``i``; through the clip cache when one is set (bit-identical)."""
        source = self.sources[i]
        if self.cache is not None:
            every = self.cache.frames(source, self.grey, decode_all_frames)
            if every is not None:
                idx = sample_indices(len(every), self.frames, train=self.train, rng=rng,
                                     eval_frames=self.eval_frames, train_frames=self.train_frames,
                                     short_clips=self.short_clips)
                return np.ascontiguousarray(every[idx])
        return read_clip(source, self.frames, train=self.train, rng=rng, grey=self.grey,
                         eval_frames=self.eval_frames, train_frames=self.train_frames, short_clips=self.short_clips)

    def _rng(self, i: int) -> np.random.Generator:
        draw = int(torch.randint(0, 2 ** 62, (1,)).item())
        return np.random.default_rng([self.seed, int(i), draw])

    def __getitem__(self, i: int):
        rng = self._rng(i) if self.train else None
        clip = self.read(i, rng)
        if clip.ndim == 3:
            clip = clip[..., None]
        x = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))
        return x, int(self.labels[i])


# --------------------------------------------------------------------------------------
# DataModule base of the clip datasets
# --------------------------------------------------------------------------------------
class ClipDataModule(FERDataModule):
    """Shared by DFEW and FERV39K: ``frames`` per clip, RGB 112x112 by default, and a
    validation split carved from training whose clips are read the *test* way.

    The base class would carve validation out of the training dataset object itself and so
    validate on randomly sampled frames; :meth:`clip_splits` carves the split here
    (:func:`~fer_bench.data.splits.stratified_split`, seeded by ``seed``) and builds one
    train-mode :class:`ClipDataset` and one eval-mode :class:`ClipDataset`, so that model
    selection sees the same deterministic frames as the test.
    """

    info: ClassVar[DatasetInfo] = DatasetInfo("dynamic", "")
    default_input_size: ClassVar[int] = 112  # IAL (Li et al., AAAI 2023): RGB 112x112
    default_in_chans: ClassVar[int] = 3

    def __init__(self, root: str | None = None, *, frames: int = 16, clip_cache: str | None = None,
                 test_frames: str = "linspace", train_frames: str = "segment", short_clips: str = "repeat",
                 **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if isinstance(frames, bool) or int(frames) < 1:
            raise UserError(f"frames must be a positive integer (frames per clip), got {frames!r}")
        self.frames = int(frames)
        # protocol: how training and val/test frames are placed (sample_indices), and what happens to a clip
        # shorter than `frames` (repeat its frames, loop it, or drop it from every split as the IAL code does)
        where = getattr(self, "registry_name", type(self).__name__)
        self.test_frames = verify_choice(test_frames, "test_frames", EVAL_FRAMES, where=where)
        self.train_frames = verify_choice(train_frames, "train_frames", TRAIN_FRAMES, where=where)
        self.short_clips = verify_choice(short_clips, "short_clips", SHORT_CLIPS, where=where)
        self.dropped_short: dict[str, int] = {}
        # optional on-disk uint8 cache of decoded frames (fer_bench.data.cache); not a protocol
        # argument: a cached clip equals an uncached one bit for bit
        self.clip_cache = ClipCache(clip_cache) if clip_cache else None

    def clip_splits(self, train_sources: Sequence[str], train_labels: Sequence[int],
                    test_sources: Sequence[str], test_labels: Sequence[int]) -> dict[str, Dataset]:
        """Train (random segment frames), carved val and test (uniform frames) datasets."""
        train_labels = np.asarray(train_labels, dtype=np.int64)
        test_labels = np.asarray(test_labels, dtype=np.int64)
        if self.short_clips == "drop":
            train_sources, train_labels = self._drop_short("train", train_sources, train_labels)
            test_sources, test_labels = self._drop_short("test", test_sources, test_labels)
        tr, va = stratified_split(train_labels, self.val_fraction, self.seed)

        def make(sources: Sequence[str], labels: np.ndarray, train: bool) -> ClipDataset:
            return ClipDataset(sources, labels, frames=self.frames, train=train, grey=self.in_chans == 1,
                               seed=self.seed, cache=self.clip_cache, eval_frames=self.test_frames,
                               train_frames=self.train_frames, short_clips=self.short_clips)

        return {
            "train": make([train_sources[i] for i in tr], train_labels[tr], True),
            "val": make([train_sources[i] for i in va], train_labels[va], False),
            "test": make(list(test_sources), test_labels, False),
        }

    def _drop_short(self, split: str, sources: Sequence[str], labels: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The clips of ``split`` with at least ``frames`` frames (``short_clips=drop``, the official IAL
        list parser's ``int(item[1]) >= 16``); an unreadable clip is kept, to be counted when read."""
        keep = [i for i, src in enumerate(sources) if (n := count_frames(src)) is None or n >= self.frames]
        self.dropped_short[split] = len(sources) - len(keep)
        return [sources[i] for i in keep], labels[keep]

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        train_rule = {"segment": "one random frame per segment (sorted)",
                      "segment-tsn": "one random frame per segment of n // frames frames (TSN)",
                      "random-sorted": "`frames` distinct random frames, sorted"}[self.train_frames]
        test_rule = {"linspace": "linspace(0, n-1, frames) rounded", "linspace-floor": "linspace(0, n-1, frames) truncated",
                     "segment-centre": "the centre of each of `frames` segments"}[self.test_frames]
        short_rule = {"repeat": "short clips repeat frames", "loop": "short clips loop",
                      "drop": f"clips under `frames` frames dropped ({self.dropped_short or 'counted at setup'})"}
        args.update(
            frames=self.frames,
            train_frames=self.train_frames,
            test_frames=self.test_frames,
            short_clips=self.short_clips,
            dropped_short_clips=dict(self.dropped_short),
            temporal_sampling=f"train: {train_rule}; val/test: {test_rule}; {short_rule[self.short_clips]}",
            val_split=f"{self.val_fraction:g} of the training clips, stratified, seed {self.seed}",
        )
        return args
