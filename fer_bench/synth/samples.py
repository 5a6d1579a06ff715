"""Seeded sets of synthetic faces and clips as arrays (identities, labels, intensity curves).

Subject ``k`` is drawn from ``(seed, k)`` so a split can take a disjoint identity range, and
each sample from ``(seed, index)``: everything is deterministic given ``seed``.
"""
from __future__ import annotations

import numpy as np

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.errors import UserError
from fer_bench.synth.geometry import PARAMS, Identity, Pose, _uniform, sample_style
from fer_bench.synth.render import render_face

__all__ = ["make_static", "intensity_curve", "make_clips", "synth_images", "class_grey_level", "mark_level",
           "contempt_style", "render_expression"]


def _identities(seed: int, n_identities: int, identity_offset: int) -> list[Identity]:
    return [Identity.sample(np.random.default_rng([int(seed), 0x1D, identity_offset + k]))
            for k in range(n_identities)]


def _assignment(n_per_class: int, seed: int, n_identities: int, tag: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled labels (exactly ``n_per_class`` each) and balanced identity slots."""
    if n_per_class < 0 or n_identities < 1:
        raise ValueError("n_per_class must be >= 0 and n_identities >= 1")
    rng = np.random.default_rng([int(seed), tag])
    n = n_per_class * len(CANONICAL_CLASSES)
    labels = rng.permutation(np.repeat(np.arange(len(CANONICAL_CLASSES)), n_per_class))
    ids = np.empty(n, np.int64)
    reps = max(1, -(-n_per_class // n_identities))
    for c in range(len(CANONICAL_CLASSES)):  # every class spread evenly over random subjects
        pos = np.flatnonzero(labels == c)
        ids[pos] = np.concatenate([rng.permutation(n_identities) for _ in range(reps)])[:len(pos)]
    return labels.astype(np.int64), ids


def make_static(n_per_class: int, *, seed: int, size: int = 48, rgb: bool = False,
                n_identities: int = 40, identity_offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static faces: images uint8 ``[N,H,W]`` / ``[N,H,W,3]``, labels int64, identity ids int64.

    ``N = 7 * n_per_class`` in shuffled order; identities are ``identity_offset + k`` for
    ``k < n_identities``, drawn from ``(seed, id)``; intensities ~ U(0.4, 1.0).
    """
    idts = _identities(seed, n_identities, identity_offset)
    labels, slots = _assignment(n_per_class, seed, n_identities, 1)
    n = len(labels)
    out = np.empty((n, size, size, 3) if rgb else (n, size, size), np.uint8)
    for i in range(n):
        rng = np.random.default_rng([int(seed), 2, i])
        pose = Pose.sample(rng)
        inten = _uniform(rng, 0.4, 1.0)
        out[i] = render_face(int(labels[i]), inten, idts[slots[i]], pose, size, rgb, rng)
    return out, labels, slots + identity_offset


def intensity_curve(frames: int, rng: np.random.Generator, neutral: bool = False) -> np.ndarray:
    """Per-frame intensity: 0 until a random onset, smoothstep rise to a random apex, hold.

    20 % of clips are low intensity (apex in [0.2, 0.45]), the rest in [0.5, 1.0].
    """
    low = rng.random() < 0.2
    apex = _uniform(rng, 0.2, 0.45) if low else _uniform(rng, 0.5, 1.0)
    t = np.arange(frames, dtype=np.float64)
    if neutral or frames < 2:
        return np.zeros(frames, np.float32)
    t0 = _uniform(rng, 1.0, max(1.0, 0.45 * (frames - 1)))
    dur = _uniform(rng, 0.15, 0.45) * (frames - 1)
    dur = max(1.0, min(dur, frames - 1 - t0))
    z = np.clip((t - t0) / dur, 0.0, 1.0)
    return (apex * z * z * (3 - 2 * z)).astype(np.float32)


def make_clips(n_per_class: int, *, seed: int, size: int = 48, rgb: bool = True, frames: int = 16,
               n_identities: int = 40, identity_offset: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dynamic clips: uint8 ``[N,T,H,W]`` / ``[N,T,H,W,3]``, labels, identity ids, intensity ``[N,T]``.

    Identity, pose and nuisances are fixed per clip up to a small per-frame random walk;
    the expression rises from neutral to a random apex (see :func:`intensity_curve`).
    """
    idts = _identities(seed, n_identities, identity_offset)
    labels, slots = _assignment(n_per_class, seed, n_identities, 3)
    n = len(labels)
    clips = np.empty((n, frames, size, size, 3) if rgb else (n, frames, size, size), np.uint8)
    inten = np.empty((n, frames), np.float32)
    neutral = CANONICAL_CLASSES.index("neutral")
    for i in range(n):
        rng = np.random.default_rng([int(seed), 4, i])
        pose = Pose.sample(rng)
        style = sample_style(rng)
        inten[i] = intensity_curve(frames, rng, neutral=int(labels[i]) == neutral)
        for t in range(frames):
            if t:
                pose = pose.jitter(rng)
            clips[i, t] = render_face(int(labels[i]), float(inten[i, t]), idts[slots[i]], pose, size, rgb,
                                      rng, style=style)
    return clips, labels, slots + identity_offset, inten


# --------------------------------------------------------------------------------------
# images of dataset writers
# --------------------------------------------------------------------------------------
SYNTH_PATTERNS = ("faces", "class-grey")


def variable_length_clips(per_class: int, *, seed: int, size: int, min_frames: int, max_frames: int,
                          tag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """RGB clips of ``max_frames`` frames, a random length in ``[min_frames, max_frames]`` for each
    (for :func:`resample_clip`), and the generator ``[seed, tag]`` that drew the lengths, which
    the layout writer goes on using (folds, splits): ``(clips, labels, lengths, rng)``."""
    if not 1 <= int(min_frames) <= int(max_frames):
        raise UserError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    clips, labels, _, _ = make_clips(int(per_class), seed=int(seed), size=int(size), rgb=True, frames=int(max_frames))
    rng = np.random.default_rng([int(seed), tag])
    lengths = rng.integers(int(min_frames), int(max_frames) + 1, size=len(labels))
    return clips, labels, lengths, rng


def resample_clip(clip: np.ndarray, length: int) -> np.ndarray:
    """``length`` frames spread evenly over ``clip`` (rounded indices; frames repeat when longer)."""
    sel = np.floor(np.linspace(0, len(clip) - 1, int(length)) + 0.5).astype(np.int64)
    return clip[sel]


def class_grey_level(canonical_class: int) -> int:
    """Grey level of a ``pattern="class-grey"`` synthetic image: ``30 * class`` (0..210)."""
    return 30 * int(canonical_class)


def mark_level(canonical8_class: int) -> int:
    """Grey level ``20 + 25 * class`` (20..195) of a ``mark=True`` stamp; 245 marks unlabelled frames."""
    return 20 + 25 * int(canonical8_class)


def synth_images(per_class: int, *, seed: int, n_classes: int = 7, size: int = 48, rgb: bool = False,
                 pattern: str = "faces", identity_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` synthetic images of each canonical class: (uint8 images, canonical labels).

    ``pattern="faces"`` draws faces with :func:`make_static`; class 7 (contempt, which the face
    generator does not draw) takes the generator's *happy* faces of an independent seed (a
    one-sided smile is the closest drawn expression).  ``pattern="class-grey"`` makes uniform
    images of grey level :func:`class_grey_level` so that a test can check the label of every
    decoded sample against its pixels.  The order is shuffled (seeded).
    """
    from fer_bench.errors import verify_choice

    verify_choice(pattern, "pattern", SYNTH_PATTERNS)
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


def contempt_style(rng: np.random.Generator):
    """Per-sample style turning the generator's disgust apex into contempt: only its one-sided
    lip-corner raise (AU 14 unilateral, CK+'s contempt criterion) is kept, on a random side."""
    mult = np.zeros(len(PARAMS))
    mult[PARAMS.index("asym")] = 2.2 if rng.random() < 0.5 else -2.2
    add = rng.normal(0.0, 0.04, len(PARAMS))
    add[PARAMS.index("asym")] = 0.0
    return mult, add


def render_expression(name: str, intensity: float, identity, pose, size: int, rgb: bool,
                      rng: np.random.Generator, style=None) -> np.ndarray:
    """A synthetic face of a canonical-8 class name (contempt via :func:`contempt_style`)."""
    if name == "contempt":
        expr = CANONICAL_CLASSES.index("disgust")
        style = style if style is not None else contempt_style(rng)
    else:
        expr = CANONICAL_CLASSES.index(name)
    return render_face(expr, intensity, identity, pose, size, rgb, rng, style=style)
