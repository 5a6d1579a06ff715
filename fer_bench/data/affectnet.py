"""AffectNet (manually annotated part), read as distributed: the original CSV release and the
newer ``.npy`` annotation repackage.

Source: A. Mollahosseini, B. Hasani, M. H. Mahoor, "AffectNet: A Database for Facial
Expression, Valence, and Arousal Computing in the Wild", IEEE Transactions on Affective
Computing 10(1), 2019.

Original release (``layout=csv``; ``--root`` holds both folders)::

    Manually_Annotated_file_lists/training.csv      414,799 rows
    Manually_Annotated_file_lists/validation.csv      5,500 rows (500 per expression code)
    Manually_Annotated_Images/<subDirectory_filePath>   (also accepted one level down, as the
                                                         archive unpacks: Manually_Annotated/Manually_Annotated_Images/)

CSV header ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
expression,valence,arousal``; the sample is the face box ``img[y:y+h, x:x+w]`` of the image.
Expression codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
7 Contempt, 8 None, 9 Uncertain, 10 Non-Face, mapped here onto the canonical order
(angry, disgust, fear, happy, sad, surprise, neutral, + contempt).  ``classes=7`` keeps codes
0-6 (283,901 training images in the release), ``classes=8`` keeps 0-7 (287,651); rows with
codes 8-10 (and 7 in the 7-class protocol) are dropped and counted in ``dropped``.  A code
outside 0-10, a non-numeric box or a missing column is a :class:`DataFormatError` naming
file and line.

Face crop (``crop=``, csv layout): ``box`` (the default) is the face box above; ``landmarks``
aligns the image by the row's ``facial_landmarks`` instead: 68 points ``x1;y1;x2;y2;...`` (image
pixels) in the iBUG 300-W mark-up, reduced to 5 (eye centres = means of points 37-42 and 43-48,
nose tip 31, mouth corners 49 and 55: :func:`fer_bench.data.faces.five_from_68`) and warped onto
the ``arcface-loose`` template (:data:`fer_bench.data.faces.ALIGN_TEMPLATE`) at the side the
transforms resize to (``resize``, else the input size).  Kept rows whose landmarks are not 136
finite numbers, or whose eye centres coincide, are a :class:`DataFormatError` naming file and
line.  ``protocol_args`` records ``crop`` and the rule (``align``, e.g. ``arcface-loose+0``); the
repackage's images are crops already (recorded ``crop=none``; ``landmarks`` is refused).

Newer repackage (``layout=npy``; ``--root`` holds ``train_set/`` and ``val_set/``)::

    train_set/images/<id>.jpg     already-cropped faces (no box)
    train_set/annotations/<id>_exp.npy, <id>_val.npy, <id>_aro.npy, <id>_lnd.npy
    val_set/...                   same

``<id>_exp.npy`` holds one expression code (a 0-d array; the repackage stores it as a string
such as ``'3'``, a numeric array is accepted too).

Protocol: the official validation set is the **test** set (there is no public test set);
validation for checkpoint selection is carved from training (stratified, seeded: the base
class).  The training set is very imbalanced (happy ~134k vs contempt ~3.8k), so
class-balanced sampling is part of most published AffectNet protocols: ``sampler=balanced``
draws training samples with :class:`torch.utils.data.WeightedRandomSampler`, weight
``1 / count(class)`` per sample, ``len(train)`` draws per epoch with replacement, from a
generator seeded with the run's seed.  Lightning wraps a custom sampler in a
``DistributedSamplerWrapper`` under DDP, so each rank draws its share.  The sampler is
recorded in ``protocol_args`` (``sampler=uniform``, shuffled batches, is the default; ``none`` is
accepted as its former name).

Scale: ~290k rows are indexed without touching an image.  The CSV is read in chunks of
100,000 rows with only the six needed columns (``usecols``: the landmark column, most of the
file's bytes, is read only with ``crop=landmarks``, and then only its 5 reduced points are kept,
``float32 [N, 5, 2]``), paths are kept as one numpy ``bytes`` array plus the image
folder (:class:`PathTable`; no Python object per row, so DataLoader workers do not copy
them page by page), boxes as ``int32 [N, 4]``.  Images are decoded lazily at access.  Some
files of the real release are zero-byte or corrupt: they raise
:class:`~fer_bench.errors.UnreadableSample` and are skipped and counted by the run (and
listed by ``fer-bench data check``).

Synthetic trees in both layouts: :mod:`fer_bench.synth.affectnet`.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8
from fer_bench.data.align import crop_rule
from fer_bench.data.base import DatasetInfo, FERDataModule, collate_skipping
from fer_bench.data.faces import ALIGN_TEMPLATE, AlignedFaces, five_from_68, parse_point_strings
from fer_bench.data.io import ImageListDataset
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

#: AffectNet expression code (0..7) -> canonical class name
AFFECTNET_NAMES: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
CODE_NAMES = ("0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None, "
              "9 Uncertain, 10 Non-Face")
N_CODES = 11
CSV_COLUMNS: tuple[str, ...] = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                                "facial_landmarks", "expression", "valence", "arousal")
PATH_COL = "subDirectory_filePath"
BOX_COLS: tuple[str, ...] = ("face_x", "face_y", "face_width", "face_height")
NEEDED: tuple[str, ...] = (PATH_COL, *BOX_COLS, "expression")
LANDMARK_COL = "facial_landmarks"
LANDMARKS_EXPECTED = "facial_landmarks: 68 points 'x1;y1;x2;y2;...' (136 finite numbers, distinct eye centres)"
LISTS_DIR = "Manually_Annotated_file_lists"
TRAIN_CSV, TEST_CSV = "training.csv", "validation.csv"
IMAGE_DIRS: tuple[str, ...] = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
NPY_SETS: dict[str, str] = {"train": "train_set", "test": "val_set"}
LAYOUTS = ("auto", "csv", "npy")
SAMPLERS = ("uniform", "balanced")
CROPS = ("box", "landmarks")
CHUNK_ROWS = 100_000


def code_table(n_classes: int) -> np.ndarray:
    """Label (index into the protocol's classes) of every expression code 0..10; -1 = dropped."""
    verify_choice(n_classes, "classes", (7, 8), where="affectnet")
    classes = CANONICAL_CLASSES if n_classes == 7 else CANONICAL_CLASSES_8
    table = np.full(N_CODES, -1, np.int64)
    for code, name in enumerate(AFFECTNET_NAMES[:n_classes]):
        table[code] = classes.index(name)
    return table


class PathTable:
    """Read-only sequence of paths ``folder/<rel><suffix>`` stored as one numpy bytes array."""

    def __init__(self, folder: str, rel: np.ndarray, suffix: str = "") -> None:
        self.folder = str(folder)
        self.rel = np.asarray(rel, dtype=np.bytes_)
        self.suffix = suffix

    def __len__(self) -> int:
        return len(self.rel)

    def __getitem__(self, i):
        if isinstance(i, (slice, np.ndarray, list)):
            return PathTable(self.folder, self.rel[i], self.suffix)
        return os.path.join(self.folder, self.rel[int(i)].decode("utf-8") + self.suffix)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class AffectNetImages(ImageListDataset):
    """Lazily decoded RGB images (cropped to their face box when boxes are given), indexed by a
    :class:`PathTable`.  ``ImageListDataset.__init__`` is deliberately not called: it copies the
    paths into a list of Python strings, which this class exists to avoid; reading is the base
    class's ``__getitem__``."""

    def __init__(self, paths: PathTable, labels: np.ndarray, boxes: np.ndarray | None = None) -> None:
        if len(paths) != len(labels) or (boxes is not None and len(boxes) != len(labels)):
            raise ValueError("paths, labels and boxes differ in length")
        self.paths = paths
        self.labels = np.asarray(labels, dtype=np.int64)
        self.grey = False
        self.boxes = boxes
        self.targets = None


# --------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------
def _bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numeric(col: pd.Series) -> np.ndarray:
    """float64 values of a column, NaN where a value is not a number."""
    if col.dtype.kind in "iuf":
        return col.to_numpy(np.float64)
    return pd.to_numeric(col, errors="coerce").to_numpy(np.float64)


def five_landmarks(values: np.ndarray, lines: np.ndarray, path: Path) -> np.ndarray:
    """The 5 points ``float32 [n, 5, 2]`` of ``facial_landmarks`` strings (68 points each); ``lines``
    are their line numbers, for the error."""
    pts = parse_point_strings(values, 68, ";")
    five = five_from_68(pts)
    bad = ~np.isfinite(pts).all(axis=(1, 2)) | (np.abs(five[:, 1] - five[:, 0]).max(axis=1) == 0)
    if bad.any():
        i = _bad_row(bad)
        raise DataFormatError(path, LANDMARKS_EXPECTED, line=int(lines[i]), found=repr(str(values[i])[:80]))
    return five.astype(np.float32)


def read_csv_index(path: str | os.PathLike, n_classes: int = 7, *, landmarks: bool = False) -> tuple[np.ndarray, ...]:
    """Index an AffectNet file list without touching an image.

    Returns ``(rel_paths bytes [N], boxes int32 [N, 4] as x, y, w, h, labels int64 [N],
    dropped int64 [11])``: the kept rows, and how many rows of each code were dropped; with
    ``landmarks=True`` also the kept rows' 5 points ``float32 [N, 5, 2]`` (:func:`five_landmarks`).
    """
    path = Path(path)
    expected_header = "a header line " + ",".join(CSV_COLUMNS)
    if not path.is_file():
        raise DataFormatError(path, f"the AffectNet file list ({expected_header})", found="no such file")
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        first = f.readline()
    header = [h.strip() for h in next(csv.reader([first]), [])] if first.strip() else []
    needed = NEEDED + ((LANDMARK_COL,) if landmarks else ())
    if any(c not in header for c in needed):
        raise DataFormatError(path, expected_header, line=1, found=repr(first.strip()[:200]) if first.strip()
                              else "an empty file")
    table = code_table(n_classes)
    rels, boxes, labels, points = [], [], [], []
    dropped = np.zeros(N_CODES, np.int64)
    line0 = 2
    try:
        # numbers parsed by the C parser (fast); a column with a bad value comes back as text
        # and goes through pd.to_numeric, which finds the line
        reader = pd.read_csv(path, usecols=list(needed), dtype={PATH_COL: str, LANDMARK_COL: str}, keep_default_na=False,
                             chunksize=CHUNK_ROWS // 4 if landmarks else CHUNK_ROWS, encoding="utf-8", encoding_errors="replace")
        for chunk in reader:
            n = len(chunk)
            raw = chunk["expression"]
            expr = _numeric(raw)
            bad = ~np.isfinite(expr) | (expr % 1 != 0) | (expr < 0) | (expr >= N_CODES)
            if bad.any():
                i = _bad_row(bad)
                raise DataFormatError(path, f"an expression code 0-10 ({CODE_NAMES})", line=line0 + i,
                                      found=repr(raw.iloc[i]))
            codes = expr.astype(np.int64)
            lab = table[codes]
            keep = lab >= 0
            dropped += np.bincount(codes[~keep], minlength=N_CODES)
            box = np.empty((n, 4), np.float64)
            for k, col in enumerate(BOX_COLS):
                box[:, k] = _numeric(chunk[col])
            bad = keep & ~np.isfinite(box).all(axis=1)
            if bad.any():
                i = _bad_row(bad)
                raise DataFormatError(path, "integer face_x, face_y, face_width, face_height", line=line0 + i,
                                      found=repr(",".join(str(chunk[c].iloc[i]) for c in BOX_COLS)))
            rel = chunk[PATH_COL].to_numpy()[keep]
            empty = np.array([not s for s in rel], dtype=bool)
            if empty.any():
                i = int(np.flatnonzero(keep)[_bad_row(empty)])
                raise DataFormatError(path, "an image path in subDirectory_filePath", line=line0 + i, found="''")
            rels.append(np.array([s.encode("utf-8") for s in rel], dtype=np.bytes_))
            boxes.append(np.round(box[keep]).astype(np.int32))
            labels.append(lab[keep])
            if landmarks:
                points.append(five_landmarks(chunk[LANDMARK_COL].to_numpy()[keep], line0 + np.flatnonzero(keep), path))
            line0 += n
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        raise DataFormatError(path, "comma-separated rows of " + ",".join(CSV_COLUMNS),
                              line=int(m.group(1)) if m else None,
                              found=str(e).split("C error: ")[-1].strip()) from None
    extra = (np.concatenate(points) if points else np.zeros((0, 5, 2), np.float32),) if landmarks else ()
    if not rels:
        return np.array([], np.bytes_), np.zeros((0, 4), np.int32), np.zeros(0, np.int64), dropped, *extra
    return np.concatenate(rels), np.concatenate(boxes), np.concatenate(labels), dropped, *extra


def read_exp_npy(path: str | os.PathLike) -> int:
    """The expression code (0..10) of an ``<id>_exp.npy`` (a 0-d array, string or number)."""
    expected = f"a .npy array holding one expression code 0-10 ({CODE_NAMES})"
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(path, expected, found=f"an unreadable file ({str(e)[:80]})") from None
    if arr.size != 1:
        raise DataFormatError(path, expected, found=f"an array of shape {arr.shape}")
    v = arr.reshape(-1)[0]
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DataFormatError(path, expected, found=repr(v)) from None
    if not (np.isfinite(f) and f.is_integer() and 0 <= f < N_CODES):
        raise DataFormatError(path, expected, found=repr(v))
    return int(f)


def _id_key(s: str):
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


def read_npy_index(set_dir: str | os.PathLike, n_classes: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index a repackaged ``train_set/`` or ``val_set/``: ``(ids bytes [N], labels [N], dropped [11])``."""
    set_dir = Path(set_dir)
    ann, img = set_dir / "annotations", set_dir / "images"
    for d, what in ((img, "images/<id>.jpg"), (ann, "annotations/<id>_exp.npy")):
        if not d.is_dir():
            raise DataFormatError(d, f"the folder {what} of the AffectNet repackage", found="no such folder")
    ids = []
    with os.scandir(ann) as it:
        for e in it:
            if e.name.endswith("_exp.npy") and not e.name.startswith("."):
                ids.append(e.name[: -len("_exp.npy")])
    if not ids:
        raise DataFormatError(ann, "one <id>_exp.npy per image", found="none")
    ids.sort(key=_id_key)
    table = code_table(n_classes)
    codes = np.array([read_exp_npy(ann / f"{i}_exp.npy") for i in ids], dtype=np.int64)
    lab = table[codes]
    keep = lab >= 0
    dropped = np.bincount(codes[~keep], minlength=N_CODES)
    rel = np.array([i.encode("utf-8") for i, k in zip(ids, keep) if k], dtype=np.bytes_)
    return rel, lab[keep], dropped


# --------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------
@DATASETS.register("affectnet")
class AffectNet(FERDataModule):
    """AffectNet: train on training.csv (or train_set/), test on the official validation set."""

    classes: ClassVar[tuple[str, ...]] = CANONICAL_CLASSES  # the default protocol; instances set their own
    info = DatasetInfo(
        "static",
        "manually annotated images; classes=7 (codes 0-6) or 8 (0-7), codes 8-10 dropped; face box crop "
        "(crop=landmarks: aligned by the 68 landmarks); test = the official validation set (500 per class); "
        "validation carved from training; sampler=balanced|uniform (recorded)",
        citation="A. Mollahosseini, B. Hasani, M. H. Mahoor, \"AffectNet\", IEEE Trans. Affective Computing 2019",
    )
    default_input_size = 224
    default_in_chans = 3

    def __init__(self, root: str | None = None, *, classes: int = 7, sampler: str = "uniform", layout: str = "auto",
                 crop: str = "box", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if isinstance(classes, bool):
            raise UserError(f"affectnet: classes: expected one of 7, 8, got {classes!r}")
        verify_choice(classes, "classes", (7, 8), where="affectnet")
        sampler = "uniform" if sampler == "none" else sampler  # the former name of shuffled batches
        verify_choice(sampler, "sampler", SAMPLERS, where="affectnet")
        verify_choice(layout, "layout", LAYOUTS, where="affectnet")
        self.crop = verify_choice(crop, "crop", CROPS, where="affectnet")
        self.classes = CANONICAL_CLASSES if int(classes) == 7 else CANONICAL_CLASSES_8
        self.sampler = sampler
        self.layout = layout
        self.layout_used: str | None = None
        self.dropped: dict[str, dict[int, int]] = {}

    def _resolve_layout(self, root: Path) -> str:
        if not root.is_dir():
            raise DataFormatError(root, "an AffectNet folder (Manually_Annotated_file_lists/ + "
                                  "Manually_Annotated_Images/, or train_set/ + val_set/)", found="no such folder")
        has_csv, has_npy = (root / LISTS_DIR).is_dir(), (root / NPY_SETS["train"]).is_dir()
        if self.layout != "auto":
            return self.layout
        if has_csv:
            return "csv"
        if has_npy:
            return "npy"
        listing = ", ".join(sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:8]) or "nothing"
        raise DataFormatError(root, "Manually_Annotated_file_lists/ + Manually_Annotated_Images/ (original release) "
                              "or train_set/ + val_set/ (repackage)", found=listing)

    def build_splits(self) -> dict[str, Dataset | None]:
        root = Path(self.root)
        layout = self._resolve_layout(root)
        self.layout_used = layout
        if self.crop == "landmarks" and layout == "npy":
            raise UserError("affectnet: crop=landmarks aligns by the facial_landmarks of the original release's csv "
                            "files (layout=csv); the repackage's images (layout=npy) are face crops already")
        n = len(self.classes)
        out: dict[str, Dataset] = {}
        if layout == "csv":
            img_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
            if img_dir is None:
                raise DataFormatError(root / IMAGE_DIRS[0], "the image folder of the release "
                                      "(Manually_Annotated_Images/<subDirectory_filePath>)", found="no such folder")
            for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
                rel, boxes, labels, dropped, *pts = read_csv_index(root / LISTS_DIR / name, n,
                                                                   landmarks=self.crop == "landmarks")
                paths = PathTable(str(img_dir), rel)
                out[split] = AlignedFaces(paths, labels, pts[0], self.resize or self.input_size) if pts \
                    else AffectNetImages(paths, labels, boxes)
                self.dropped[split] = {c: int(k) for c, k in enumerate(dropped) if k}
        else:
            for split, folder in NPY_SETS.items():
                rel, labels, dropped = read_npy_index(root / folder, n)
                out[split] = AffectNetImages(PathTable(str(root / folder / "images"), rel, ".jpg"), labels)
                self.dropped[split] = {c: int(k) for c, k in enumerate(dropped) if k}
        return {"train": out["train"], "val": None, "test": out["test"]}

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(sampler=self.sampler, layout=self.layout_used or self.layout,
                    crop="none" if self.layout_used == "npy" else self.crop, test_split="official validation set")
        if self.crop == "landmarks":
            args["align"] = crop_rule(ALIGN_TEMPLATE)
        return args

    def balanced_sampler(self) -> WeightedRandomSampler:
        """Class-balanced sampling of the training split: weight 1/count(class), len(train) draws."""
        labels = self.splits["train"].labels
        counts = np.bincount(labels, minlength=self.num_classes).astype(np.float64)
        weights = 1.0 / counts[labels]
        return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(labels),
                                     replacement=True, generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        if self.sampler != "balanced":
            return super().train_dataloader()
        return DataLoader(
            self.splits["train"], batch_size=self.batch_size, sampler=self.balanced_sampler(), drop_last=False,
            collate_fn=collate_skipping, **self.loader_kwargs(),
        )
