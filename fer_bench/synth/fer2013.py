"""Writer of synthetic FER2013 trees: ``fer2013.csv``, ``icml_face_data.csv`` or the image-folder repackage."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.data.fer2013 import FER2013_FOLDER_CLASSES
from fer_bench.data.fer2013_csv import FER2013_CSV_NAMES, USAGES
from fer_bench.data.io import write_image
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.samples import synth_images


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


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "csv",
          pattern: str = "faces", **options: Any) -> SynthLayout:
    """``per_class`` 48x48 grey faces per class in each of Training / PublicTest / PrivateTest,
    written as ``fer2013.csv`` (``layout=csv``), ``icml_face_data.csv`` (``icml``) or the
    image-folder repackage (``folders``).  The csv layouts hold the images in the label file
    (no sample files); the folder layout has no label file (the labels are folder names)."""
    if options:
        raise UserError(f"unknown fer2013 synth option(s): {sorted(options)}")
    verify_choice(layout, "layout", ("csv", "icml", "folders"), where="fer2013 synth")
    root = Path(root)
    emotion, usage, images = [], [], []
    for k, u in enumerate(USAGES):
        imgs, labels = synth_images(per_class, seed=seed * 10 + k, pattern=pattern, identity_offset=40 * k)
        emotion.append(labels)
        usage += [u] * len(labels)
        images.append(imgs)
    emotion_a, images_a = np.concatenate(emotion), np.concatenate(images)
    if layout in FER2013_CSV_NAMES:
        path = root / FER2013_CSV_NAMES[layout]
        write_fer2013_csv(path, emotion_a, usage, images_a, icml=layout == "icml")
        return SynthLayout(root, [path], [])
    ids = 1000 + 7 * np.random.default_rng(seed).permutation(len(usage))  # ids are not row indices
    for c in FER2013_FOLDER_CLASSES:
        for top in ("train", "test"):
            (root / top / c).mkdir(parents=True, exist_ok=True)
    written = []
    for e, u, img, i in zip(emotion_a, usage, images_a, ids):
        top = "train" if u == "Training" else "test"
        path = root / top / FER2013_FOLDER_CLASSES[int(e)] / f"{u}_{int(i)}.jpg"
        write_image(path, img)
        written.append(path)
    return SynthLayout(root, [], written)
