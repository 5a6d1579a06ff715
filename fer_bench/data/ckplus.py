"""CK+ (the Extended Cohn-Kanade database), read as distributed: the official sequence tree
and the ``CK+48`` class-folder repackage.

Source: P. Lucey, J. F. Cohn, T. Kanade, J. Saragih, Z. Ambadar, I. Matthews, "The Extended
Cohn-Kanade Dataset (CK+): A complete dataset for action unit and emotion-specified
expression", CVPR Workshops 2010, and the README of the distribution (quoted below).

Official tree (``layout=official``; ``--root`` holds the unzipped archives)::

    cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt        one float, e.g. "   3.0000000e+00"
    Landmarks/S005/001/S005_001_00000011_landmarks.txt    optional: 68 AAM points, "x y" per line

593 sequences of 123 subjects, "all sequences are from the neutral face to the peak
expression"; frames are 640x490 (a few 640x480 / 720x480), mostly grey, some colour (read
grey here: the transform's MatchChannels feeds RGB models).  "ONLY 327 of the 593 sequences
have emotion [labels] ... there is only 1 Emotion file for each sequence which is the last
frame (the peak frame) ... 0=neutral, 1=anger, 2=contempt, 3=disgust, 4=fear, 5=happy,
6=sadness, 7=surprise ... IF THERE IS NO FILE IT MEANS THAT THERE IS NO EMOTION LABEL".  A
sequence folder without an emotion file is unlabelled and ignored (counted in
``n_unlabelled``), never an error.  **Decision:** a code 0 in an emotion file is a
:class:`DataFormatError`: the release labels no sequence neutral, so a 0 means an edited or
foreign tree, and silently dropping or adding it would change the protocol's counts.
Hidden files (``.DS_Store``, which the release carries) are ignored.

Protocol (the standard CK+ FER protocol; Lucey et al. 2010 and the FER literature since):

* the **last 3 frames** of each labelled sequence (up to and including the labelled peak
  frame): 327 x 3 = 981 images, 7 classes **anger, contempt, disgust, fear, happy, sadness,
  surprise**; ``with_neutral=True`` adds the **first frame** of every labelled sequence as
  *neutral* (327 more images, 8 classes; a sequence of 3 frames or fewer gives no neutral
  frame, since its first frame is one of the last three).
* ``classes`` is the protocol's own list in canonical order: ``angry, disgust, fear, happy,
  sad, surprise, contempt`` (7) or :data:`CANONICAL_CLASSES_8` (8, with neutral).  A label is
  an index into that list (so in the 7-class protocol contempt is label 6).
* face crop (``crop=``, resolved once at setup and recorded in the protocol):
  ``landmarks`` — the square around the bounding box of the frame's 68 AAM landmarks of the
  release's ``Landmarks/`` folder, side ``max(w, h) * 1.1`` (**decision**: the 68 points run
  from the brows to the chin; 10 % margin); ``haar`` — OpenCV's frontal-face Haar cascade,
  largest face, detected once per frame at setup on a copy at most 320 px wide and cached
  for the process (the pinned opencv-python-headless 4.x ships ``cv2.CascadeClassifier``
  and ``haarcascade_frontalface_default.xml``; OpenCV 5 wheels ship neither,
  opencv/opencv-python#1244 and #1259 — another cascade: ``-d cascade=PATH``); ``center`` —
  a centred square of side ``0.75 * min(H, W)``; ``none``; ``auto`` (default) — ``haar``
  (the protocol's Haar face crop) when OpenCV offers it, else ``landmarks`` when
  ``Landmarks/`` exists, else ``center`` with a warning.  A frame without a landmark file
  or without a detected face falls back to the centre crop; these are counted
  (``crop_fallbacks`` in the protocol) and warned about.  Crop boxes are shifted inside
  the frame rather than truncated, so crops stay square.
* **10-fold cross-validation, folds disjoint by subject** (``fold=0..9`` is required).
  **Decision:** fold assignment is deterministic and independent of every seed: the
  subjects that have at least one labelled sequence are sorted by their number (``S005`` <
  ``S010`` < ...) and dealt round-robin, subject ``i`` of the sorted list going to fold
  ``i mod 10``.  The same subjects give the same folds in the official tree and in CK+48.
  Test = fold ``k``; validation is carved *by subject* from the nine training folds by the
  base class (stratified by each subject's majority class, seeded by the run's seed);
  report the mean over the 10 folds.

CK+48 repackage (``layout=ck48``; ``--root`` holds ``CK+48/`` or is it)::

    CK+48/<anger|contempt|disgust|fear|happy|sadness|surprise>/S010_004_00000017.png

981 48x48 grey face crops (the last 3 frames of the labelled sequences); the subject is
parsed from the file name so that folds stay subject-disjoint.  No crop is applied and there
is no neutral class (``with_neutral=True`` is an error there).

Synthetic trees in both layouts: :mod:`fer_bench.synth.ckplus`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.faces import CroppedFrames, crop_face, face_boxes, haar_available, landmark_box, parse_landmarks  # noqa: F401
from fer_bench.data.io import list_entries
from fer_bench.data.splits import subject_folds
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

N_FOLDS = 10
#: CK+ emotion code -> canonical class name (README of the distribution)
CK_EMOTIONS: dict[int, str] = {1: "angry", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sad",
                               7: "surprise"}
CK_CODE_NAMES = "1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise"
#: CK+48 class folder -> canonical class name
CK48_FOLDERS: dict[str, str] = {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                                "happy": "happy", "sadness": "sad", "surprise": "surprise"}
#: the 7-class protocol in canonical order (contempt last)
CLASSES_7: tuple[str, ...] = tuple(c for c in CANONICAL_CLASSES_8 if c != "neutral")
#: the 8-class protocol (with_neutral=True)
CLASSES_8: tuple[str, ...] = CANONICAL_CLASSES_8
LAYOUTS = ("auto", "official", "ck48")
CROPS = ("auto", "landmarks", "haar", "center", "none")
APEX_FRAMES = 3
IMAGES_DIR, EMOTION_DIR, LANDMARKS_DIR, CK48_DIR = "cohn-kanade-images", "Emotion", "Landmarks", "CK+48"

_FRAME_RE = re.compile(r"_(\d+)\.png$", re.IGNORECASE)
_EMOTION_RE = re.compile(r"_(\d+)_emotion\.txt$")
_CK48_RE = re.compile(r"^(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# file formats
# --------------------------------------------------------------------------------------
def parse_emotion_file(path: str | os.PathLike) -> int:
    """The emotion code (1..7) of a CK+ ``*_emotion.txt``: one float such as ``   3.0000000e+00``."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise DataFormatError(path, "a readable emotion file", found=str(e)) from None
    tokens = text.split()
    line = next((i + 1 for i, ln in enumerate(text.splitlines()) if ln.strip()), 1)
    if len(tokens) != 1:
        raise DataFormatError(path, "exactly one number, the emotion code (e.g. '   3.0000000e+00')", line=line,
                              found=repr(text.strip()[:80]) if text.strip() else "an empty file")
    try:
        value = float(tokens[0])
    except ValueError:
        raise DataFormatError(path, "a number, the emotion code (e.g. '   3.0000000e+00')", line=line,
                              found=repr(tokens[0])) from None
    if not (math.isfinite(value) and value.is_integer() and 1 <= value <= 7):
        raise DataFormatError(path, f"an emotion code 1-7 ({CK_CODE_NAMES}); the release labels no sequence "
                              "0 (neutral)", line=line, found=tokens[0])
    return int(value)


# --------------------------------------------------------------------------------------
# the official tree
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CKSequence:
    """One labelled sequence: its frames ``(number, path)`` up to the labelled peak, and its code."""

    subject: str
    sequence: str
    frames: tuple[tuple[int, str], ...]
    code: int
    emotion_file: str


def _frames(seq_dir: Path) -> list[tuple[int, str]]:
    out = []
    for e in list_entries(seq_dir, dirs=False):
        if not e.name.lower().endswith(".png"):
            continue  # e.g. Thumbs.db
        m = _FRAME_RE.search(e.name)
        if not m:
            raise DataFormatError(e.path, "a frame name Sxxx_nnn_<8-digit frame>.png")
        out.append((int(m.group(1)), e.path))
    return sorted(out)


def scan_official(root: str | os.PathLike) -> tuple[list[CKSequence], int]:
    """Labelled sequences of an official CK+ tree, and the number of unlabelled sequences."""
    root = Path(root)
    img_root, emo_root = root / IMAGES_DIR, root / EMOTION_DIR
    if not img_root.is_dir():
        raise DataFormatError(img_root, "the cohn-kanade-images/ folder (cohn-kanade-images/Sxxx/nnn/*.png)",
                              found="no such folder")
    if not emo_root.is_dir():
        raise DataFormatError(emo_root, "the Emotion/ folder of Emotion_labels.zip "
                              "(Emotion/Sxxx/nnn/Sxxx_nnn_<frame>_emotion.txt)", found="no such folder")
    labelled: list[CKSequence] = []
    n_unlabelled = 0
    for subj in list_entries(img_root, dirs=True):
        for seq in list_entries(Path(subj.path), dirs=True):
            frames = _frames(Path(seq.path))
            emo_dir = emo_root / subj.name / seq.name
            files = ([e for e in list_entries(emo_dir, dirs=False) if e.name.endswith("_emotion.txt")]
                     if emo_dir.is_dir() else [])
            if not files:
                n_unlabelled += 1
                continue
            if len(files) > 1:
                raise DataFormatError(emo_dir, "at most one *_emotion.txt per sequence",
                                      found=", ".join(e.name for e in files))
            emo = files[0]
            m = _EMOTION_RE.search(emo.name)
            if not m:
                raise DataFormatError(emo.path, "a name Sxxx_nnn_<frame>_emotion.txt")
            code = parse_emotion_file(emo.path)
            peak = int(m.group(1))
            numbers = [n for n, _ in frames]
            if peak not in numbers:
                found = f"frames {numbers[0]}..{numbers[-1]}" if numbers else "no frames"
                raise DataFormatError(emo.path, f"its peak frame {peak} among the PNG frames of {seq.path}",
                                      found=found)
            upto = tuple(frames[: numbers.index(peak) + 1])
            labelled.append(CKSequence(subj.name, seq.name, upto, code, emo.path))
    for subj in list_entries(emo_root, dirs=True):
        for seq in list_entries(Path(subj.path), dirs=True):
            has_label = any(e.name.endswith("_emotion.txt") for e in list_entries(Path(seq.path), dirs=False))
            if has_label and not (img_root / subj.name / seq.name).is_dir():
                raise DataFormatError(img_root / subj.name / seq.name,
                                      f"the image sequence labelled by {seq.path}", found="no such folder")
    return labelled, n_unlabelled


def protocol_frames(seq: CKSequence, with_neutral: bool) -> list[tuple[str, str, int]]:
    """``(path, canonical class name, frame number)`` of a sequence's protocol frames: its last
    3 frames (up to the peak) with the sequence's emotion, plus the first frame as neutral."""
    out = [(p, CK_EMOTIONS[seq.code], n) for n, p in seq.frames[-APEX_FRAMES:]]
    if with_neutral and len(seq.frames) > APEX_FRAMES:
        n, p = seq.frames[0]
        out.append((p, "neutral", n))
    return out


def landmark_path(root: Path, frame_path: str) -> Path:
    p = Path(frame_path)
    return root / LANDMARKS_DIR / p.parent.parent.name / p.parent.name / (p.stem + "_landmarks.txt")


# --------------------------------------------------------------------------------------
# CK+48
# --------------------------------------------------------------------------------------
def scan_ck48(base: str | os.PathLike) -> list[tuple[str, str, str, int]]:
    """``(path, canonical class name, subject, frame number)`` of every CK+48 image."""
    base = Path(base)
    dirs = list_entries(base, dirs=True)
    names = {d.name.lower(): d for d in dirs}
    unknown = [d.name for d in dirs if d.name.lower() not in CK48_FOLDERS]
    if unknown:
        raise DataFormatError(base / unknown[0], f"one of the CK+48 class folders {', '.join(CK48_FOLDERS)}",
                              found=unknown[0])
    missing = [f for f in CK48_FOLDERS if f not in names]
    if missing:
        raise DataFormatError(base / missing[0], "the seven CK+48 class folders "
                              f"({', '.join(CK48_FOLDERS)})", found="no such folder")
    out = []
    for folder, cls_name in CK48_FOLDERS.items():
        for e in list_entries(Path(names[folder].path), dirs=False):
            if not e.name.lower().endswith(".png"):
                continue
            m = _CK48_RE.match(e.name)
            if not m:
                raise DataFormatError(e.path, "a name Sxxx_nnn_<frame>.png (the subject is needed for "
                                      "subject-disjoint folds)")
            out.append((e.path, cls_name, m.group(1).upper(), int(m.group(3))))
    return out


# --------------------------------------------------------------------------------------
# dataset and DataModule
# --------------------------------------------------------------------------------------
#: grey frames cropped by their face boxes (:class:`fer_bench.data.faces.CroppedFrames`)
CKPlusFrames = CroppedFrames


@DATASETS.register("ckplus")
class CKPlus(FERDataModule):
    """CK+: last 3 frames of each labelled sequence, subject-disjoint 10-fold CV (see the module doc)."""

    classes: ClassVar[tuple[str, ...]] = CLASSES_7  # the default protocol; instances set their own
    info = DatasetInfo(
        "static",
        "last 3 frames of the 327 labelled sequences (981 images), 7 classes incl. contempt "
        "(with_neutral=true: + first frames as neutral, 8 classes); face crop; 10-fold CV with folds "
        "disjoint by subject (--fold 0..9 required; subjects sorted, dealt round-robin); report the mean over folds",
        citation="P. Lucey et al., \"The Extended Cohn-Kanade Dataset (CK+)\", CVPR Workshops 2010",
    )
    default_input_size = 48
    default_in_chans = 1
    folds: ClassVar[tuple[int, ...]] = tuple(range(N_FOLDS))

    def __init__(self, root: str | None = None, *, with_neutral: bool = False, layout: str = "auto",
                 crop: str = "auto", cascade: str | None = None, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        verify_choice(layout, "layout", LAYOUTS, where="ckplus")
        verify_choice(crop, "crop", CROPS, where="ckplus")
        self.with_neutral = bool(with_neutral)
        self.classes = CLASSES_8 if self.with_neutral else CLASSES_7
        self.layout = layout
        self.crop = crop
        self.cascade = cascade
        self.layout_used: str | None = None
        self.crop_used: str | None = None
        self.crop_fallbacks: int | None = None
        self.n_unlabelled: int | None = None
        self.subject_fold: dict[str, int] = {}

    # -- layout -------------------------------------------------------------------------
    def _resolve_layout(self, root: Path) -> tuple[str, Path]:
        if not root.is_dir():
            raise DataFormatError(root, "a CK+ folder (cohn-kanade-images/ + Emotion/, or CK+48/)",
                                  found="no such folder")
        official = (root / IMAGES_DIR).is_dir()
        ck48 = root / CK48_DIR if (root / CK48_DIR).is_dir() else (
            root if any((root / f).is_dir() for f in CK48_FOLDERS) else None)
        if self.layout == "official" or (self.layout == "auto" and official):
            return "official", root
        if self.layout == "ck48" or (self.layout == "auto" and ck48 is not None):
            if ck48 is None:
                raise DataFormatError(root / CK48_DIR, "the CK+48 folder of class folders", found="no such folder")
            return "ck48", ck48
        listing = ", ".join(e.name for e in list_entries(root, dirs=True)[:8]) or "no sub-folders"
        raise DataFormatError(root, "cohn-kanade-images/ and Emotion/ (official CK+) or CK+48/<class>/ "
                              "(CK+48 repackage)", found=listing)

    def _resolve_crop(self, root: Path) -> str:
        has_lm = (root / LANDMARKS_DIR).is_dir()
        if self.crop == "landmarks" and not has_lm:
            raise UserError(f"ckplus: crop=landmarks needs the Landmarks/ folder of Landmarks.zip in {root}")
        if self.crop == "auto":
            if haar_available(self.cascade):
                return "haar"
            if has_lm:
                return "landmarks"
            warnings.warn(f"ckplus: no Landmarks/ folder in {root} and no OpenCV Haar cascade available: every "
                          "frame gets a centre crop (see the ckplus module doc)", stacklevel=3)
            return "center"
        return self.crop

    # -- parsing ------------------------------------------------------------------------
    def _official(self, root: Path):
        seqs, self.n_unlabelled = scan_official(root)
        rows = [r + (s.subject,) for s in seqs for r in protocol_frames(s, self.with_neutral)]
        paths = [r[0] for r in rows]
        names = [r[1] for r in rows]
        groups = [r[3] for r in rows]
        crop = self._resolve_crop(root)

        def landmarks(p: str):
            lp = landmark_path(root, p)
            return parse_landmarks(lp) if lp.is_file() else None

        boxes, fallbacks = face_boxes(paths, crop, landmarks=landmarks, cascade=self.cascade)
        if fallbacks:
            warnings.warn(f"ckplus: {fallbacks} of {len(rows)} frames have no "
                          f"{'landmark file' if crop == 'landmarks' else 'detected face'}; centre crop used",
                          stacklevel=3)
        self.crop_used, self.crop_fallbacks = crop, fallbacks
        return paths, names, groups, boxes

    def _ck48(self, base: Path):
        if self.with_neutral:
            raise UserError("ckplus: CK+48 has no neutral images; with_neutral=true needs the official tree")
        if self.crop not in ("auto", "none"):
            raise UserError("ckplus: CK+48 images are already 48x48 face crops; crop= applies to the official tree")
        rows = scan_ck48(base)
        self.crop_used, self.crop_fallbacks, self.n_unlabelled = "none (CK+48 is pre-cropped)", 0, 0
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], None

    def build_splits(self) -> dict[str, Dataset | None]:
        root = Path(self.root)
        layout, base = self._resolve_layout(root)
        self.layout_used = layout
        paths, names, groups, boxes = self._official(base) if layout == "official" else self._ck48(base)
        if not paths:
            raise DataFormatError(base, "at least one labelled sequence", found="none")
        index = {c: k for k, c in enumerate(self.classes)}
        labels = np.array([index[n] for n in names], dtype=np.int64)
        groups = np.asarray(groups)
        self.subject_fold = subject_folds(groups, N_FOLDS)
        if len(self.subject_fold) < N_FOLDS:
            raise DataFormatError(base, f"labelled sequences of at least {N_FOLDS} subjects for {N_FOLDS} "
                                  "subject-disjoint folds", found=f"{len(self.subject_fold)} subjects")
        fold_of = np.array([self.subject_fold[g] for g in groups])
        paths_arr = np.asarray(paths, dtype=object)
        out = {}
        for split, mask in (("train", fold_of != self.fold), ("test", fold_of == self.fold)):
            out[split] = CKPlusFrames(paths_arr[mask].tolist(), labels[mask], grey=True, groups=groups[mask],
                                      boxes=None if boxes is None else boxes[mask])
        return {"train": out["train"], "val": None, "test": out["test"]}

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(
            with_neutral=self.with_neutral, layout=self.layout_used or self.layout,
            crop=self.crop_used or self.crop, n_folds=N_FOLDS,
            fold_assignment="subjects sorted by number, dealt round-robin (i-th subject -> fold i mod 10)",
            frames="last 3 of each labelled sequence" + (" + first frame as neutral" if self.with_neutral else ""),
        )
        if self.crop_fallbacks is not None:
            args["crop_fallbacks"] = self.crop_fallbacks
        return args
