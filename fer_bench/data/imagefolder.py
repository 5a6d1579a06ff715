"""``imagefolder``: any ``<root>/<split>/<class-name>/<image>`` tree (class folders named after emotions).

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
training (:func:`fer_bench.data.splits.stratified_split`).  Only the image files directly in a
class folder are read (``.jpg .jpeg .png .bmp .tif .tiff .webp .pgm .ppm``; hidden files and
other extensions such as ``Thumbs.db`` are ignored).  A zero-byte or undecodable image is a
skipped-and-counted :class:`~fer_bench.errors.UnreadableSample`, never a crash.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8
from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.data.io import ImageListDataset, list_dirs, list_images
from fer_bench.errors import DataFormatError, UserError, verify_choice
from fer_bench.registry import DATASETS

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

def canonical_class_of(folder_name: str) -> int | None:
    """Canonical class id of a class-folder name (synonyms, any case), or ``None``."""
    return CLASS_SYNONYMS.get(folder_name.strip().lower())


def accepted_class_names() -> str:
    by_class: dict[int, list[str]] = {}
    for name, c in CLASS_SYNONYMS.items():
        by_class.setdefault(c, []).append(name)
    return "; ".join(f"{CANONICAL_CLASSES_8[c]}: {'/'.join(names)}" for c, names in sorted(by_class.items()))


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
        verify_choice(int(classes), "classes", (7, 8), where="imagefolder")
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
