"""FER2013 and FERPlus (the same 35,887 48x48 grey faces; FERPlus relabels them with 10 votes each).

FER2013
-------
Source: I. Goodfellow et al., "Challenges in Representation Learning: A report on three machine
learning contests", ICONIP 2013 (Kaggle "Challenges in Representation Learning: Facial
Expression Recognition Challenge").  Layouts read (``layout=`` forces one; ``auto`` takes the
first found in this order, in ``--root`` or ``--root/fer2013/``; ``--root`` may also be the csv
file itself):

``csv``      ``fer2013.csv``: header ``emotion,pixels,Usage``; ``pixels`` = 2304 space-separated
             values 0..255, row-major 48x48; rows in the order Training (28,709), PublicTest
             (3,589), PrivateTest (3,589); md5 of the official file f8428a1edbd21e88f42c73edd2a14f95.
``icml``     Kaggle's ``icml_face_data.csv``: header ``emotion, Usage, pixels`` (leading spaces,
             other order), same rows.
``folders``  the popular image-folder repackage ``train/<angry|disgust|fear|happy|neutral|sad|surprise>/
             Training_<id>.jpg`` and ``test/<class>/PublicTest_<id>.jpg`` / ``PrivateTest_<id>.jpg``
             (48x48 grey JPEG).  The split is the file-name prefix (the id is not a csv row).

Labels 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral are already the
canonical order.  Protocol (the challenge's): train on Training, select on PublicTest (val),
report on PrivateTest (test).

The csv is parsed vectorised: pandas reads the three columns as text; the pixel column is
parsed in chunks of rows with one ``np.fromstring(..., sep=" ")`` per chunk after a per-row
count of separators (``np.add.reduceat``) proves every row has 2304 values; the images are kept
as one uint8 array ``[N, 48, 48]`` (83 MB for the full file) shared by the splits.  A bad row
(pixel count, a value outside 0..255 or not a number, a label outside 0..6, an unknown Usage)
raises :class:`~fer_bench.errors.DataFormatError` with the file and the 1-based line number
(the header is line 1).

FERPlus
-------
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
onto :data:`~fer_bench.data.base.CANONICAL_CLASSES_8` (angry, disgust, fear, happy, sad,
surprise, neutral, contempt).  The reference model's input is 64x64 (``models.py`` VGG13), hence
``default_input_size = 64``.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.data.base import CANONICAL_CLASSES, CANONICAL_CLASSES_8, DatasetInfo, FERDataModule
from fer_bench.data.imagefolder import list_dirs, list_images, read_table, synth_images, write_image
from fer_bench.data.io import ImageListDataset
from fer_bench.errors import DataFormatError, UserError
from fer_bench.registry import DATASETS

N_PIXELS = 48 * 48
USAGES = ("Training", "PublicTest", "PrivateTest")
USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER2013_FOLDER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # = canonical
FER2013_LAYOUTS = ("auto", "csv", "icml", "folders")
FER2013_CSV_NAMES = {"csv": "fer2013.csv", "icml": "icml_face_data.csv"}

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

_CHUNK_ROWS = 2048


# ======================================================================================
# in-memory images
# ======================================================================================
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


# ======================================================================================
# the FER2013 csv
# ======================================================================================
@dataclass(frozen=True)
class Fer2013Table:
    """A parsed ``fer2013.csv`` / ``icml_face_data.csv``: one entry per data row (line = index + 2)."""

    path: Path
    emotion: np.ndarray  # int64 [N], 0..6 (canonical)
    usage: np.ndarray    # object [N], one of USAGES
    images: np.ndarray   # uint8 [N, 48, 48], read-only

    def __len__(self) -> int:
        return len(self.emotion)


_TABLE_CACHE: "OrderedDict[tuple, Fer2013Table]" = OrderedDict()
_TABLE_CACHE_SIZE = 2  # 2 x 83 MB for full files


def _pixel_row_error(path: Path, text: str, line: int) -> DataFormatError:
    """The precise complaint about one pixel field."""
    expected = f"{N_PIXELS} space-separated pixel values 0..255"
    tokens = text.split()
    if len(tokens) != N_PIXELS:
        return DataFormatError(path, expected, line=line, found=f"{len(tokens)} values")
    for tok in tokens:
        if not tok.isdigit():
            return DataFormatError(path, expected, line=line, found=f"{tok[:20]!r}")
        if int(tok) > 255:
            return DataFormatError(path, expected, line=line, found=f"value {tok}")
    return DataFormatError(path, expected, line=line, found="an unparsable field")


def parse_pixels(pixels: np.ndarray, path: Path, first_line: int = 2) -> np.ndarray:
    """Pixel strings (one per row) -> uint8 ``[N, 48, 48]``, every row checked.

    Per chunk of rows: the separators of each row are counted with one ``np.add.reduceat`` over
    the joined bytes (2303 single spaces = 2304 values; rows spaced otherwise are re-checked with
    ``str.split``), then the whole chunk is parsed by one ``np.fromstring(sep=" ")`` into int32 and
    range-checked before the cast to uint8.  Any anomaly is located to its row and line.
    """
    n = len(pixels)
    out = np.empty((n, 48, 48), np.uint8)
    flat = out.reshape(n, N_PIXELS)
    for s0 in range(0, n, _CHUNK_ROWS):
        chunk = pixels[s0:s0 + _CHUNK_ROWS]
        try:
            buf = "\n".join(chunk).encode("ascii")
        except UnicodeEncodeError:
            bad = next(i for i, t in enumerate(chunk) if not t.isascii())
            raise _pixel_row_error(path, chunk[bad], first_line + s0 + bad) from None
        b = np.frombuffer(buf, np.uint8)
        starts = np.r_[0, np.flatnonzero(b == 10) + 1]
        spaces = np.add.reduceat((b == 32).view(np.uint8), starts, dtype=np.int64) if len(b) else np.zeros(len(chunk))
        for i in np.flatnonzero(spaces != N_PIXELS - 1):  # irregular spacing is fine, a wrong count is not
            if len(chunk[i].split()) != N_PIXELS:
                raise _pixel_row_error(path, chunk[i], first_line + s0 + int(i))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # older numpy warns and returns a partial parse
                vals = np.fromstring(buf, dtype=np.int32, sep=" ")
        except ValueError:  # numpy >= 2.3: "could not be read to its end due to unmatched data"
            vals = None
        if vals is None or vals.size != len(chunk) * N_PIXELS:
            for i, t in enumerate(chunk):
                if any(not tok.isdigit() for tok in t.split()):
                    raise _pixel_row_error(path, t, first_line + s0 + i)
            raise DataFormatError(path, "numeric pixel values", line=first_line + s0, found="an unparsable chunk")
        vals = vals.reshape(len(chunk), N_PIXELS)
        bad_rows = np.flatnonzero(((vals < 0) | (vals > 255)).any(axis=1))
        if len(bad_rows):
            i = int(bad_rows[0])
            v = vals[i][(vals[i] < 0) | (vals[i] > 255)][0]
            raise DataFormatError(path, f"{N_PIXELS} space-separated pixel values 0..255", line=first_line + s0 + i,
                                  found=f"value {v}")
        flat[s0:s0 + len(chunk)] = vals
    return out


def read_fer2013_csv(path: str | os.PathLike) -> Fer2013Table:
    """Parse and validate ``fer2013.csv`` or ``icml_face_data.csv`` (either header, any column order).

    The last two parsed files are cached by (path, size, mtime), so several DataModules in one
    process (seeds of a benchmark, FER2013 and FERPlus) parse a file once.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataFormatError(path, "the FER2013 csv (header emotion,pixels,Usage)", found="no such file") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _TABLE_CACHE:
        _TABLE_CACHE.move_to_end(key)
        return _TABLE_CACHE[key]
    expected_header = "header 'emotion,pixels,Usage' (fer2013.csv) or 'emotion, Usage, pixels' (icml_face_data.csv)"
    df = read_table(path, expected=expected_header, skipinitialspace=True, engine="c")
    cols = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    lower = [c.lower() for c in cols]
    if sorted(lower) != ["emotion", "pixels", "usage"]:
        raise DataFormatError(path, expected_header, line=1, found=repr(",".join(map(str, df.columns))))
    df.columns = [{"emotion": "emotion", "pixels": "pixels", "usage": "Usage"}[c] for c in lower]
    if len(df) == 0:
        raise DataFormatError(path, "one data row per image after the header", found="no rows")
    emotion = df["emotion"].str.strip().to_numpy(dtype=object)
    ok = np.isin(emotion, [str(k) for k in range(7)])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(path, "an emotion label 0..6 (0 Angry .. 6 Neutral)", line=i + 2,
                              found=repr(emotion[i]) if emotion[i] else "an empty field")
    usage = df["Usage"].str.strip().to_numpy(dtype=object)
    ok = np.isin(usage, USAGES)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(path, f"Usage one of {', '.join(USAGES)}", line=i + 2,
                              found=repr(usage[i]) if usage[i] else "an empty field")
    images = parse_pixels(df["pixels"].to_numpy(dtype=object), path)
    images.flags.writeable = False
    table = Fer2013Table(path, emotion.astype(np.int64), usage, images)
    _TABLE_CACHE[key] = table
    while len(_TABLE_CACHE) > _TABLE_CACHE_SIZE:
        _TABLE_CACHE.popitem(last=False)
    return table


def _format_pixels(img: np.ndarray) -> str:
    return " ".join(map(str, np.asarray(img, dtype=np.uint8).ravel().tolist()))


def write_fer2013_csv(path: Path, emotion, usage, images, *, icml: bool = False) -> None:
    """Write rows in the exact format of ``fer2013.csv`` (or ``icml_face_data.csv``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.write("emotion, Usage, pixels\n" if icml else "emotion,pixels,Usage\n")
        for e, u, img in zip(emotion, usage, images):
            px = _format_pixels(img)
            f.write(f"{int(e)},{u},{px}\n" if icml else f"{int(e)},{px},{u}\n")


# ======================================================================================
# FER2013
# ======================================================================================
def locate_fer2013(root: str | os.PathLike, layout: str = "auto") -> tuple[str, Path]:
    """(layout, csv file or tree root) of FER2013 under ``root`` (see the module docstring)."""
    root = Path(root)
    if root.is_file():
        if layout in ("auto", "csv", "icml"):
            return ("icml" if root.name == FER2013_CSV_NAMES["icml"] else "csv"), root
        raise UserError(f"--root {root} is a file; layout={layout} needs a folder")
    bases = [root, root / "fer2013"]
    order = ("csv", "icml", "folders") if layout == "auto" else (layout,)
    for lay in order:
        for base in bases:
            if lay in FER2013_CSV_NAMES and (base / FER2013_CSV_NAMES[lay]).is_file():
                return lay, base / FER2013_CSV_NAMES[lay]
            if lay == "folders" and (base / "train").is_dir() and (base / "test").is_dir():
                return lay, base
    wanted = {"csv": "fer2013.csv", "icml": "icml_face_data.csv", "folders": "train/ and test/ class folders"}
    raise DataFormatError(root, "FER2013 as distributed: " + " or ".join(wanted[x] for x in order)
                          + " (in the folder or its fer2013/ sub-folder)",
                          found=f"{list_dirs(root)[:12] if root.is_dir() else 'no such folder'}")


_PREFIX_RE = re.compile(r"^(Training|PublicTest|PrivateTest)_")


def read_fer2013_folders(base: Path) -> dict[str, ImageListDataset]:
    """The image-folder repackage: split from the file-name prefix, class from the folder."""
    paths: dict[str, list[str]] = {s: [] for s in USAGES}
    labels: dict[str, list[int]] = {s: [] for s in USAGES}
    allowed = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}
    for top in ("train", "test"):
        d = base / top
        names = list_dirs(d)
        unknown = [n for n in names if n.lower() not in FER2013_FOLDER_CLASSES]
        if unknown:
            raise DataFormatError(d, f"class folders {', '.join(FER2013_FOLDER_CLASSES)}", found=f"unknown {unknown}")
        for name in names:
            c = FER2013_FOLDER_CLASSES.index(name.lower())
            for p in list_images(d / name):
                m = _PREFIX_RE.match(os.path.basename(p))
                if m is None:
                    raise DataFormatError(p, "a file name starting with Training_, PublicTest_ or PrivateTest_ "
                                          "(the FER2013 split); use --dataset imagefolder for other trees",
                                          found=repr(os.path.basename(p)))
                if m.group(1) not in allowed[top]:
                    raise DataFormatError(p, f"only {' / '.join(allowed[top])} files under {top}/",
                                          found=f"a {m.group(1)} file")
                paths[m.group(1)].append(p)
                labels[m.group(1)].append(c)
    out = {}
    for usage in USAGES:
        if not paths[usage]:
            raise DataFormatError(base, f"{usage}_*.jpg files", found="none")
        out[USAGE_SPLIT[usage]] = ImageListDataset(paths[usage], labels[usage], grey=True)
    return out


@DATASETS.register("fer2013")
class FER2013(FERDataModule):
    """FER2013, 7 classes: Training / PublicTest (val) / PrivateTest (test).

    Options (``-d key=value``): ``layout`` (``auto``/``csv``/``icml``/``folders``).
    """

    info = DatasetInfo("static", "FER2013: train Training (28,709), select on PublicTest (3,589), report on "
                       "PrivateTest (3,589); 48x48 grey",
                       citation="I. Goodfellow et al., ICONIP 2013")
    classes = CANONICAL_CLASSES
    default_input_size: ClassVar[int] = 48
    default_in_chans: ClassVar[int] = 1

    def __init__(self, root: str | None = None, *, layout: str = "auto", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if layout not in FER2013_LAYOUTS:
            raise UserError(f"fer2013 layout must be one of {', '.join(FER2013_LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.resolved_layout: str | None = None

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(layout=self.resolved_layout or self.layout, val="PublicTest", test="PrivateTest")
        return args

    def build_splits(self) -> dict[str, Dataset | None]:
        layout, where = locate_fer2013(self.root, self.layout)
        self.resolved_layout = layout
        if layout == "folders":
            return read_fer2013_folders(where)
        table = read_fer2013_csv(where)
        out: dict[str, Dataset | None] = {}
        for usage in USAGES:
            pos = np.flatnonzero(table.usage == usage)
            if len(pos) == 0:
                raise DataFormatError(where, f"rows with Usage {usage}", found="none")
            out[USAGE_SPLIT[usage]] = ArrayImageDataset(table.images, pos, table.emotion[pos])
        return out

    @classmethod
    def synth(cls, root: str, *, per_class: int = 10, seed: int = 0, layout: str = "csv",
              pattern: str = "faces", **options: Any) -> None:
        """``per_class`` 48x48 grey faces per class in each of Training / PublicTest / PrivateTest,
        written as ``fer2013.csv`` (``layout=csv``), ``icml_face_data.csv`` (``icml``) or the
        image-folder repackage (``folders``)."""
        if options:
            raise UserError(f"unknown fer2013 synth option(s): {sorted(options)}")
        if layout not in ("csv", "icml", "folders"):
            raise UserError(f"fer2013 synth layout must be csv, icml or folders, got {layout!r}")
        root = Path(root)
        emotion, usage, images = [], [], []
        for k, u in enumerate(USAGES):
            imgs, labels = synth_images(per_class, seed=seed * 10 + k, pattern=pattern, identity_offset=40 * k)
            emotion.append(labels)
            usage += [u] * len(labels)
            images.append(imgs)
        emotion_a, images_a = np.concatenate(emotion), np.concatenate(images)
        if layout in FER2013_CSV_NAMES:
            write_fer2013_csv(root / FER2013_CSV_NAMES[layout], emotion_a, usage, images_a, icml=layout == "icml")
            return
        ids = 1000 + 7 * np.random.default_rng(seed).permutation(len(usage))  # ids are not row indices
        for c in FER2013_FOLDER_CLASSES:
            for top in ("train", "test"):
                (root / top / c).mkdir(parents=True, exist_ok=True)
        for e, u, img, i in zip(emotion_a, usage, images_a, ids):
            top = "train" if u == "Training" else "test"
            write_image(root / top / FER2013_FOLDER_CLASSES[int(e)] / f"{u}_{int(i)}.jpg", img)


# ======================================================================================
# FERPlus
# ======================================================================================
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
        if label_mode not in LABEL_MODES:
            raise UserError(f"ferplus label_mode must be majority or probability (alias crossentropy), "
                            f"got {label_mode!r}")
        if layout not in FERPLUS_LAYOUTS:
            raise UserError(f"ferplus layout must be one of {', '.join(FERPLUS_LAYOUTS)}, got {layout!r}")
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

    @classmethod
    def synth(cls, root: str, *, per_class: int = 10, seed: int = 0, layout: str = "csv",
              pattern: str = "faces", **options: Any) -> None:
        """``per_class`` faces per class (8) in each split, plus 3 rows per split the reference
        drops in majority mode: a non-face row (empty name, NF = 10), a tie neutral 4 / happiness 4
        / surprise 2 (no majority; kept as 0.5/0.5 neutral/happiness in probability mode) and an
        unknown majority (unknown 6 / neutral 4).  A regular face of FERPlus emotion ``k`` has the
        votes ``k: 5, k+1: 3, k+2: 1, unknown: 1`` (majority ``k``; probability 5/8, 3/8).

        ``layout=csv`` writes ``fer2013.csv`` + ``fer2013new.csv`` (names drift from the row
        index after each non-face row, as in the real file); ``layout=folders`` writes
        ``data/FER2013{Train,Valid,Test}/label.csv`` with face boxes and the PNG files."""
        if options:
            raise UserError(f"unknown ferplus synth option(s): {sorted(options)}")
        if layout not in ("csv", "folders"):
            raise UserError(f"ferplus synth layout must be csv or folders, got {layout!r}")
        root = Path(root)
        special_votes = [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face (empty name)
            [4, 4, 2, 0, 0, 0, 0, 0, 0, 0],   # no majority
            [4, 0, 0, 0, 0, 0, 0, 0, 6, 0],   # majority unknown
        ]
        rows = []  # (usage, fer2013 emotion, image, votes, is_face)
        for k, u in enumerate(USAGES):
            imgs, labels = synth_images(per_class, seed=seed * 10 + k, n_classes=8, pattern=pattern,
                                        identity_offset=40 * k)
            for j, sv in enumerate(special_votes):
                rows.append((u, 6, np.full((48, 48), 250, np.uint8), sv, j != 0))
            for img, c in zip(imgs, labels):
                e = int(CANONICAL_TO_FERPLUS[c])
                v = [0] * 10
                v[e], v[(e + 1) % 8], v[(e + 2) % 8], v[8] = 5, 3, 1, 1
                rows.append((u, int(c) if c < 7 else 6, img, v, True))
        name_no = 0
        names = []
        for r in rows:
            if r[4]:
                names.append(f"fer{name_no:07d}.png")
                name_no += 1
            else:
                names.append("")
                name_no += 2  # the drift of the real file
        if layout == "csv":
            write_fer2013_csv(root / "fer2013.csv", [r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows])
            with open(root / "fer2013new.csv", "w", newline="\n") as f:
                f.write(",".join(FERPLUS_HEADER) + "\n")
                for r, name in zip(rows, names):
                    f.write(f"{r[0]},{name}," + ",".join(map(str, r[3])) + "\n")
            return
        for split, folder in FERPLUS_FOLDERS.items():
            d = root / "data" / folder
            d.mkdir(parents=True, exist_ok=True)
            usage = {v: k for k, v in USAGE_SPLIT.items()}[split]
            with open(d / "label.csv", "w", newline="\n") as f:
                for r, name in zip(rows, names):
                    if r[0] != usage or not name:
                        continue
                    write_image(d / name, r[2])
                    f.write(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, r[3])) + "\n")
