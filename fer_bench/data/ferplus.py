"""FERPlus: the FER2013 images relabelled by 10 crowd votes each (8 classes; reference label processing).

Source: E. Barsoum, C. Zhang, C. Canton Ferrer, Z. Zhang, "Training Deep Networks for Facial
Expression Recognition with Crowd-Sourced Label Distribution", ICMI 2016 (arXiv:1608.01041);
labels and reference code https://github.com/microsoft/FERPlus (MIT).

``fer2013new.csv`` (header ``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,
fear,contempt,unknown,NF``) holds 10 crowd votes per FER2013 image and is aligned with
``fer2013.csv`` **by row position** (the ``ferNNNNNNN.png`` number drifts from the row index
from row 60 on; 4 names are duplicated): rows are never matched by name.  The Usage of every row
must agree between the two files (checked; a mismatch names the line).  The 173 rows with an
empty ``Image name`` (NF = 10) are not faces and are skipped.

Where the two files are looked for (``layout=csv``): each of ``fer2013new.csv`` and the pixel
file (``fer2013.csv``, else ``icml_face_data.csv``) is looked for in ``--root``, then
``--root/fer2013/``, then ``--root/FERPlus/``, so these all work: both files in one folder; a
FERPlus clone holding ``fer2013new.csv`` with the Kaggle ``fer2013/`` folder inside it; a parent
folder holding ``fer2013/`` and a ``FERPlus/`` clone.

Folder variant (``layout=folders``): ``data/FER2013{Train,Valid,Test}/label.csv`` (``--root`` may
be the repository or its ``data/``) next to the PNG files, no header, lines
``fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0``: image name, face box
``(left, top, right, bottom)`` (``rect_util.Rect`` of the reference), 10 votes in the csv order.
The box-less lines written by the reference's ``generate_training_data.py`` (name + 10 votes) are
read too.  ``auto`` prefers the csv pair (the current votes; the repository's old ``label.csv``
files hold older votes).

Label processing is the reference's ``FERPlusReader._process_data`` / ``load_folders``
(src/ferplus.py):

1. outlier removal: every vote count ``< 1 + eps`` (i.e. 0 or 1, all 10 columns) is set to 0;
2. ``majority``: keep the argmax if its count is ``> 0.5 *`` the remaining total, else the
   sample becomes *unknown*;
   ``probability`` (the reference's ``probability``/``crossentropy`` distribution): repeatedly
   take every column equal to the current maximum, until the taken votes reach 75 % of the total
   or 3 columns are taken; a tie reaching unknown/NF stops it (dropping that column if emotions
   were already taken); the sample becomes unknown when the taken votes are ``<= 50 %`` of the
   total or more than 3 columns were taken;
3. a sample whose argmax is unknown or NF is dropped; the target is the distribution over the 8
   emotions renormalised.

The reference trains ``crossentropy`` on this distribution and ``probability`` on one-hot labels
drawn from it each minibatch (same expected loss); here ``label_mode=probability`` (alias
``crossentropy``) returns the soft target as a float tensor in the canonical order (the default
loss, ``soft_cross_entropy``, accepts it) while ``labels`` keeps the hard argmax for
stratification and class limits.  Validation (PublicTest) and test (PrivateTest) are always
majority, as in the reference's ``train.py``.  With the real file majority mode keeps
25,060 / 3,199 / 3,153 images (Training / PublicTest / PrivateTest).

FERPlus order (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt) is mapped
onto :data:`~fer_bench.classes.CANONICAL_CLASSES_8` (angry, disgust, fear, happy, sad,
surprise, neutral, contempt).  The reference model's input is 64x64 (``models.py`` VGG13), hence
``default_input_size = 64``.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.fer2013_csv import USAGE_SPLIT, USAGES, read_fer2013_csv
from fer_bench.data.io import ArrayImageDataset, ImageListDataset, list_dirs, read_table
from fer_bench.errors import DataFormatError, verify_choice
from fer_bench.registry import DATASETS

FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                        "unknown", "NF")
FERPLUS_HEADER = ("Usage", "Image name") + FERPLUS_VOTE_COLUMNS
#: FERPlus emotion index (0 neutral .. 7 contempt) -> canonical class id (CANONICAL_CLASSES_8)
FERPLUS_TO_CANONICAL = np.array([6, 3, 5, 4, 0, 1, 2, 7], dtype=np.int64)
#: canonical class id -> FERPlus emotion index
CANONICAL_TO_FERPLUS = np.argsort(FERPLUS_TO_CANONICAL)
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_LAYOUTS = ("auto", "csv", "folders")
LABEL_MODES = ("majority", "probability")


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FERPlus emotion index (0..7) of each row of ``votes [N, 10]``, or -1 where the reference
    drops it (no > 50 % majority after outlier removal, or the majority is unknown / NF)."""
    v = np.asarray(votes, dtype=np.float64)
    v = np.where(v < 1.0 + sys.float_info.epsilon, 0.0, v)  # outlier removal: counts of 0 or 1
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    keep = (v.max(axis=1) > 0.5 * total) & (top < 8)
    return np.where(keep, top, -1).astype(np.int64)


def _probability_row(raw: list[float]) -> list[float] | None:
    """The reference's ``probability``/``crossentropy`` distribution over the 10 columns, or
    ``None`` where it falls back to unknown (src/ferplus.py ``_process_data``)."""
    raw = [0.0 if x < 1.0 + sys.float_info.epsilon else float(x) for x in raw]
    total = sum(raw)
    emo = [0.0] * len(raw)
    taken, count, valid = 0.0, 0, True
    while taken < 0.75 * total and count < 3 and valid:
        peak = max(raw)
        for i in range(len(raw)):
            if raw[i] == peak:
                emo[i] = peak
                raw[i] = 0.0
                taken += peak
                count += 1
                if i >= 8:  # unknown or NF reached at this vote count
                    valid = False
                    if sum(emo) > peak:  # emotions were taken before it: keep those only
                        emo[i] = 0.0
                        count -= 1
                    break
    if sum(emo) <= 0.5 * total or count > 3:
        return None
    return emo


def ferplus_probability(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(soft targets float32 ``[N, 8]`` in FERPlus order, keep mask) per the reference: rows whose
    distribution falls back to unknown, or whose argmax is unknown / NF, are dropped."""
    votes = np.asarray(votes, dtype=np.float64)
    targets = np.zeros((len(votes), 8), np.float32)
    keep = np.zeros(len(votes), bool)
    for r, row in enumerate(votes.tolist()):
        emo = _probability_row(row)
        if emo is None or int(np.argmax(emo)) >= 8:
            continue
        e8 = np.asarray(emo[:8], dtype=np.float64)
        targets[r] = e8 / e8.sum()
        keep[r] = True
    return targets, keep


def _parse_votes(frame, path: Path, first_line: int) -> np.ndarray:
    """Vote columns (strings) -> int64 ``[N, 10]``; a non-count names its line."""
    arr = frame.to_numpy(dtype=object)
    flat = arr.ravel()
    ok = np.fromiter((isinstance(s, str) and s.strip().isdigit() for s in flat), bool, len(flat)).reshape(arr.shape)
    if not ok.all():
        r, c = map(int, np.argwhere(~ok)[0])
        raise DataFormatError(path, f"10 vote counts (integers >= 0: {','.join(FERPLUS_VOTE_COLUMNS)})",
                              line=first_line + r, found=f"{arr[r, c]!r} in column {c + 1} of the votes")
    return arr.astype(np.int64)


def read_ferplus_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(usage [N], image names [N] ('' = not a face), votes int64 [N, 10]) of ``fer2013new.csv``."""
    df = read_table(path, expected="header " + ",".join(FERPLUS_HEADER))
    if tuple(c.strip() for c in df.columns) != FERPLUS_HEADER:
        raise DataFormatError(path, "header " + ",".join(FERPLUS_HEADER), line=1, found=repr(",".join(df.columns)))
    usage = df["Usage"].str.strip().to_numpy(dtype=object)
    ok = np.isin(usage, USAGES)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(path, f"Usage one of {', '.join(USAGES)}", line=i + 2, found=repr(usage[i]))
    names = df["Image name"].str.strip().to_numpy(dtype=object)
    votes = _parse_votes(df[list(FERPLUS_VOTE_COLUMNS)], path, first_line=2)
    return usage, names, votes


_BOX_RE = re.compile(r"^\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")


def read_ferplus_label_file(path: Path) -> tuple[list[str], np.ndarray | None, np.ndarray]:
    """(image names, boxes ``(x, y, w, h)`` or None, votes ``[N, 10]``) of a folder ``label.csv``."""
    expected = 'lines \'fer0000000.png,"(0, 0, 48, 48)",<10 votes>\' (image name, face box, 10 votes)'
    df = read_table(path, expected=expected, header=None)
    if df.shape[1] not in (11, 12):
        raise DataFormatError(path, expected, line=1, found=f"{df.shape[1]} fields")
    names = df[0].str.strip().tolist()
    for i, n in enumerate(names):
        if not n:
            raise DataFormatError(path, expected, line=i + 1, found="an empty image name")
    boxes = None
    if df.shape[1] == 12:
        boxes = np.empty((len(df), 4), np.int64)
        for i, s in enumerate(df[1]):
            m = _BOX_RE.match(s.strip())
            if m is None:
                raise DataFormatError(path, "a face box '(left, top, right, bottom)'", line=i + 1, found=repr(s))
            left, top, right, bottom = map(int, m.groups())
            boxes[i] = (left, top, right - left, bottom - top)
    votes = _parse_votes(df[list(range(df.shape[1] - 10, df.shape[1]))], path, first_line=1)
    return names, boxes, votes


def _ferplus_find(root: Path, names: tuple[str, ...]) -> Path | None:
    for base in (root, root / "fer2013", root / "FERPlus"):
        for n in names:
            if (base / n).is_file():
                return base / n
    return None


def locate_ferplus(root: str | os.PathLike, layout: str = "auto") -> tuple[str, Any]:
    """``("csv", (fer2013 csv, fer2013new.csv))`` or ``("folders", {split: folder})``."""
    root = Path(root)
    if layout in ("auto", "csv"):
        new = _ferplus_find(root, ("fer2013new.csv",))
        old = _ferplus_find(root, ("fer2013.csv", "icml_face_data.csv"))
        if new and old:
            return "csv", (old, new)
        if layout == "csv":
            missing = " and ".join(n for n, p in (("fer2013new.csv", new), ("fer2013.csv", old)) if p is None)
            raise DataFormatError(root, "fer2013new.csv and fer2013.csv (in the folder, its fer2013/ or its "
                                  "FERPlus/ sub-folder)", found=f"no {missing}")
    for base in (root / "data", root):
        dirs = {s: base / f for s, f in FERPLUS_FOLDERS.items()}
        if all((d / "label.csv").is_file() for d in dirs.values()):
            return "folders", dirs
    raise DataFormatError(root, "FERPlus as distributed: fer2013new.csv + fer2013.csv, or "
                          "data/FER2013{Train,Valid,Test}/label.csv with the PNG files",
                          found=f"{list_dirs(root)[:12] if root.is_dir() else 'no such folder'}")


def _ferplus_labels(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(kept row indices, canonical labels, canonical soft targets or None) of vote rows."""
    if mode == "majority":
        idx = ferplus_majority(votes)
        keep = np.flatnonzero(idx >= 0)
        return keep, FERPLUS_TO_CANONICAL[idx[keep]], None
    targets, mask = ferplus_probability(votes)
    keep = np.flatnonzero(mask)
    t = targets[keep]
    return keep, FERPLUS_TO_CANONICAL[t.argmax(axis=1)], np.ascontiguousarray(t[:, CANONICAL_TO_FERPLUS])


@DATASETS.register("ferplus")
class FERPlus(FERDataModule):
    """FERPlus, 8 classes: FER2013 images relabelled by 10 crowd votes (see the module docstring).

    Options (``-d key=value``): ``label_mode`` (``majority`` default, or ``probability``;
    ``crossentropy`` is accepted as a synonym of ``probability``; training split only,
    validation and test are always majority), ``layout`` (``auto``/``csv``/``folders``).
    """

    info = DatasetInfo("static", "FERPlus (FER2013 images, 10 crowd votes; reference label processing): train "
                       "Training, select on PublicTest, report on PrivateTest; val/test majority; 8 classes",
                       citation="E. Barsoum et al., ICMI 2016")
    classes = CANONICAL_CLASSES_8
    default_input_size: ClassVar[int] = 64
    default_in_chans: ClassVar[int] = 1

    def __init__(self, root: str | None = None, *, label_mode: str = "majority", layout: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if label_mode == "crossentropy":
            label_mode = "probability"
        verify_choice(label_mode, "label_mode", LABEL_MODES + ("crossentropy",), where="ferplus")
        verify_choice(layout, "layout", FERPLUS_LAYOUTS, where="ferplus")
        self.label_mode = label_mode
        self.layout = layout
        self.resolved_layout: str | None = None

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(label_mode=self.label_mode, eval_label_mode="majority", layout=self.resolved_layout or self.layout,
                    val="PublicTest", test="PrivateTest")
        return args

    def build_splits(self) -> dict[str, Dataset | None]:
        layout, where = locate_ferplus(self.root, self.layout)
        self.resolved_layout = layout
        out: dict[str, Dataset | None] = {}
        if layout == "folders":
            for split, folder in where.items():
                label_file = folder / "label.csv"
                names, boxes, votes = read_ferplus_label_file(label_file)
                mode = self.label_mode if split == "train" else "majority"
                keep, labels, targets = _ferplus_labels(votes, mode)
                if len(keep) == 0:
                    raise DataFormatError(label_file, "at least one image with a valid label", found="none")
                out[split] = ImageListDataset([str(folder / names[i]) for i in keep], labels, grey=True,
                                              boxes=None if boxes is None else boxes[keep], targets=targets)
            return out
        old_path, new_path = where
        usage, names, votes = read_ferplus_csv(new_path)
        table = read_fer2013_csv(old_path)
        if len(table) != len(usage):
            raise DataFormatError(new_path, f"{len(table)} data rows, one per row of {old_path} (aligned by position)",
                                  found=f"{len(usage)} rows")
        diff = np.flatnonzero(usage != table.usage)
        if len(diff):
            i = int(diff[0])
            raise DataFormatError(new_path, f"the Usage of the same row of {old_path} (rows are aligned by position)",
                                  line=i + 2, found=f"{usage[i]!r} where {old_path.name} line {i + 2} says "
                                  f"{table.usage[i]!r}")
        for u in USAGES:
            rows = np.flatnonzero((usage == u) & (names != ""))
            mode = self.label_mode if u == "Training" else "majority"
            keep, labels, targets = _ferplus_labels(votes[rows], mode)
            if len(keep) == 0:
                raise DataFormatError(new_path, f"at least one {u} image with a valid label", found="none")
            out[USAGE_SPLIT[u]] = ArrayImageDataset(table.images, rows[keep], labels, targets)
        return out
