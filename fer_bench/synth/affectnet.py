"""Writer of synthetic AffectNet trees: the CSV release layout or the per-image ``.npy`` layout.

Contempt is drawn as a one-sided lip-corner raise
(:func:`~fer_bench.synth.samples.contempt_style`).  In the CSV layout each face is pasted into a
larger image at a box on a 16-pixel grid and rows with codes 8, 9 and 10 (faces, faces, noise)
are included, to be dropped.  ``mark=True`` stamps a 16x16 block of grey level
:func:`~fer_bench.synth.samples.mark_level` of the class at the top-left of the face (off by
default: it would leak the label).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data.affectnet import AFFECTNET_NAMES, CSV_COLUMNS, IMAGE_DIRS, LISTS_DIR, NPY_SETS, TEST_CSV, TRAIN_CSV
from fer_bench.data.io import write_image
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.geometry import Identity, Pose
from fer_bench.synth.samples import mark_level, render_expression

FACE = 64


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "csv",
          test_per_class: int | None = None, mark: bool = False, **options: Any) -> SynthLayout:
    """Write a synthetic AffectNet tree: ``per_class`` training and ``test_per_class``
    (default ``per_class``) validation images of each code 0-7; the CSV layout adds
    ``max(1, per_class // 3)`` rows of each code 8, 9, 10 per file (dropped when read)."""
    if options:
        raise UserError(f"affectnet synth: unknown option(s) {', '.join(sorted(options))}")
    verify_choice(layout, "layout", ("csv", "npy"), where="affectnet synth")
    per_class = int(per_class)
    test_per_class = per_class if test_per_class is None else int(test_per_class)
    root = Path(root)
    out = SynthLayout(root)
    for split, n in (("train", per_class), ("test", test_per_class)):
        rng = np.random.default_rng([int(seed), 0xAFF, 0 if split == "train" else 1])
        codes = [c for c in range(8) for _ in range(n)]
        if layout == "csv":
            codes += [c for c in (8, 9, 10) for _ in range(max(1, per_class // 3))]
        codes = [codes[i] for i in rng.permutation(len(codes))]
        if layout == "csv":
            _write_csv(root, split, codes, rng, int(seed), mark, out)
        else:
            _write_npy(root, split, codes, rng, int(seed), mark, out)
    return out


def _face(code: int, rng: np.random.Generator, seed: int) -> np.ndarray:
    """RGB ``FACE x FACE`` image of an expression code (10 = Non-Face: a noise texture)."""
    if code == 10:
        img = rng.normal(128, 50, (FACE // 8, FACE // 8, 3))
        return np.clip(cv2.resize(img, (FACE, FACE), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
    name = AFFECTNET_NAMES[code] if code < 8 else str(rng.choice(AFFECTNET_NAMES[:7]))
    ident = Identity.sample(np.random.default_rng([seed, 0xAF1D, int(rng.integers(0, 40))]))
    pose = Pose.sample(rng)
    return render_expression(name, float(rng.uniform(0.5, 1.0)), ident, pose, FACE, True, rng)


def _stamp(img: np.ndarray, x: int, y: int, code: int) -> None:
    level = mark_level(CANONICAL_CLASSES_8.index(AFFECTNET_NAMES[code])) if code < 8 else 245
    img[y:y + 16, x:x + 16] = level


def _valence_arousal(code: int, rng: np.random.Generator) -> tuple[float, float]:
    if code == 10:
        return -2.0, -2.0  # the release's value for non-faces
    return float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))


def _write_csv(root: Path, split: str, codes: list[int], rng: np.random.Generator, seed: int, mark: bool,
               out: SynthLayout) -> None:
    rows = []
    for k, code in enumerate(codes):
        face = _face(code, rng, seed)
        a, b = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        W, H = FACE + 16 * a, FACE + 16 * b
        x, y = 16 * int(rng.integers(0, a + 1)), 16 * int(rng.integers(0, b + 1))
        img = np.clip(rng.normal(rng.uniform(40, 200), 12, (H, W, 3)), 0, 255).astype(np.uint8)
        img[y:y + FACE, x:x + FACE] = face
        if mark:
            _stamp(img, x, y, code)
        digest = hashlib.sha224(f"{seed}/{split}/{k}".encode()).hexdigest()  # 56 hex digits, as in the release
        rel = f"{1 + k % 5}/{digest}.jpg"
        write_image(root / IMAGE_DIRS[0] / rel, img)
        if code < 7:  # codes 8-10 are dropped by the reader, 7 (contempt) by the default 7-class protocol
            out.sample_files.append(root / IMAGE_DIRS[0] / rel)
        pts = np.stack([x + FACE * (0.2 + 0.6 * rng.random(68)), y + FACE * (0.2 + 0.6 * rng.random(68))], axis=1)
        lnd = ";".join(f"{v:.2f}" for v in pts.reshape(-1))
        val, aro = _valence_arousal(code, rng)
        rows.append((rel, x, y, FACE, FACE, lnd, code, f"{val:.6f}", f"{aro:.6f}"))
    path = root / LISTS_DIR / (TRAIN_CSV if split == "train" else TEST_CSV)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        w.writerows(rows)
    out.label_files.append(path)


def _write_npy(root: Path, split: str, codes: list[int], rng: np.random.Generator, seed: int, mark: bool,
               out: SynthLayout) -> None:
    base = root / NPY_SETS[split]
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for k, code in enumerate(codes):
        face = _face(code, rng, seed)
        if mark:
            _stamp(face, 0, 0, code)
        write_image(base / "images" / f"{k}.jpg", face)
        out.sample_files.append(base / "images" / f"{k}.jpg")
        val, aro = _valence_arousal(code, rng)
        ann = base / "annotations"
        np.save(ann / f"{k}_exp.npy", np.array(str(code)))
        np.save(ann / f"{k}_val.npy", np.array(f"{val:.6f}"))
        np.save(ann / f"{k}_aro.npy", np.array(f"{aro:.6f}"))
        np.save(ann / f"{k}_lnd.npy", (FACE * rng.random(136)).astype(np.float32))
        if code < 7:
            out.label_files.append(ann / f"{k}_exp.npy")
