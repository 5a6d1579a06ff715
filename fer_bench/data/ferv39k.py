"""FERV39K (Wang et al., "FERV39k: A Large-Scale Multi-Scene Dataset for Facial Expression
Recognition in Videos", CVPR 2022, doi 10.1109/CVPR52688.2022.02025): 38,935 clips from 22
scenes, 7 classes, one fixed split (31,088 train / 7,847 test).

Layout read exactly as distributed (``shared/datasets.md``)::

    2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/*.jpg         face-crop frame folders
    4_setups/All_scenes/train_All.csv, test_All.csv            split lists

The split lists have no header; each line is ``<clip path relative to 2_ClipsforFaceCrop>
<EmotionName>`` separated by a space (e.g. ``Action/Sad/0010 Sad``); emotion names Happy,
Sad, Neutral, Angry, Surprise, Disgust, Fear, mapped here onto the canonical order.  The
label is the list's second field (the ``<Emotion>`` folder in the path is not trusted).

Protocol: the single split; a stratified, seeded validation split is carved from train
(FERV39K ships none); 16 frames per clip, training random per segment, val/test uniform
``linspace`` (:func:`fer_bench.data.video.sample_indices`, the same as DFEW); report UAR and WAR.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.base import DatasetInfo
from fer_bench.data.io import check_unique
from fer_bench.data.video import ClipDataModule
from fer_bench.errors import DataFormatError
from fer_bench.registry import DATASETS

__all__ = ["FERV39K_CLASSES", "FERV39K_TO_CANONICAL", "FERV39K", "read_ferv39k_list"]

#: FERV39K's emotion names, in the order of its label index (Happy 0 ... Fear 6).
FERV39K_CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
#: emotion name -> canonical class id.
FERV39K_TO_CANONICAL: dict[str, int] = {name: CANONICAL_CLASSES.index(name.lower()) for name in FERV39K_CLASSES}

FRAMES_DIR = Path("2_ClipsforFaceCrop")
SETUPS_DIR = Path("4_setups") / "All_scenes"


def read_ferv39k_list(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``(clip paths relative to 2_ClipsforFaceCrop, canonical labels int64)`` of a split list.

    Lines ``<relative path> <EmotionName>``, no header; the name is matched exactly
    (FERV39K capitalisation) and blank lines are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "a FERV39K split list (lines '<Scene>/<Emotion>/<NNNN> <Emotion>')",
                              found="no such file")
    rel: list[str] = []
    labels: list[int] = []
    first_line: dict[str, int] = {}
    expected = ", ".join(FERV39K_CLASSES)
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.rsplit(None, 1)
            if len(parts) != 2:
                raise DataFormatError(path, "'<clip path> <EmotionName>' separated by a space", line=line_no,
                                      found=repr(text[:80]))
            clip, name = parts[0].strip().replace("\\", "/").strip("/"), parts[1]
            if name not in FERV39K_TO_CANONICAL:
                raise DataFormatError(path, f"an emotion name in {expected}", line=line_no, found=repr(name))
            if not clip or clip.startswith("..") or os.path.isabs(parts[0].strip()):
                raise DataFormatError(path, "a clip path relative to 2_ClipsforFaceCrop", line=line_no,
                                      found=repr(parts[0]))
            check_unique(first_line, clip, path=path, line=line_no, what="clip")
            rel.append(clip)
            labels.append(FERV39K_TO_CANONICAL[name])
    if not rel:
        raise DataFormatError(path, "at least one '<clip path> <EmotionName>' line", found="an empty file")
    return rel, np.asarray(labels, dtype=np.int64)


@DATASETS.register("ferv39k")
class FERV39K(ClipDataModule):
    """FERV39K, all scenes, the official single split; ``frames`` per clip (16)."""

    info = DatasetInfo(
        "dynamic",
        "official single split (train_All / test_All); 16 frames/clip, train random per segment, val/test "
        "linspace; val carved 10% stratified from train",
        citation="Y. Wang et al., FERV39k: A Large-Scale Multi-Scene Dataset for Facial Expression Recognition "
                 "in Videos, CVPR 2022",
    )
    folds: ClassVar[tuple[int, ...]] = ()

    def __init__(self, root: str | None = None, *, frames: int = 16, **kwargs: Any) -> None:
        super().__init__(root, frames=frames, **kwargs)  # one official split: no --fold (check_fold)

    def build_splits(self) -> dict[str, Dataset | None]:
        root = Path(self.root)
        if not root.is_dir():
            raise DataFormatError(root, "the FERV39K folder (holding 2_ClipsforFaceCrop/ and 4_setups/)",
                                  found="no such folder")
        tr_rel, tr_labels = read_ferv39k_list(root / SETUPS_DIR / "train_All.csv")
        te_rel, te_labels = read_ferv39k_list(root / SETUPS_DIR / "test_All.csv")
        both = sorted(set(tr_rel) & set(te_rel))
        if both:
            raise DataFormatError(root / SETUPS_DIR / "test_All.csv", "no clip of train_All.csv",
                                  found=f"{len(both)} shared clip(s), e.g. {both[:3]}")
        frames = root / FRAMES_DIR
        if not frames.is_dir():
            raise DataFormatError(frames, "the folder of face-crop clips <Scene>/<Emotion>/<NNNN>/*.jpg",
                                  found="no such folder")
        src = lambda r: str(frames / r)  # noqa: E731
        return self.clip_splits([src(r) for r in tr_rel], tr_labels, [src(r) for r in te_rel], te_labels)
