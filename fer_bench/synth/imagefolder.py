"""Writer of synthetic ``imagefolder`` trees: ``<root>/<split>/<class-name>/<image>``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data.io import write_image
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.samples import synth_images

FOLDER_NAMES: dict[str, tuple[str, ...]] = {
    "canonical": CANONICAL_CLASSES_8,
    "synonyms": ("Anger", "Disgusted", "Fearful", "Happiness", "Sadness", "Surprised", "Neutral", "Contempt"),
}


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, val: bool = False, contempt: bool = False,
          names: str = "canonical", size: int = 48, rgb: bool = True, ext: str = "jpg",
          pattern: str = "faces", **options: Any) -> SynthLayout:
    """Write ``per_class`` images per class into ``train/``, ``test/`` (and ``val/``).

    ``names="canonical"`` uses the canonical folder names; ``names="synonyms"`` uses
    capitalised synonyms (``Anger``, ``Disgusted``, ``Fearful``, ``Happiness``, ``Sadness``,
    ``Surprised``, ``Neutral``, ``Contempt``) to exercise the name matching.  The labels are
    the folder names: the layout has no label file.
    """
    if options:
        raise UserError(f"unknown imagefolder synth option(s): {sorted(options)}")
    verify_choice(names, "names", sorted(FOLDER_NAMES), where="imagefolder synth")
    n_classes = 8 if contempt else 7
    splits = ["train"] + (["val"] if val else []) + ["test"]
    root = Path(root)
    written = []
    for k, split in enumerate(splits):
        images, labels = synth_images(per_class, seed=seed * 10 + k, n_classes=n_classes, size=size, rgb=rgb,
                                      pattern=pattern, identity_offset=40 * k)
        for c in range(n_classes):  # empty classes still get their folder
            (root / split / FOLDER_NAMES[names][c]).mkdir(parents=True, exist_ok=True)
        for i, (img, c) in enumerate(zip(images, labels)):
            path = root / split / FOLDER_NAMES[names][c] / f"{split}_{i:05d}.{ext}"
            write_image(path, img)
            written.append(path)
    return SynthLayout(root, [], written)
