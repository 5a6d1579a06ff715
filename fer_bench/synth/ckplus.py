"""Writer of synthetic CK+ trees: the official sequence tree or the ``CK+48`` class-folder repackage.

Grey frame sequences rising from a neutral first frame to the apex at the last frame, some
saved as colour PNGs, some without an emotion file, landmark files around the drawn face, and
at least 10 subjects.  Contempt, which the face generator has no class for, is drawn as a
one-sided lip-corner raise (CK+'s contempt criterion is AU 14, unilateral; Lucey et al. 2010,
Table 2).  ``mark=True`` stamps an 8x8 block of grey level
:func:`~fer_bench.synth.samples.mark_level` of the frame's class in the frame's top-left
corner so that tests can check every decoded sample's label against its pixels (off by
default: it would leak the label).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data.ckplus import (
    APEX_FRAMES,
    CK48_DIR,
    CK48_FOLDERS,
    CK_EMOTIONS,
    EMOTION_DIR,
    IMAGES_DIR,
    LANDMARKS_DIR,
    N_FOLDS,
)
from fer_bench.data.io import write_image
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.geometry import Identity, Pose, sample_style
from fer_bench.synth.samples import contempt_style, mark_level, render_expression


def _identity(seed: int, subject: int) -> Identity:
    return Identity.sample(np.random.default_rng([int(seed), 0xC1D, int(subject)]))


def render_sequence(name: str, T: int, identity, rng: np.random.Generator, *, face: int,
                    frame: tuple[int, int] | None = None, keep=None):
    """Frames ``(t, grey image)`` of a posed sequence from neutral (t=0) to the apex (t=T-1).

    With ``frame=(W, H)`` the face square is pasted at a random position of a flat noisy
    background, returned as ``(x0, y0)``; otherwise the face image itself is returned.
    """
    pose = dataclasses.replace(Pose.sample(rng), angle=float(rng.normal(0, 3)), dx=0.0, dy=0.0,
                               scale=float(rng.uniform(0.95, 1.05)), occluder=None, blur=0.0)
    style = contempt_style(rng) if name == "contempt" else sample_style(rng)
    apex = float(rng.uniform(0.75, 1.0))
    keep = set(range(T) if keep is None else keep)
    x0 = y0 = 0
    bg = None
    if frame is not None:
        W, H = frame
        x0, y0 = int(rng.integers(0, W - face + 1)), int(rng.integers(0, H - face + 1))
        bg = int(rng.integers(40, 200))
    out = []
    for t in range(T):
        if t:
            pose = pose.jitter(rng, 0.3)
        if t not in keep:
            continue
        z = t / (T - 1)
        inten = apex * z * z * (3 - 2 * z)  # smoothstep: 0 at the first frame, apex at the last
        img = render_expression(name, inten, identity, pose, face, False, rng, style=style)
        if frame is not None:
            canvas = np.clip(bg + rng.normal(0, 4, (H, W)), 0, 255).astype(np.uint8)
            canvas[y0:y0 + face, x0:x0 + face] = img
            img = canvas
        out.append((t, img))
    return out, (x0, y0)


def face_landmarks(x0: int, y0: int, face: int, rng: np.random.Generator) -> np.ndarray:
    """68 points on an ellipse inside the pasted face square (a stand-in for the AAM points)."""
    a = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = np.stack([x0 + face / 2 + 0.42 * face * np.cos(a), y0 + face / 2 + 0.45 * face * np.sin(a)], axis=1)
    return pts + rng.normal(0, 0.2, pts.shape)


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "official",
          n_subjects: int | None = None, unlabelled: int | None = None, landmarks: bool = True,
          mark: bool = False, **options: Any) -> SynthLayout:
    """Write a synthetic CK+ tree: ``per_class`` labelled sequences per emotion (7 x per_class),
    ``unlabelled`` sequences without emotion file (default ``per_class // 2 + 1``), over
    ``n_subjects`` subjects (default ``min(7 * per_class, max(12, ceil(7 * per_class / 3)))``,
    at least 10).  ``layout=official`` writes 160x120 frame sequences of 8-12 frames (every
    fourth sequence as a colour PNG) with ``Landmarks/`` unless ``landmarks=false``;
    ``layout=ck48`` writes the last 3 frames of each labelled sequence as 48x48 crops.

    ``label_files`` are the emotion files (official) or none (CK+48: labels are folder names);
    ``sample_files`` are the last (labelled, apex) frames first, then every other frame."""
    if options:
        raise UserError(f"ckplus synth: unknown option(s) {', '.join(sorted(options))}")
    verify_choice(layout, "layout", ("official", "ck48"), where="ckplus synth")
    per_class = int(per_class)
    n_labelled = 7 * per_class
    if n_subjects is None:
        n_subjects = min(n_labelled, max(12, math.ceil(n_labelled / 3)))
    n_subjects = int(n_subjects)
    if n_subjects < N_FOLDS or n_subjects > n_labelled:
        raise UserError(f"ckplus synth: needs {N_FOLDS} <= n_subjects <= 7 * per_class (every subject labelled, "
                        f"{N_FOLDS} subject-disjoint folds, so per_class >= 2); got n_subjects={n_subjects}, "
                        f"per_class={per_class}")
    n_unl = per_class // 2 + 1 if unlabelled is None else int(unlabelled)
    if layout == "ck48":
        n_unl = 0
    root = Path(root)
    rng = np.random.default_rng([int(seed), 0xC4])
    plan = [(code, True) for _ in range(per_class) for code in range(1, 8)]
    plan += [(int(rng.integers(1, 8)), False) for _ in range(n_unl)]
    n_seq: dict[int, int] = {}
    label_files: list[Path] = []
    apex_files: list[Path] = []
    other_files: list[Path] = []
    for i, (code, labelled) in enumerate(plan):
        j = i % n_subjects
        n_seq[j] = n_seq.get(j, 0) + 1
        subject, seq = f"S{5 + 5 * j:03d}", f"{n_seq[j]:03d}"
        srng = np.random.default_rng([int(seed), 0xC5, i])
        T = int(srng.integers(8, 13))
        name = CK_EMOTIONS[code]
        ident = _identity(seed, j)
        stem = f"{subject}_{seq}_"
        if layout == "ck48":
            frames, _ = render_sequence(name, T, ident, srng, face=96, keep=range(T - APEX_FRAMES, T))
            for t, img in frames:
                img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
                if mark:
                    img[:8, :8] = mark_level(CANONICAL_CLASSES_8.index(name))
                folder = next(f for f, c in CK48_FOLDERS.items() if c == name)
                path = root / CK48_DIR / folder / f"{stem}{t + 1:08d}.png"
                write_image(path, img)
                (apex_files if t == T - 1 else other_files).append(path)
            continue
        frames, (x0, y0) = render_sequence(name, T, ident, srng, face=96, frame=(160, 120))
        colour = i % 4 == 3
        for t, img in frames:
            level = 245 if not labelled else mark_level(CANONICAL_CLASSES_8.index("neutral" if t == 0 else name))
            if colour:
                g = img.astype(np.float32)
                img = np.clip(np.stack([g * 1.08, g, g * 0.9], axis=-1), 0, 255).astype(np.uint8)  # RGB tint
            if mark:
                img[:8, :8] = level
            fname = f"{stem}{t + 1:08d}"
            path = root / IMAGES_DIR / subject / seq / f"{fname}.png"
            write_image(path, img)
            (apex_files if labelled and t == T - 1 else other_files).append(path)
            if landmarks:
                pts = face_landmarks(x0, y0, 96, srng)
                lp = root / LANDMARKS_DIR / subject / seq / f"{fname}_landmarks.txt"
                lp.parent.mkdir(parents=True, exist_ok=True)
                lp.write_text("".join(f"   {x:.7e}   {y:.7e}\n" for x, y in pts))
        emo_dir = root / EMOTION_DIR / subject / seq
        emo_dir.mkdir(parents=True, exist_ok=True)  # the release has folders for unlabelled sequences too
        if labelled:
            (emo_dir / f"{stem}{T:08d}_emotion.txt").write_text(f"{float(code):16.7e}\n")
            label_files.append(emo_dir / f"{stem}{T:08d}_emotion.txt")
    return SynthLayout(root, label_files, apex_files + other_files)
