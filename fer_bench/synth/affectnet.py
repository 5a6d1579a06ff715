"""Writer of synthetic AffectNet trees: the CSV release layout or the per-image ``.npy`` layout.

Contempt is drawn as a one-sided lip-corner raise
(:func:`~fer_bench.synth.samples.contempt_style`).  In the CSV layout each face is pasted into a
larger image at a box on a 16-pixel grid and rows with codes 8, 9 and 10 (faces, faces, noise)
are included, to be dropped; ``facial_landmarks`` holds the 68 iBUG 300-W points of the drawn
face (:func:`ibug68`: the identity's eyes, brows, nose, mouth and an elliptic jaw, under the drawn
pose; the mouth at rest, whatever the expression), within half a pixel.  ``mark=True`` stamps a 16x16 block of grey level
:func:`~fer_bench.synth.samples.mark_level` of the class at the top-left of the face (off by
default: it would leak the label).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from types import SimpleNamespace
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
#: a face of the middle of ``Identity.sample``'s ranges, drawn frontal: the landmarks of a Non-Face row
MEAN_FACE = SimpleNamespace(face_w=0.57, face_h=0.73, eye_y=-0.11, eye_sep=0.235, eye_w=0.105, eye_h=0.0525,
                            brow_gap=0.125, brow_len=0.205, nose_y=0.135, nose_w=0.075, mouth_y=0.36, mouth_w=0.19)
FRONTAL = SimpleNamespace(angle=0.0, scale=1.0, dx=0.0, dy=0.0)


def ibug68(idt) -> np.ndarray:
    """68 points ``(68, 2)`` of an :class:`~fer_bench.synth.geometry.Identity` in face units, in the iBUG
    300-W order (1-17 jaw, 18-27 brows, 28-36 nose with 31 its tip, 37-42 and 43-48 the eyes, 49-68 the
    mouth with its corners 49 and 55; the subject's right, the image's left, first)."""
    t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([idt.face_w * np.cos(t), 0.02 + idt.face_h * np.sin(t)], 1)
    bx = np.linspace(idt.eye_sep + 0.55 * idt.brow_len, idt.eye_sep - 0.45 * idt.brow_len, 5)  # outer -> inner
    by = np.full(5, idt.eye_y - idt.brow_gap)
    brows = np.concatenate([np.stack([-bx, by], 1), np.stack([bx[::-1], by], 1)])
    bridge = np.stack([np.zeros(4), np.linspace(idt.eye_y, idt.nose_y, 4)], 1)
    nostrils = np.stack([np.linspace(-idt.nose_w, idt.nose_w, 5), np.full(5, idt.nose_y + 0.02)], 1)
    ring = np.array([[-1, 0], [-1 / 3, -1], [1 / 3, -1], [1, 0], [1 / 3, 1], [-1 / 3, 1]]) * (idt.eye_w, idt.eye_h)
    eyes = np.concatenate([ring + (-idt.eye_sep, idt.eye_y), ring + (idt.eye_sep, idt.eye_y)])
    a12, a8 = np.arange(12) * np.pi / 6, np.arange(8) * np.pi / 4  # from the image-left corner, over the top
    outer = np.stack([-idt.mouth_w * np.cos(a12), idt.mouth_y - 0.04 * np.sin(a12)], 1)
    inner = np.stack([-0.8 * idt.mouth_w * np.cos(a8), idt.mouth_y - 0.01 * np.sin(a8)], 1)
    return np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])


def to_pixels(points: np.ndarray, pose, size: int) -> np.ndarray:
    """Face-unit points in the pixels of a ``size x size`` face drawn with ``pose``
    (:mod:`fer_bench.synth.render`: drawn at ``max(size, 96)`` pixels, then resized)."""
    r = max(int(size), 96)
    a = np.deg2rad(pose.angle)
    m = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * (pose.scale * r / 2)
    t = np.array([r / 2 + pose.dx * r, r / 2 + pose.dy * r])
    return (points @ m + t + 0.5) * size / r - 0.5


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


def _face(code: int, rng: np.random.Generator, seed: int):
    """(RGB ``FACE x FACE`` image of an expression code, its 68 landmarks in its pixels); 10 = Non-Face: a
    noise texture, with the landmarks of the mean face."""
    if code == 10:
        img = rng.normal(128, 50, (FACE // 8, FACE // 8, 3))
        img = np.clip(cv2.resize(img, (FACE, FACE), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
        return img, to_pixels(ibug68(MEAN_FACE), FRONTAL, FACE)
    name = AFFECTNET_NAMES[code] if code < 8 else str(rng.choice(AFFECTNET_NAMES[:7]))
    ident = Identity.sample(np.random.default_rng([seed, 0xAF1D, int(rng.integers(0, 40))]))
    pose = Pose.sample(rng)
    img = render_expression(name, float(rng.uniform(0.5, 1.0)), ident, pose, FACE, True, rng)
    return img, to_pixels(ibug68(ident), pose, FACE)


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
        face, marks = _face(code, rng, seed)
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
        # +-0.5 px of annotation noise (two draws, as many as every earlier version made, so later draws are unchanged)
        pts = marks + (x, y) + np.stack([rng.random(68) - 0.5, rng.random(68) - 0.5], axis=1)
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
        face, _ = _face(code, rng, seed)
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
