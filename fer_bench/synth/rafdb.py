"""Writer of synthetic RAF-DB trees: the official ``basic`` layout or the Kaggle repackage."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_bench.data.io import write_image
from fer_bench.data.rafdb import CANONICAL_TO_RAF, LABEL_FILE, MANUAL_DIR
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.samples import synth_images

#: the 5 points (eye centres, nose tip, mouth corners; image left to right) of the renderer's face in
#: face units (the image's half side is 1; :class:`fer_bench.synth.geometry.Identity`): the middle of
#: ``Identity.sample``'s ranges of ``eye_sep``, ``eye_y``, ``nose_y``, ``mouth_w``, ``mouth_y``
MEAN_FACE_POINTS = np.array([[-0.235, -0.11], [0.235, -0.11], [0.0, 0.135], [-0.19, 0.36], [0.19, 0.36]])


def frontal_points(size: int) -> np.ndarray:
    """:data:`MEAN_FACE_POINTS` in the pixels of a ``size x size`` face drawn frontal and centred
    (``Pose`` angle 0, scale 1, no shift): drawn at ``r = max(size, 96)`` pixels, then resized."""
    r = max(int(size), 96)
    return (MEAN_FACE_POINTS * r / 2 + r / 2 + 0.5) * size / r - 0.5


def write_manual(path: Path, points: np.ndarray, k: int) -> None:
    """A ``<name>_manu_attri.txt``: the 5 points as ``x<TAB>y`` lines, then gender, race and age codes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{x:.3f}\t{y:.3f}" for x, y in points] + [str(k % 3), str(k % 3), str(k % 5)]
    path.write_text("\n".join(lines) + "\n")


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "basic", size: int = 100,
          pattern: str = "faces", **options: Any) -> SynthLayout:
    """``per_class`` RGB faces per class in train and in test, in the official layout
    (``layout=basic``: label file + ``Image/aligned`` + ``Image/original``, the original
    being the aligned face with a 20-pixel reflected border, + ``Annotation/manual/<name>_manu_attri.txt``
    with the 5 points of the mean face drawn frontal (:func:`frontal_points`; the drawn faces vary
    around them by identity and pose), shifted by the border) or the Kaggle one."""
    if options:
        raise UserError(f"unknown rafdb synth option(s): {sorted(options)}")
    verify_choice(layout, "layout", ("basic", "kaggle"), where="rafdb synth")
    root = Path(root)
    points = frontal_points(size) + 20  # in the original: the 20-pixel border
    lines: list[str] = []
    label_files, samples = [], []
    for k, split in enumerate(("train", "test")):
        images, labels = synth_images(per_class, seed=seed * 10 + k, size=size, rgb=True, pattern=pattern,
                                      identity_offset=40 * k)
        width = 5 if split == "train" else 4  # train_00001.jpg / test_0001.jpg as in the release
        rows = []
        for i, (img, c) in enumerate(zip(images, labels)):
            stem = f"{split}_{i + 1:0{width}d}"
            raf = CANONICAL_TO_RAF[int(c)]
            if layout == "basic":
                aligned = root / "basic" / "Image" / "aligned" / f"{stem}_aligned.jpg"
                original = root / "basic" / "Image" / "original" / f"{stem}.jpg"
                write_image(aligned, img)
                write_image(original, cv2.copyMakeBorder(img, 20, 20, 20, 20, cv2.BORDER_REFLECT))
                samples += [aligned, original]
                write_manual(root / "basic" / MANUAL_DIR / f"{stem}_manu_attri.txt", points, i)
                lines.append(f"{stem}.jpg {raf}\n")
            else:
                path = root / "DATASET" / split / str(raf) / f"{stem}_aligned.jpg"
                write_image(path, img)
                samples.append(path)
                rows.append(f"{stem}_aligned.jpg,{raf}\n")
        if layout == "kaggle":
            for raf in range(1, 8):
                (root / "DATASET" / split / str(raf)).mkdir(parents=True, exist_ok=True)
            (root / f"{split}_labels.csv").write_text("image,label\n" + "".join(rows))
            label_files.append(root / f"{split}_labels.csv")
    if layout == "basic":
        (root / "basic" / "EmoLabel").mkdir(parents=True, exist_ok=True)
        (root / "basic" / LABEL_FILE).write_text("".join(lines))
        label_files.append(root / "basic" / LABEL_FILE)
    return SynthLayout(root, label_files, samples)
