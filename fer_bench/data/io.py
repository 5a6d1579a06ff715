"""File and image helpers shared by every dataset reader (and the one image writer).

Reading: listing image files and folders, text tables read by pandas with every problem a
:class:`~fer_bench.errors.DataFormatError`, lazy image decoding (a missing, empty or
undecodable file raises :class:`~fer_bench.errors.UnreadableSample`, which the DataModule turns
into a skipped-and-counted sample instead of a crash), the ``(path, label)`` and in-memory
array datasets.  Writing: :func:`write_image`, the one image writer of the synthetic trees, and
the clip writers :func:`write_mp4` / :func:`write_frame_folder` built on it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from fer_bench.errors import DataFormatError, UnreadableSample

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})

#: lower-case class-folder name -> canonical class id (index into CANONICAL_CLASSES_8)


def require_nonempty_file(path: str | os.PathLike) -> str:
    """``path`` as a string; :class:`UnreadableSample` if it is missing or has 0 bytes."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise UnreadableSample(path, "file is missing") from None
    if size == 0:
        raise UnreadableSample(path, "file is empty (0 bytes)")
    return path


def decode_image(path: str | os.PathLike, *, grey: bool = False) -> np.ndarray:
    """uint8 ``HxW`` (grey) or ``HxWx3`` RGB array of an image file."""
    path = require_nonempty_file(path)
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise UnreadableSample(path, "not a decodable image")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 ``HxW`` / ``HxWxC`` array -> contiguous uint8 tensor ``[C,H,W]``."""
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files directly inside ``folder`` (by extension, hidden files skipped), sorted."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or not e.is_file():
                continue
            if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                out.append(e.path)
    return sorted(out)


def list_dirs(folder: str | os.PathLike) -> list[str]:
    """Names of the non-hidden sub-folders of ``folder``, sorted."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def list_entries(folder: str | os.PathLike, *, dirs: bool) -> list[os.DirEntry]:
    """Visible sub-folders (``dirs=True``) or files of ``folder`` (names starting with ``.`` or
    ``__``, e.g. ``.DS_Store`` and ``__MACOSX``, skipped), sorted by name."""
    with os.scandir(folder) as it:
        out = [e for e in it if not e.name.startswith((".", "__")) and (e.is_dir() if dirs else e.is_file())]
    return sorted(out, key=lambda e: e.name)


def read_table(path: str | os.PathLike, *, expected: str, **read_csv_args: Any) -> pd.DataFrame:
    """A text table read by pandas as strings, every problem a :class:`DataFormatError`.

    Blank lines are kept (as empty rows) so that row ``i`` stays at a known line; trailing
    empty rows (a blank line at the end of the file) are dropped; missing fields read as ``""``.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, **read_csv_args)
    except FileNotFoundError:
        raise DataFormatError(path, expected, found="no such file") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, expected, found="an empty file") from None
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        raise DataFormatError(path, expected, line=int(m.group(1)) if m else None,
                              found=str(e).strip().split("C error: ")[-1]) from None
    except UnicodeDecodeError as e:
        raise DataFormatError(path, expected, found=f"bytes that are not text ({e.reason})") from None
    df = df.fillna("")
    if len(df):
        filled = (df != "").any(axis=1).to_numpy()
        last = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
        df = df.iloc[:last]
    return df


class ImageListDataset(Dataset):
    """``(path, label)`` pairs decoded lazily; optional face boxes ``(x, y, w, h)`` to crop.

    Exposes ``labels`` (and ``groups`` when subjects are given) so that splitting, class
    limits and counting never decode an image.  ``decodes_files`` marks it (and its
    subclasses) for the decoded-sample cache (:mod:`fer_bench.data.cache`).
    """

    decodes_files = True

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        *,
        grey: bool = False,
        boxes: np.ndarray | None = None,
        groups: Sequence | None = None,
        targets: np.ndarray | None = None,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.grey = grey
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.int64)
        if groups is not None:
            self.groups = np.asarray(groups)
        self.targets = targets  # optional soft targets [N, C] (float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = decode_image(self.paths[i], grey=self.grey)
        if self.boxes is not None:
            x, y, w, h = self.boxes[i]
            crop = img[max(y, 0): y + h, max(x, 0): x + w]
            if crop.size == 0:
                raise UnreadableSample(self.paths[i], f"face box {tuple(self.boxes[i])} lies outside the image")
            img = crop
        y = torch.from_numpy(self.targets[i]) if self.targets is not None else int(self.labels[i])
        return to_chw(img), y


class ArrayImageDataset(Dataset):
    """Rows ``positions`` of a shared uint8 image array ``[N, H, W]`` -> ``(uint8 [1,H,W], y)``.

    ``labels`` are the hard canonical ids; ``targets`` (optional, float32 ``[n, C]``) are soft
    targets returned instead of the id.  ``positions`` are the csv row indices (0-based data rows).
    """

    def __init__(self, images: np.ndarray, positions: np.ndarray, labels: np.ndarray,
                 targets: np.ndarray | None = None) -> None:
        if len(positions) != len(labels):
            raise ValueError("positions and labels differ in length")
        self.images = images
        self.positions = np.asarray(positions, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.array(self.images[self.positions[i]], dtype=np.uint8, copy=True)).unsqueeze(0)
        y = torch.from_numpy(self.targets[i].copy()) if self.targets is not None else int(self.labels[i])
        return x, y


# --------------------------------------------------------------------------------------
# writing (synthetic trees, tests)
# --------------------------------------------------------------------------------------
def write_image(path: str | os.PathLike, img: np.ndarray, *, quality: int = 95) -> None:
    """Write a uint8 grey ``HxW`` or RGB ``HxWx3`` image (format from the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, arr, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    buf.tofile(str(path))


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be [T,H,W] or [T,H,W,3] with T >= 1, got {frames.shape}")
    return frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float = 25.0) -> Path:
    """Write uint8 RGB ``[T,H,W,3]`` (or grey ``[T,H,W]``) frames as an MPEG-4 Part 2 ``.mp4``.

    ``cv2.VideoWriter`` with fourcc ``mp4v``: OpenCV's bundled FFmpeg writes it and decord
    reads it back with the same frame count (lossy: mean absolute error ~2 grey levels on
    smooth content, checked in ``tests/test_video.py``).  Even ``H``/``W`` are safest.
    """
    frames = _as_rgb(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(w), int(h)), True)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open an mp4v writer for {path}")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_frame_folder(folder: str | os.PathLike, frames: np.ndarray, *,
                       name: Callable[[int], str] = lambda k: f"{k:05d}.jpg", start: int = 1,
                       jpeg_quality: int = 95) -> list[Path]:
    """Write uint8 RGB ``[T,H,W,3]`` (or grey ``[T,H,W]``) frames as image files.

    ``name(k)`` gives the file name of frame ``k`` (``start``-based); its extension picks
    the format (``.png`` is lossless).  Returns the written paths in frame order.
    """
    frames = np.asarray(frames)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t, f in enumerate(frames):
        p = folder / name(start + t)
        write_image(p, np.ascontiguousarray(f), quality=int(jpeg_quality))
        out.append(p)
    return out


def check_unique(seen: dict, key, *, path, line: int, what: str, shown: str | None = None) -> None:
    """Record that ``key`` appears on ``line`` of a label file; a second appearance is a
    :class:`DataFormatError` naming both lines (``each <what> once``)."""
    if key in seen:
        raise DataFormatError(path, f"each {what} once", line=line,
                              found=f"{shown or key} again (first on line {seen[key]})")
    seen[key] = line
