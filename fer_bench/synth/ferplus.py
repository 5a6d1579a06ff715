"""Writer of synthetic FERPlus trees: ``fer2013.csv`` + ``fer2013new.csv``, or the ``label.csv`` folders."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.data.fer2013_csv import USAGE_SPLIT, USAGES
from fer_bench.data.ferplus import CANONICAL_TO_FERPLUS, FERPLUS_FOLDERS, FERPLUS_HEADER
from fer_bench.data.io import write_image
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.fer2013 import write_fer2013_csv
from fer_bench.synth.samples import synth_images

#: vote rows the reference drops in majority mode, written at the start of every split
SPECIAL_VOTES = (
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face (empty name)
    [4, 4, 2, 0, 0, 0, 0, 0, 0, 0],   # no majority
    [4, 0, 0, 0, 0, 0, 0, 0, 6, 0],   # majority unknown
)


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "csv",
          pattern: str = "faces", **options: Any) -> SynthLayout:
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
    verify_choice(layout, "layout", ("csv", "folders"), where="ferplus synth")
    root = Path(root)
    rows = []  # (usage, fer2013 emotion, image, votes, is_face)
    for k, u in enumerate(USAGES):
        imgs, labels = synth_images(per_class, seed=seed * 10 + k, n_classes=8, pattern=pattern,
                                    identity_offset=40 * k)
        for j, sv in enumerate(SPECIAL_VOTES):
            rows.append((u, 6, np.full((48, 48), 250, np.uint8), list(sv), j != 0))
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
        return SynthLayout(root, [root / "fer2013new.csv", root / "fer2013.csv"], [])
    label_files, written = [], []
    for split, folder in FERPLUS_FOLDERS.items():
        d = root / "data" / folder
        d.mkdir(parents=True, exist_ok=True)
        usage = {v: k for k, v in USAGE_SPLIT.items()}[split]
        with open(d / "label.csv", "w", newline="\n") as f:
            for r, name in zip(rows, names):
                if r[0] != usage or not name:
                    continue
                write_image(d / name, r[2])
                written.append(d / name)
                f.write(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, r[3])) + "\n")
        label_files.append(d / "label.csv")
    return SynthLayout(root, label_files, written)
