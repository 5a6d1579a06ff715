"""RAF-DB basic (Real-world Affective Faces, single-label subset), read as distributed.

Source: S. Li, W. Deng, J. Du, "Reliable Crowdsourcing and Deep Locality-Preserving Learning
for Expression Recognition in the Wild", CVPR 2017 (and S. Li, W. Deng, IEEE TIP 2019).

Official layout (``layout=basic``; ``--root`` is the folder holding ``basic/``, or ``basic/``
itself)::

    basic/EmoLabel/list_patition_label.txt     (sic) lines ``train_00001.jpg 5``, no header
    basic/Image/aligned/train_00001_aligned.jpg  100x100 RGB, aligned    (``images=aligned``)
    basic/Image/original/train_00001.jpg         the uncropped photo      (``images=original``)
    basic/Annotation/manual/train_00001_manu_attri.txt   5 manual landmarks of the photo (``crop=landmarks``)

12,271 ``train_*`` and 3,068 ``test_*`` images; the split is the name prefix.  Labels:
1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral, mapped here onto
the canonical order (angry, disgust, fear, happy, sad, surprise, neutral).  The *compound*
subset ships a label file with the same name and labels 1..11: it is rejected with a
:class:`~fer_bench.errors.DataFormatError` that says so, naming the file and line.

Kaggle repackage (``layout=kaggle``; ``--root`` holds ``DATASET/`` and the two csv files, or is
``DATASET/`` itself with the csv files beside or inside it)::

    DATASET/{train,test}/{1..7}/train_00001_aligned.jpg
    train_labels.csv, test_labels.csv   columns ``image,label`` (same 1..7 coding)

A csv label that disagrees with the numbered folder holding the file is a DataFormatError.

Landmark alignment (``images=original crop=landmarks``; official layout only): each photo is warped
by its 5 manually annotated landmarks onto the ``arcface-loose`` template
(:data:`fer_bench.data.faces.ALIGN_TEMPLATE`: the whole face, as in the release's aligned images) at
the side the transforms resize to (``resize``, else the input size), instead of reading the
release's aligned image.  The release README (v1.1, ``Annotation/manual.zip``) says the first five
lines of ``<name>_manu_attri.txt`` hold the ``x y`` positions of "the central of two eyes, the tips
of the nose and two corners of the mouth", then gender, race and age, but not which side comes
first.  The reader assumes eyes, nose, mouth in that order and, for the sides, does not rely on a
convention (reconstructed): a similarity transform cannot mirror, so each file's eyes are put in
the face's own handedness (the subject's right eye first: the one on the image's left for an
upright face; the eye-to-eye vector turned clockwise points to the mouth, image y down) and its
mouth corners in the eyes' direction, whatever order the file lists them in.  Every landmark file
is read before training: a missing file, a line that is not two numbers or two coinciding eye
centres is a DataFormatError naming the file and line.  ``protocol_args`` records ``crop`` and the
alignment rule (``align``, e.g. ``arcface-loose+0``).

Protocol: RAF-DB has no validation split; the DataModule carves a stratified, seeded 10 %
of training (``val_fraction``).  Testing is on the 3,068 test images.  ``default_input_size``
is 100, the native size of the aligned images (papers with ImageNet backbones resize to 224:
pass ``--input-size 224``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.align import crop_rule
from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.faces import ALIGN_TEMPLATE, AlignedFaces
from fer_bench.data.io import ImageListDataset, list_dirs, list_images, read_table
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
#: RAF-DB basic label (1..7) -> canonical class id
RAF_TO_CANONICAL: dict[int, int] = {1: 5, 2: 2, 3: 1, 4: 3, 5: 4, 6: 0, 7: 6}
CANONICAL_TO_RAF: dict[int, int] = {c: r for r, c in RAF_TO_CANONICAL.items()}
RAF_NAMES = "1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral"
LAYOUTS = ("auto", "basic", "kaggle")
IMAGE_KINDS = ("aligned", "original")
CROPS = ("none", "landmarks")
MANUAL_DIR = Path("Annotation") / "manual"
MANUAL_EXPECTED = ("5 landmark lines 'x<TAB>y' (eye centres, nose tip, mouth corners), then gender, race and "
                   "age lines")


def _parse_labels(values: np.ndarray, path: Path, first_line: int) -> np.ndarray:
    """RAF labels (strings) -> canonical ids; a compound-subset label is named as such."""
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        s = str(v).strip()
        lab = int(s) if s.isdigit() else None
        if lab is not None and 8 <= lab <= 11:
            raise DataFormatError(
                path, f"RAF-DB basic labels 1..7 ({RAF_NAMES})", line=first_line + i,
                found=f"label {lab}: this looks like the compound subset's label file (labels 1..11); "
                "fer_bench reads the basic (single-label) subset: point --root at the folder holding basic/")
        if lab not in RAF_TO_CANONICAL:
            raise DataFormatError(path, f"a label 1..7 ({RAF_NAMES})", line=first_line + i, found=repr(s))
        out[i] = RAF_TO_CANONICAL[lab]
    return out


def read_partition_file(path: Path) -> tuple[list[str], np.ndarray]:
    """(image names, canonical labels) of ``list_patition_label.txt`` (no header, one pair a line)."""
    expected = "lines '<train_NNNNN.jpg|test_NNNN.jpg> <label 1..7>'"
    df = read_table(path, expected=expected, sep=r"\s+", header=None)
    if df.shape[1] != 2:
        raise DataFormatError(path, expected, line=1, found=f"{df.shape[1]} fields")
    names = df[0].to_numpy(dtype=object)
    for i, name in enumerate(names):
        if not (name.startswith(("train_", "test_")) and name.lower().endswith(".jpg")):
            raise DataFormatError(path, expected, line=i + 1, found=repr(" ".join(df.iloc[i]).strip()))
    labels = _parse_labels(df[1].to_numpy(dtype=object), path, first_line=1)
    return list(names), labels


def handed(points: np.ndarray) -> np.ndarray:
    """The 5 points (eyes, nose tip, mouth corners, each pair in either order) in the order of
    :mod:`fer_bench.data.align`: the eye pair so that the eye-to-eye vector turned clockwise (image y
    down) points to the mouth, the mouth corners in the direction of the eyes."""
    p = np.array(points, np.float64)
    eyes, down = p[1] - p[0], (p[3] + p[4] - p[0] - p[1]) / 2
    if eyes[0] * down[1] - eyes[1] * down[0] < 0:
        p[[0, 1]] = p[[1, 0]]
    if np.dot(p[4] - p[3], p[1] - p[0]) < 0:
        p[[3, 4]] = p[[4, 3]]
    return p


def read_manual_landmarks(path: Path) -> np.ndarray:
    """The 5 landmarks ``(5, 2)`` of a ``<name>_manu_attri.txt``, ordered by :func:`handed`."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, f"the landmark file of the image ({MANUAL_EXPECTED})", found="no such file") from None
    except OSError as e:
        raise DataFormatError(path, MANUAL_EXPECTED, found=f"an unreadable file ({e.strerror})") from None
    pts = np.empty((5, 2), np.float64)
    for k in range(5):
        if k >= len(lines):
            raise DataFormatError(path, MANUAL_EXPECTED, line=k + 1, found="the end of the file")
        try:
            xy = [float(v) for v in lines[k].split()]
        except ValueError:
            xy = []
        if len(xy) != 2 or not np.isfinite(xy).all():
            raise DataFormatError(path, f"landmark {k + 1} of 5 as two numbers 'x<TAB>y'", line=k + 1,
                                  found=repr(lines[k][:80]))
        pts[k] = xy
    if np.allclose(pts[0], pts[1]):
        raise DataFormatError(path, "two distinct eye centres (lines 1 and 2)", line=2, found=repr(lines[1][:80]))
    return handed(pts)


def _find(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


@DATASETS.register("rafdb")
class RAFDB(FERDataModule):
    """RAF-DB basic, 7 classes (see the module docstring for layouts and protocol).

    Options (``-d key=value``): ``layout`` (``auto``/``basic``/``kaggle``), ``images``
    (``aligned``/``original``, official layout only), ``crop`` (``none``, or ``landmarks`` with
    ``images=original``: aligned by the manual landmarks).
    """

    info = DatasetInfo("static", "RAF-DB basic: official train (12,271) / test (3,068); val carved from train "
                       "(stratified, seeded); aligned 100x100 RGB",
                       citation="S. Li, W. Deng, J. Du, CVPR 2017")
    classes = CANONICAL_CLASSES
    default_input_size: ClassVar[int] = 100
    default_in_chans: ClassVar[int] = 3

    def __init__(self, root: str | None = None, *, layout: str = "auto", images: str = "aligned",
                 crop: str = "none", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        verify_choice(layout, "layout", LAYOUTS, where="rafdb")
        verify_choice(images, "images", IMAGE_KINDS, where="rafdb")
        verify_choice(crop, "crop", CROPS, where="rafdb")
        if crop == "landmarks" and images != "original":
            raise UserError("rafdb: crop=landmarks aligns the original photos by their manual landmarks "
                            "(Annotation/manual/): pass images=original (the aligned images are aligned already)")
        self.layout = layout
        self.images = images
        self.crop = crop
        self.resolved_layout: str | None = None

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(layout=self.resolved_layout or self.layout, images=self.images, crop=self.crop,
                    val="carved from train")
        if self.crop == "landmarks":
            args["align"] = crop_rule(ALIGN_TEMPLATE)
        return args

    # -- layout detection -----------------------------------------------------------------
    def _basic_dir(self) -> Path | None:
        root = Path(self.root)
        hit = _find([root / "basic" / LABEL_FILE, root / LABEL_FILE])
        return hit.parent.parent if hit else None

    def _kaggle_dirs(self) -> tuple[Path, Path] | None:
        """(DATASET folder, folder holding the two csv files)."""
        root = Path(self.root)
        for data in (root / "DATASET", root):
            if (data / "train").is_dir() and (data / "test").is_dir():
                for csv_dir in (data.parent, data) if data == root else (root, data):
                    if (csv_dir / "train_labels.csv").is_file():
                        return data, csv_dir
        return None

    def build_splits(self) -> dict[str, Dataset | None]:
        root = Path(self.root)
        layout = self.layout
        if layout == "auto":
            layout = "basic" if self._basic_dir() else "kaggle" if self._kaggle_dirs() else None
            if layout is None:
                raise DataFormatError(
                    root, f"RAF-DB as distributed: basic/{LABEL_FILE.as_posix()} (+ basic/Image/aligned/), or the "
                    "Kaggle DATASET/{train,test}/{1..7}/ folders with train_labels.csv and test_labels.csv",
                    found=f"{list_dirs(root)[:12] if root.is_dir() else 'no such folder'}")
        self.resolved_layout = layout
        if layout == "kaggle" and self.images != "aligned":
            raise UserError("the Kaggle RAF-DB repackage holds only the aligned images (images=aligned)")
        return self._read_basic() if layout == "basic" else self._read_kaggle()

    # -- official layout ------------------------------------------------------------------
    def _read_basic(self) -> dict[str, Dataset | None]:
        basic = self._basic_dir()
        if basic is None:
            raise DataFormatError(Path(self.root) / "basic" / LABEL_FILE, "the RAF-DB basic label file",
                                  found="no such file")
        names, labels = read_partition_file(basic / LABEL_FILE)
        img_dir = basic / "Image" / self.images
        if not img_dir.is_dir():
            raise DataFormatError(img_dir, f"the folder of the {self.images} images", found="no such folder")
        manual = basic / MANUAL_DIR
        if self.crop == "landmarks" and not manual.is_dir():
            raise DataFormatError(manual, "the folder of the manual annotations (<name>_manu_attri.txt, from "
                                  "Annotation/manual.zip) for crop=landmarks", found="no such folder")
        out: dict[str, Dataset | None] = {"val": None}
        for split in ("train", "test"):
            pos = [i for i, n in enumerate(names) if n.startswith(split + "_")]
            if not pos:
                raise DataFormatError(basic / LABEL_FILE, f"{split}_* entries", found="none")
            if self.images == "aligned":
                paths = [str(img_dir / (Path(names[i]).stem + "_aligned.jpg")) for i in pos]
            else:
                paths = [str(img_dir / names[i]) for i in pos]
            if self.crop == "landmarks":
                points = np.stack([read_manual_landmarks(manual / f"{Path(names[i]).stem}_manu_attri.txt")
                                   for i in pos])
                out[split] = AlignedFaces(paths, labels[pos], points, self.resize or self.input_size)
            else:
                out[split] = ImageListDataset(paths, labels[pos])
        return out

    # -- Kaggle repackage -----------------------------------------------------------------
    def _read_kaggle(self) -> dict[str, Dataset | None]:
        dirs = self._kaggle_dirs()
        if dirs is None:
            raise DataFormatError(Path(self.root) / "DATASET", "the Kaggle RAF-DB layout DATASET/{train,test}/{1..7}/ "
                                  "with train_labels.csv and test_labels.csv", found="not found")
        data, csv_dir = dirs
        out: dict[str, Dataset | None] = {"val": None}
        for split in ("train", "test"):
            csv = csv_dir / f"{split}_labels.csv"
            df = read_table(csv, expected="columns image,label")
            cols = [c.strip() for c in df.columns]
            if cols != ["image", "label"]:
                raise DataFormatError(csv, "header 'image,label'", line=1, found=repr(",".join(df.columns)))
            labels = _parse_labels(df["label"].to_numpy(dtype=object), csv, first_line=2)
            where: dict[str, str] = {}  # file name -> numbered folder holding it
            for sub in list_dirs(data / split):
                for p in list_images(data / split / sub):
                    where[Path(p).name] = sub
            paths = []
            for i, (name, c) in enumerate(zip(df["image"].str.strip(), labels)):
                if not name:
                    raise DataFormatError(csv, "an image file name", line=i + 2, found="an empty field")
                folder = str(CANONICAL_TO_RAF[int(c)])
                if name in where and where[name] != folder:
                    raise DataFormatError(csv, f"the label of the folder holding {name} "
                                          f"(DATASET/{split}/{where[name]}/)", line=i + 2, found=f"label {folder}")
                paths.append(str(data / split / folder / name))
            if not paths:
                raise DataFormatError(csv, "one row per image", found="no rows")
            out[split] = ImageListDataset(paths, labels)
        return out
