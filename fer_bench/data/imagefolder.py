"""``imagefolder``: any ``<root>/<split>/<class-name>/<image>`` tree, and the image-tree
helpers the other static datasets share (class-name synonyms, file listing, synthetic
images, image writing).

Layout read::

    <root>/train/<class>/*.jpg|png|...      (required)
    <root>/val/<class>/...                   (optional; also ``valid`` or ``validation``)
    <root>/test/<class>/...                  (required)

Split and class folder names are matched case-insensitively.  Class folders are emotion
names or the common synonyms in :data:`CLASS_SYNONYMS` (``anger``/``angry``/``ang``,
``happiness``/``happy``/``joy``, ...); any other folder name is a
:class:`~fer_bench.errors.DataFormatError` listing the unknown names and the accepted ones.
``calm`` is deliberately *not* accepted as ``neutral``: RAVDESS labels calm and neutral as two
different classes, and merging them silently would change the protocol.

Classes: the 7 canonical ones, or 8 (``+ contempt``) when a ``contempt`` folder exists in
any split; ``-d classes=7`` drops an existing contempt folder (recorded in the protocol).
Without a validation folder the DataModule carves a stratified, seeded validation split from
training (:func:`fer_bench.data.base.stratified_split`).  Only the image files directly in a
class folder are read (``.jpg .jpeg .png .bmp .tif .tiff .webp .pgm .ppm``; hidden files and
other extensions such as ``Thumbs.db`` are ignored).  A zero-byte or undecodable image is a
skipped-and-counted :class:`~fer_bench.errors.UnreadableSample`, never a crash.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import cv2
import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from fer_bench.data.base import CANONICAL_CLASSES, CANONICAL_CLASSES_8, DatasetInfo, FERDataModule
from fer_bench.data.io import ImageListDataset
from fer_bench.errors import DataFormatError, UserError
from fer_bench.registry import DATASETS

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})

#: lower-case class-folder name -> canonical class id (index into CANONICAL_CLASSES_8)
CLASS_SYNONYMS: dict[str, int] = {
    **dict.fromkeys(("angry", "anger", "ang", "mad"), 0),
    **dict.fromkeys(("disgust", "disgusted", "disgusting", "dis"), 1),
    **dict.fromkeys(("fear", "fearful", "afraid", "scared"), 2),
    **dict.fromkeys(("happy", "happiness", "joy", "hap"), 3),
    **dict.fromkeys(("sad", "sadness", "sorrow"), 4),
    **dict.fromkeys(("surprise", "surprised", "sur"), 5),
    **dict.fromkeys(("neutral", "neu"), 6),
    **dict.fromkeys(("contempt", "contemptuous"), 7),
}

#: lower-case split-folder name -> split
SPLIT_NAMES: dict[str, str] = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

SYNTH_PATTERNS = ("faces", "class-grey")


def class_grey_level(canonical_class: int) -> int:
    """Grey level of a ``pattern="class-grey"`` synthetic image: ``30 * class`` (0..210)."""
    return 30 * int(canonical_class)


def canonical_class_of(folder_name: str) -> int | None:
    """Canonical class id of a class-folder name (synonyms, any case), or ``None``."""
    return CLASS_SYNONYMS.get(folder_name.strip().lower())


def accepted_class_names() -> str:
    by_class: dict[int, list[str]] = {}
    for name, c in CLASS_SYNONYMS.items():
        by_class.setdefault(c, []).append(name)
    return "; ".join(f"{CANONICAL_CLASSES_8[c]}: {'/'.join(names)}" for c, names in sorted(by_class.items()))


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


def write_image(path: str | os.PathLike, img: np.ndarray, *, quality: int = 95) -> None:
    """Write a uint8 grey ``HxW`` or RGB ``HxWx3`` image (format from the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, arr, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    buf.tofile(str(path))


def synth_images(per_class: int, *, seed: int, n_classes: int = 7, size: int = 48, rgb: bool = False,
                 pattern: str = "faces", identity_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` synthetic images of each canonical class: (uint8 images, canonical labels).

    ``pattern="faces"`` draws faces with :func:`fer_bench.data.synthetic.make_static`; class 7
    (contempt, which the face generator does not draw) takes the generator's *happy* faces of an
    independent seed (a one-sided smile is the closest drawn expression).  ``pattern="class-grey"``
    makes uniform images of grey level :func:`class_grey_level` so that a test can check the
    label of every decoded sample against its pixels.  The order is shuffled (seeded).
    """
    from fer_bench.data.synthetic import make_static

    if pattern not in SYNTH_PATTERNS:
        raise UserError(f"pattern must be one of {', '.join(SYNTH_PATTERNS)}, got {pattern!r}")
    if n_classes not in (7, 8):
        raise ValueError(f"n_classes must be 7 or 8, got {n_classes}")
    per_class = int(per_class)
    if pattern == "class-grey":
        labels = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)
        shape = (len(labels), size, size, 3) if rgb else (len(labels), size, size)
        images = np.empty(shape, np.uint8)
        for i, c in enumerate(labels):
            images[i] = class_grey_level(c)
    else:
        images, labels, _ = make_static(per_class, seed=seed, size=size, rgb=rgb, identity_offset=identity_offset)
        if n_classes == 8:
            extra, extra_labels, _ = make_static(per_class, seed=seed + 7919, size=size, rgb=rgb,
                                                 identity_offset=identity_offset)
            happy = extra[extra_labels == CANONICAL_CLASSES.index("happy")][:per_class]
            images = np.concatenate([images, happy])
            labels = np.concatenate([labels, np.full(len(happy), 7, np.int64)])
    order = np.random.default_rng([int(seed), 0xF01D]).permutation(len(labels))
    return np.ascontiguousarray(images[order]), labels[order].astype(np.int64)


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


def find_split_dirs(root: Path) -> dict[str, Path]:
    """``{"train": ..., "val": ... (optional), "test": ...}`` split folders of an image tree."""
    if not root.is_dir():
        raise DataFormatError(root, "a folder holding train/ and test/ (and optionally val/) image trees",
                              found="no such folder")
    found: dict[str, Path] = {}
    for name in list_dirs(root):
        split = SPLIT_NAMES.get(name.lower())
        if split is None:
            continue
        if split in found:
            raise DataFormatError(root, f"one {split} folder", found=f"both {found[split].name}/ and {name}/")
        found[split] = root / name
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise DataFormatError(
            root, "split folders train/ and test/ (and optionally val|valid|validation/), each with one "
            "folder per class", found=f"no {' or '.join(m + '/' for m in missing)} among {list_dirs(root)[:12]}")
    return found


def class_dirs(split_dir: Path) -> dict[int, Path]:
    """Canonical class id -> class folder of one split; unknown names raise DataFormatError."""
    out: dict[int, Path] = {}
    unknown = []
    for name in list_dirs(split_dir):
        c = canonical_class_of(name)
        if c is None:
            unknown.append(name)
        elif c in out:
            raise DataFormatError(split_dir, f"one folder per class, but {out[c].name}/ and {name}/ are both "
                                  f"{CANONICAL_CLASSES_8[c]!r}")
        else:
            out[c] = split_dir / name
    if unknown:
        raise DataFormatError(split_dir, f"class folders named after emotions (case-insensitive): "
                              f"{accepted_class_names()}", found=f"unknown folder(s) {unknown}")
    if not out:
        raise DataFormatError(split_dir, "one folder per class", found="no class folders")
    return out


@DATASETS.register("imagefolder")
class ImageFolderFER(FERDataModule):
    """A generic ``<root>/<split>/<class>/<image>`` tree (see the module docstring).

    Options (``-d key=value``): ``classes`` (``7`` or ``8``; default: 8 when a contempt folder
    exists, else 7), ``grey`` (decode as grey instead of RGB; default false).
    """

    info = DatasetInfo("static", "generic <root>/{train,val?,test}/<class>/ tree; class folders named after "
                       "emotions (synonyms accepted); val carved from train (stratified, seeded) when absent")
    classes: Sequence[str] = CANONICAL_CLASSES
    default_input_size: ClassVar[int] = 48
    default_in_chans: ClassVar[int] = 3

    def __init__(self, root: str | None = None, *, classes: int | None = None, grey: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.grey = bool(grey)
        self._split_dirs = find_split_dirs(Path(root))
        self._class_dirs = {s: class_dirs(d) for s, d in self._split_dirs.items()}
        has_contempt = any(7 in cd for cd in self._class_dirs.values())
        if classes is None:
            classes = 8 if has_contempt else 7
        if int(classes) not in (7, 8):
            raise UserError(f"classes must be 7 or 8, got {classes!r}")
        if int(classes) == 8 and not has_contempt:
            raise UserError(f"classes=8 needs a contempt folder under {root}/<split>/; none found")
        self.classes = CANONICAL_CLASSES_8 if int(classes) == 8 else CANONICAL_CLASSES

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(val="folder" if "val" in self._split_dirs else "carved from train", grey=self.grey)
        return args

    def build_splits(self) -> dict[str, Dataset | None]:
        out: dict[str, Dataset | None] = {"val": None}
        for split, dirs in self._class_dirs.items():
            paths: list[str] = []
            labels: list[int] = []
            for c, d in sorted(dirs.items()):
                if c >= len(self.classes):
                    continue  # contempt under the 7-class protocol
                files = list_images(d)
                paths += files
                labels += [c] * len(files)
            if not paths:
                raise DataFormatError(self._split_dirs[split], "image files in the class folders", found="none")
            out[split] = ImageListDataset(paths, labels, grey=self.grey)
        return out

    @classmethod
    def synth(cls, root: str, *, per_class: int = 10, seed: int = 0, val: bool = False, contempt: bool = False,
              names: str = "canonical", size: int = 48, rgb: bool = True, ext: str = "jpg",
              pattern: str = "faces", **options: Any) -> None:
        """Write ``per_class`` images per class into ``train/``, ``test/`` (and ``val/``).

        ``names="canonical"`` uses the canonical folder names; ``names="synonyms"`` uses
        capitalised synonyms (``Anger``, ``Disgusted``, ``Fearful``, ``Happiness``, ``Sadness``,
        ``Surprised``, ``Neutral``, ``Contempt``) to exercise the name matching.
        """
        if options:
            raise UserError(f"unknown imagefolder synth option(s): {sorted(options)}")
        folder_names = {
            "canonical": CANONICAL_CLASSES_8,
            "synonyms": ("Anger", "Disgusted", "Fearful", "Happiness", "Sadness", "Surprised", "Neutral", "Contempt"),
        }
        if names not in folder_names:
            raise UserError(f"names must be one of {sorted(folder_names)}, got {names!r}")
        n_classes = 8 if contempt else 7
        splits = ["train"] + (["val"] if val else []) + ["test"]
        for k, split in enumerate(splits):
            images, labels = synth_images(per_class, seed=seed * 10 + k, n_classes=n_classes, size=size, rgb=rgb,
                                          pattern=pattern, identity_offset=40 * k)
            for c in range(n_classes):  # empty classes still get their folder
                (Path(root) / split / folder_names[names][c]).mkdir(parents=True, exist_ok=True)
            for i, (img, c) in enumerate(zip(images, labels)):
                write_image(Path(root) / split / folder_names[names][c] / f"{split}_{i:05d}.{ext}", img)
