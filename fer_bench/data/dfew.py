"""DFEW (Jiang et al., "DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions
in the Wild", ACM MM 2020, doi 10.1145/3394171.3413620): 16,372 movie clips, 11,697 of them
single-labelled, 7 classes, 5-fold cross-validation.

Two layouts are read exactly as distributed (``shared/datasets.md``):

``affine`` (the frames the DFEW baseline code reads)::

    data_affine/single_label/data/00001/00001_00001.jpg ...
    data_affine/single_label/label/single_trainset_{1..5}.csv, single_testset_{1..5}.csv

``release`` (the public download)::

    EmoLabel_DataSplit/train(single-labeled)/set_{1..5}.csv, test(single-labeled)/set_{1..5}.csv
    Clip/clip_224x224/00001/...          (source=frames, the default)
    Clip/original/00001.mp4              (source=mp4, decoded with decord)

Every label file has the header ``video_name,label``; ``video_name`` is an integer whose
5-digit zero-padded form names the clip folder (or video); ``label`` is 1 Happy, 2 Sad,
3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear, mapped here onto the canonical order.
``root`` is the DFEW folder holding ``data_affine/`` or ``EmoLabel_DataSplit/`` + ``Clip/``
(``.../data_affine/single_label`` itself is accepted too).  The layout is detected
(``layout=auto``) or forced (``layout=affine|release``).

Protocol: ``fold=1..5`` is required; the fold's training clips give a stratified, seeded
validation split (DFEW has none); 16 frames per clip, training random per segment, val/test
uniform ``linspace`` (:func:`fer_bench.data.video.sample_indices`); report the mean over the
5 folds of the per-fold UAR and WAR.  Class totals of the single-labelled set: happy 2,445,
sad 1,894, neutral 2,669, angry 2,173, surprise 1,469, disgust 145, fear 902.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.base import DatasetInfo
from fer_bench.data.io import check_unique
from fer_bench.data.video import ClipDataModule
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

__all__ = ["DFEW_CODES", "DFEW_TO_CANONICAL", "DFEW", "read_dfew_label_file", "detect_dfew_layout"]

#: DFEW's own label codes (DFEW README: "1:Happy 2:Sad 3:Neutral 4:Angry 5:Surprise 6:Disgust 7:Fear").
DFEW_CODES: dict[int, str] = {1: "happy", 2: "sad", 3: "neutral", 4: "angry", 5: "surprise", 6: "disgust", 7: "fear"}
#: DFEW code -> canonical class id.
DFEW_TO_CANONICAL: dict[int, int] = {code: CANONICAL_CLASSES.index(name) for code, name in DFEW_CODES.items()}
CANONICAL_TO_DFEW: dict[int, int] = {v: k for k, v in DFEW_TO_CANONICAL.items()}

FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)
LAYOUTS = ("auto", "affine", "release")
SOURCES = ("frames", "mp4")
AFFINE_DIR = Path("data_affine") / "single_label"
RELEASE_SPLITS = Path("EmoLabel_DataSplit")
RELEASE_FRAMES = Path("Clip") / "clip_224x224"
RELEASE_VIDEOS = Path("Clip") / "original"


def detect_dfew_layout(root: str | os.PathLike) -> tuple[str, Path]:
    """``("affine" | "release", base folder)`` of a DFEW root; raises when neither is there."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(root, "the DFEW folder (holding data_affine/ or EmoLabel_DataSplit/)",
                              found="no such folder")
    candidates = []
    if (root / AFFINE_DIR / "label").is_dir():
        candidates.append(("affine", root / AFFINE_DIR))
    elif (root / "label").is_dir() and (root / "data").is_dir() and root.name == "single_label":
        candidates.append(("affine", root))
    if (root / RELEASE_SPLITS).is_dir():
        candidates.append(("release", root))
    if len(candidates) > 1:
        raise UserError(f"{root} holds both DFEW layouts (data_affine/ and EmoLabel_DataSplit/); "
                        "choose one with -d layout=affine or -d layout=release")
    if not candidates:
        found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "an empty folder"
        raise DataFormatError(root, "data_affine/single_label/label/ (DFEW frames) or EmoLabel_DataSplit/ "
                              "(DFEW public release)", found=found)
    return candidates[0]


def read_dfew_label_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(video_name int64 [N], canonical label int64 [N])`` of one DFEW split file.

    Header ``video_name,label`` (a UTF-8 BOM and CRLF line ends are tolerated, as are extra
    columns); ``video_name`` a positive integer, each once; ``label`` in 1..7.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "a DFEW label file with header video_name,label", found="no such file")
    names: list[int] = []
    labels: list[int] = []
    first_line: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        cols = [c.strip() for c in header] if header is not None else []
        if "video_name" not in cols or "label" not in cols:
            raise DataFormatError(path, "header video_name,label", line=1, found=",".join(cols) or "an empty file")
        i_name, i_label = cols.index("video_name"), cols.index("label")
        for line, row in enumerate(rows, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(cols):
                raise DataFormatError(path, f"{len(cols)} comma-separated fields", line=line, found=",".join(row))
            raw_name, raw_label = row[i_name].strip(), row[i_label].strip()
            try:
                name = int(raw_name)
            except ValueError:
                raise DataFormatError(path, "an integer video_name", line=line, found=repr(raw_name)) from None
            if name < 1:
                raise DataFormatError(path, "a positive video_name", line=line, found=raw_name)
            try:
                code = int(raw_label)
            except ValueError:
                code = -1
            if code not in DFEW_CODES:
                raise DataFormatError(path, "a single label in 1..7 (1 Happy, 2 Sad, 3 Neutral, 4 Angry, "
                                      "5 Surprise, 6 Disgust, 7 Fear)", line=line, found=repr(raw_label))
            check_unique(first_line, name, path=path, line=line, what="video_name", shown=f"video_name {name}")
            names.append(name)
            labels.append(DFEW_TO_CANONICAL[code])
    if not names:
        raise DataFormatError(path, "at least one video_name,label row", found="only the header")
    return np.asarray(names, dtype=np.int64), np.asarray(labels, dtype=np.int64)


@DATASETS.register("dfew")
class DFEW(ClipDataModule):
    """DFEW single-labelled clips, 5-fold cross-validation (``fold=1..5``, required).

    Options: ``layout`` ``auto|affine|release``; ``source`` ``frames|mp4`` (mp4 only in the
    release layout: ``Clip/original/<00001>.mp4``); ``frames`` per clip (16).
    """

    info = DatasetInfo(
        "dynamic",
        "5-fold CV (--fold 1..5; report the mean of per-fold UAR/WAR); 16 frames/clip, train random per "
        "segment, val/test linspace; val carved 10% stratified from the fold's train",
        citation="X. Jiang et al., DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions in "
                 "the Wild, ACM MM 2020",
    )
    folds: ClassVar[tuple[int, ...]] = FOLDS

    def __init__(self, root: str | None = None, *, layout: str = "auto", source: str = "frames",
                 frames: int = 16, **kwargs: Any) -> None:
        super().__init__(root, frames=frames, **kwargs)  # --fold 1..5 (FERDataModule.check_fold)
        verify_choice(layout, "layout", LAYOUTS, where="dfew")
        verify_choice(source, "source", SOURCES, where="dfew")
        if layout == "affine" and source == "mp4":
            raise UserError("dfew source=mp4 reads Clip/original/ of the release layout; the affine layout "
                            "has frame folders only")
        self.layout = layout
        self.source = source

    # -- parsing ------------------------------------------------------------------------
    def _resolve(self) -> tuple[str, Path]:
        root = Path(self.root)
        if self.layout == "auto":
            return detect_dfew_layout(root)
        if self.layout == "affine":
            base = root if (root / "label").is_dir() and not (root / AFFINE_DIR).is_dir() else root / AFFINE_DIR
            return "affine", base
        return "release", root

    def label_files(self) -> tuple[Path, Path, str, Path]:
        """``(train csv, test csv, layout, clip folder)`` of this fold."""
        layout, base = self._resolve()
        k = self.fold
        if layout == "affine":
            return (base / "label" / f"single_trainset_{k}.csv", base / "label" / f"single_testset_{k}.csv",
                    layout, base / "data")
        clips = base / (RELEASE_VIDEOS if self.source == "mp4" else RELEASE_FRAMES)
        return (base / RELEASE_SPLITS / "train(single-labeled)" / f"set_{k}.csv",
                base / RELEASE_SPLITS / "test(single-labeled)" / f"set_{k}.csv", layout, clips)

    def build_splits(self) -> dict[str, Dataset | None]:
        train_csv, test_csv, layout, clip_dir = self.label_files()
        if layout == "affine" and self.source == "mp4":
            raise UserError("dfew source=mp4 needs the release layout (Clip/original/); this root is affine")
        self.resolved_layout = layout
        tr_names, tr_labels = read_dfew_label_file(train_csv)
        te_names, te_labels = read_dfew_label_file(test_csv)
        both = np.intersect1d(tr_names, te_names)
        if len(both):
            raise DataFormatError(test_csv, f"no clip of the fold-{self.fold} train file {train_csv}",
                                  found=f"{len(both)} shared video_name(s), e.g. {both[:5].tolist()}")
        if not clip_dir.is_dir():
            what = "videos <00001>.mp4" if self.source == "mp4" else "clip frame folders <00001>/"
            raise DataFormatError(clip_dir, f"a folder of DFEW {what}", found="no such folder")
        if self.source == "mp4":
            src = lambda n: str(clip_dir / f"{n:05d}.mp4")  # noqa: E731
        else:
            src = lambda n: str(clip_dir / f"{n:05d}")  # noqa: E731
        return self.clip_splits([src(n) for n in tr_names], tr_labels, [src(n) for n in te_names], te_labels)

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(layout=getattr(self, "resolved_layout", self.layout), source=self.source)
        return args
