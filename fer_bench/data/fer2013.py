"""FER2013: the Kaggle challenge's 35,887 48x48 grey faces, as a csv or as an image-folder repackage.

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

The csv files are parsed by :mod:`fer_bench.data.fer2013_csv`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.fer2013_csv import FER2013_CSV_NAMES, USAGE_SPLIT, USAGES, read_fer2013_csv
from fer_bench.data.io import ArrayImageDataset, ImageListDataset, list_dirs, list_images
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

FER2013_FOLDER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # = canonical
FER2013_LAYOUTS = ("auto", "csv", "icml", "folders")


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
        verify_choice(layout, "layout", FER2013_LAYOUTS, where="fer2013")
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
