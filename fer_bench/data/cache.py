"""Decoded-sample caches: images in memory, video clips on disk.  Both are bit-exact.

Image cache (:class:`DecodedImageCache`)
    Wraps a dataset that decodes a file per item (:class:`~fer_bench.data.io.ImageListDataset`
    and its subclasses: RAF-DB, AffectNet, CK+, the FER2013/FERPlus image folders,
    ``imagefolder``) and keeps each decoded, cropped uint8 sample, so that every epoch after
    the first costs no decoding.  ``cache_images`` (a DataModule argument, ``-d
    cache_images=...``, ``fer-bench train --cache-images``):

    ``auto`` (default)  on when the estimated decoded size of the samples the splits use
                        (mean of a few decoded samples x their number) is below
                        ``cache_budget_mb`` (default: a quarter of the machine's RAM, at most
                        8 GiB); FER2013 as images is 83 MB, RAF-DB ~0.5 GB, AffectNet at full
                        resolution ~100 GB (not cached).
    ``on`` / ``off``    always / never.

    Datasets that already hold their pixels in memory (the FER2013 csv layouts, the
    synthetic datasets) are never wrapped.  With DataLoader workers the cache is filled once
    in the main process before the loaders start, packed into one shared-memory uint8 buffer
    (plus offsets), so that forked or spawned workers map the same pages instead of each
    decoding and holding its own copy; without workers it fills lazily during the first epoch.
    A sample that cannot be read is remembered as such and raises the same
    :class:`~fer_bench.errors.UnreadableSample` again.

Clip cache (:class:`ClipCache`)
    ``clip_cache=DIR`` (``-d clip_cache=DIR``, ``fer-bench train --clip-cache DIR``) stores
    *every* frame of a clip, decoded exactly as the uncached reader decodes it (RGB, or grey
    when the model takes one channel), as one uint8 ``.npy`` ``[N,H,W(,3)]`` under ``DIR``.
    Frames are not resized: the temporal sampling (random per epoch in training) and the
    augmentation then run on the same pixels as without the cache, so a cached clip equals an
    uncached one bit for bit.  Reads memory-map the file and copy only the sampled frames.
    An entry is keyed by the absolute source path and the channel mode, and records the
    source's signature (a video file: size + ``mtime_ns``; a frame folder: the name, size and
    ``mtime_ns`` of every frame file); a changed source is re-decoded on its next read.
    Entries are built on first read, by whichever process reads the clip first (written to a
    temporary file and renamed, so concurrent workers never see half a file), and reused by
    every later epoch, run, fold and seed.  A frame folder whose frames differ in size, or a
    video that cannot be decoded whole, is not cached (read the uncached way, remembered in
    the entry so that it is not retried until the source changes).  Size: ~37 kB per
    112x112 RGB frame, ~150 kB per 224x224 frame.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.errors import UnreadableSample, verify_choice
from fer_bench.files import atomic_write

CACHE_MODES: tuple[str, ...] = ("auto", "on", "off")
_ESTIMATE_SAMPLES = 8


def default_cache_budget_mb() -> float:
    """A quarter of the physical memory, at most 8 GiB (the ``auto`` image-cache budget)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    return min(total / 4, 8 << 30) / 2 ** 20


def check_cache_mode(mode: Any) -> str:
    if isinstance(mode, bool):  # -d cache_images=true / false (YAML booleans)
        return "on" if mode else "off"
    return verify_choice(mode, "cache_images", CACHE_MODES)


class DecodedImageCache(Dataset):
    """``base[i]`` decoded once, then served from memory (see the module docstring).

    Exposes the base's ``labels`` / ``groups`` / other attributes, so that splitting and
    counting work unchanged.  ``decodes`` counts calls to the base (for tests and figures).
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.decodes = 0
        self._items: dict[int, tuple[torch.Tensor, Any] | UnreadableSample] = {}
        self._packed: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str):
        if name in ("base", "_items", "_packed", "decodes") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def _decode(self, i: int):
        self.decodes += 1
        try:
            x, y = self.base[i]
        except UnreadableSample as e:
            return e
        return x.contiguous(), y

    def __getitem__(self, i: int):
        i = int(i)
        p = self._packed
        if p is not None and p["slot"][i] >= 0:
            k = int(p["slot"][i])
            if k in p["errors"]:
                raise p["errors"][k]
            a, b = int(p["offsets"][k]), int(p["offsets"][k + 1])
            shape = p["shapes"][k]
            x = p["buf"][a:b].view(shape).clone()
            y = p["ys"][k]
            return x, (y.clone() if isinstance(y, torch.Tensor) else int(y))
        item = self._items.get(i)
        if item is None:
            item = self._items[i] = self._decode(i)
        if isinstance(item, UnreadableSample):
            raise item
        x, y = item
        return x.clone(), (y.clone() if isinstance(y, torch.Tensor) else y)

    # -- eager, shared fill --------------------------------------------------------------
    def fill(self, positions: Sequence[int]) -> None:
        """Decode ``positions`` now (in this process) and pack them into one shared buffer."""
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        items = [self._items.get(int(i)) or self._decode(int(i)) for i in positions]
        good = [it for it in items if not isinstance(it, UnreadableSample)]
        sizes = np.array([0] + [it[0].numel() for it in good], dtype=np.int64)
        offsets = np.cumsum(sizes)
        buf = torch.empty(int(offsets[-1]), dtype=torch.uint8)
        shapes: list[tuple[int, ...]] = []
        ys: list = []
        errors: dict[int, UnreadableSample] = {}
        slot = np.full(len(self.base), -1, np.int64)
        g = 0
        all_offsets = np.zeros(len(items) + 1, np.int64)
        for k, (i, it) in enumerate(zip(positions, items)):
            slot[i] = k
            all_offsets[k] = offsets[g]
            if isinstance(it, UnreadableSample):
                errors[k] = it
                ys.append(0)
                shapes.append(())
                all_offsets[k + 1] = offsets[g]
                continue
            x, y = it
            buf[offsets[g]:offsets[g + 1]] = x.reshape(-1)
            shapes.append(tuple(x.shape))
            ys.append(y)
            g += 1
            all_offsets[k + 1] = offsets[g]
        buf.share_memory_()  # spawned workers receive a handle to the same pages, not a copy
        if ys and all(isinstance(y, int) for y in ys):
            ys = np.asarray(ys, dtype=np.int64)
        self._packed = {"buf": buf, "offsets": all_offsets, "shapes": shapes, "ys": ys, "errors": errors,
                        "slot": slot}
        self._items = {}

    @property
    def nbytes(self) -> int:
        if self._packed is not None:
            return int(self._packed["buf"].numel())
        return sum(it[0].numel() for it in self._items.values() if not isinstance(it, UnreadableSample))


def estimate_decoded_mb(base: Dataset, positions: Sequence[int]) -> float:
    """Decoded size (MB) of ``positions`` of ``base``, from the mean of a few decoded samples."""
    positions = np.unique(np.asarray(positions, dtype=np.int64))
    if len(positions) == 0:
        return 0.0
    probe = positions[np.linspace(0, len(positions) - 1, min(_ESTIMATE_SAMPLES, len(positions))).astype(np.int64)]
    sizes = []
    for i in probe:
        try:
            sizes.append(base[int(i)][0].numel())
        except UnreadableSample:
            continue
    if not sizes:
        return 0.0
    return float(np.mean(sizes)) * len(positions) / 2 ** 20


def decodes_files(ds: Dataset) -> bool:
    """True for datasets that decode an image file per item (worth caching)."""
    return bool(getattr(ds, "decodes_files", False))


# --------------------------------------------------------------------------------------
# on-disk clip cache
# --------------------------------------------------------------------------------------
_CLIP_CACHE_VERSION = 1


def source_signature(source: str) -> str:
    """What changes when a clip's source changes: size + mtime_ns of a video file, or of
    every frame file of a frame folder (by name).  Raises ``OSError`` when it is missing."""
    st = os.stat(source)
    if not os.path.isdir(source):
        return f"file:{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha1()
    with os.scandir(source) as it:
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it if e.is_file())
    for name, size, mtime in entries:
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return f"dir:{len(entries)}:{h.hexdigest()}"


class ClipCache:
    """All decoded frames of each clip as uint8 ``.npy`` under ``root`` (module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.builds = 0  # entries decoded and written by this process (tests, figures)

    def __reduce__(self):  # picklable for spawned workers, counters start afresh
        return (ClipCache, (str(self.root),))

    def _paths(self, source: str, grey: bool) -> tuple[Path, Path]:
        key = hashlib.sha1(f"v{_CLIP_CACHE_VERSION}\0{os.path.abspath(source)}\0{int(grey)}".encode()).hexdigest()
        d = self.root / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    def frames(self, source: str, grey: bool, decode_all: Callable[[str, bool], np.ndarray]) -> np.ndarray | None:
        """Every frame of ``source`` (read-only memory map), building the entry if it is
        missing or stale; ``None`` when the clip is not cacheable (then read it uncached).
        Raises :class:`UnreadableSample` for a missing source."""
        try:
            sig = source_signature(source)
        except OSError:
            return None  # missing: the uncached reader raises the proper UnreadableSample
        npy, meta = self._paths(source, grey)
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            info = None
        if info is not None and info.get("signature") == sig and info.get("source") == os.path.abspath(source):
            if not info.get("cacheable", True):
                return None
            try:
                arr = np.load(npy, mmap_mode="r")
                if list(arr.shape) == info.get("shape"):
                    return arr
            except (OSError, ValueError):
                pass
        return self._build(source, grey, sig, npy, meta, decode_all)

    def _build(self, source: str, grey: bool, sig: str, npy: Path, meta: Path,
               decode_all: Callable[[str, bool], np.ndarray]) -> np.ndarray | None:
        self.builds += 1
        try:
            arr = decode_all(source, grey)
        except UnreadableSample:
            arr = None
        info: dict[str, Any] = {"source": os.path.abspath(source), "signature": sig, "grey": bool(grey),
                                "version": _CLIP_CACHE_VERSION}
        npy.parent.mkdir(parents=True, exist_ok=True)
        if arr is None:
            info["cacheable"] = False
        else:
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            info["shape"] = list(arr.shape)
            atomic_write(npy, lambda f: np.save(f, arr, allow_pickle=False), fsync=False)
        atomic_write(meta, lambda f: f.write(json.dumps(info).encode()), fsync=False)
        return arr

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.npy"))
