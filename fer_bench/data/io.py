"""Lazy image reading shared by every image-file dataset.

Images are decoded on access (bounded memory however large the index); a missing, empty or
undecodable file raises :class:`~fer_bench.errors.UnreadableSample`, which the DataModule
turns into a skipped-and-counted sample instead of a crash.
"""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.errors import UnreadableSample


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
