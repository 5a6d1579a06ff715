"""Procedurally drawn synthetic faces: a seeded, root-free FER dataset with real signal.

Why
---
The suite needs a dataset that needs no download, is identical on every machine, can be
made at any size / resolution / channel count, and on which a model that *sees* a face
beats one that only correlates pixels.  Every image is drawn with OpenCV polygons
(``fillPoly`` / ``polylines`` with sub-pixel anti-aliasing) at ``max(size, 96)`` pixels and,
when smaller, reduced to the requested size with ``cv2.INTER_AREA``.

Identity (:class:`Identity`, fixed per subject)
    face width / height / squareness / jaw taper, skin tone, hair colour / hairline / bald,
    ear size, eye height / spacing / size, iris colour, brow gap / length / thickness /
    arch, nose height / width, mouth height / width, lip thickness / colour, and a *resting
    face*: small subject-specific offsets of brow height, inner-brow, eye opening and mouth
    corners.  A neutral face of one subject can therefore look like a faint sad or angry
    face of another, which is what makes subject-independent splits harder than random ones.

Expression (the 7 canonical classes, :data:`EXPRESSIONS`)
    Each class is a vector over :data:`PARAMS` (brow raise, inner-brow raise, brow knit, eye
    opening, nose wrinkle, nasolabial fold, mouth-corner lift, mouth opening, lip stretch,
    upper-lip raise, lip press, asymmetry), scaled by an intensity in [0, 1]; neutral is the
    zero vector, i.e. intensity 0 of everything.

    ========  ===========================================================================
    angry     brows lowered, inner ends pulled down and together, eyes a little narrowed,
              lips pressed thin and narrow, corners slightly down
    disgust   brows lowered (less than angry), squint, nose wrinkle lines, flared nostrils,
              upper lip raised, one-sided corner raise (random side), folds
    fear      brows raised with inner ends up and drawn together, eyes wide, lips stretched
              sideways, mouth a little open
    happy     mouth corners up (a smile curve), mouth open showing teeth, cheeks raised
              (nasolabial folds, slight squint), lips widened
    sad       inner brow ends raised, lids slightly lowered, corners down, lips a little pressed
    surprise  brows high and arched, forehead lines, eyes very wide, jaw dropped in an O
    neutral   nothing (only the subject's resting face)
    ========  ===========================================================================

    Confusable pairs share parameters on purpose: fear/surprise (raised brows, wide eyes,
    open mouth: they differ in inner-brow / knit vs arch and stretch vs O-shape),
    angry/disgust (lowered brows: they differ in lip press vs nose wrinkle / upper lip),
    sad/neutral (sad is small in amplitude).  Every sample also multiplies each parameter by
    its own factor (~N(1, 0.2)) and adds micro-movement noise, so a class is a cloud.

Nuisances (:class:`Pose`; one per image, fixed per clip up to a small per-frame jitter)
    :class:`Pose` holds the geometry *and* the photometric nuisances (there is no separate
    ``Nuisance`` class): in-plane rotation (sd 8 deg, clipped at 20), scale (0.88-1.12),
    shift (+-6 % of the image), background colour, a lighting gradient of random direction
    and strength, brightness / contrast, Gaussian blur (25 % of images), additive Gaussian
    noise (redrawn every frame), and with probability 0.25 an occluder: a random grey
    (RGB: low-saturation) rectangle or ellipse over part of the face.

Clips (:func:`make_clips`)
    ``T`` frames from neutral through onset to apex: onset frame, onset duration and apex
    intensity are random per clip; 20 % of clips are low intensity (apex 0.2-0.45), the rest
    0.5-1.0.  The per-frame intensity curve (a smoothstep) is returned with the clips.
    Neutral clips keep intensity 0 (only nuisance jitter and noise move).  Static images
    (:func:`make_static`) draw their intensity from U(0.4, 1.0).

Learnable but not trivial
    The signal is a few small, local changes (a 48 px face has ~5 px eyes and a ~16 px
    mouth; a brow or mouth corner moves by 1-2 px at intensity 0.5) that move with pose,
    sit on identity-dependent geometry, colours and resting face, and are partly hidden by
    occluders, blur and noise.  A linear classifier on raw pixels cannot follow a mouth
    corner that moves around the image with rotation, scale and shift; a small CNN can.
    Measured (``tests/test_synthetic.py``; 150/class train, identity-disjoint test, 48 px
    grey, same 12 epochs): logistic regression ~0.31-0.34, 3-conv CNN ~0.70-0.74 (chance
    0.14).
    Low intensities and the shared parameters keep the task below ceiling.

Everything is deterministic given ``seed``: subject ``k`` is drawn from ``(seed, k)`` so a
split can take a disjoint identity range, and each sample from ``(seed, index)``.  The
DataModules derive their split seeds from ``data_seed`` only: the training ``seed`` never
changes the data.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.data.base import CANONICAL_CLASSES, DatasetInfo, FERDataModule
from fer_bench.registry import DATASETS

__all__ = [
    "PARAMS",
    "EXPRESSIONS",
    "Identity",
    "Pose",
    "sample_style",
    "expression_params",
    "render_face",
    "intensity_curve",
    "make_static",
    "make_clips",
    "SyntheticImages",
    "SyntheticClips",
    "SyntheticStatic",
    "SyntheticDynamic",
]

# --------------------------------------------------------------------------------------
# expression parameters
# --------------------------------------------------------------------------------------
PARAMS: tuple[str, ...] = (
    "brow_raise",    # whole brow up (+) / down (-)
    "brow_inner",    # inner brow end up (+, sad/fear) / down (-, angry)
    "brow_knit",     # inner ends pulled together and down
    "eye_open",      # wider (+) / squint (-)
    "nose_wrinkle",  # wrinkle lines on the bridge, nostrils flared and lifted
    "fold",          # nasolabial folds (cheek raise)
    "mouth_corner",  # corners up (+) / down (-)
    "mouth_open",    # jaw drop / lips parted
    "lip_stretch",   # mouth widened (+) / narrowed into an O (-)
    "upper_lip",     # upper lip raised
    "lip_press",     # lips pressed thin
    "asym",          # one corner raised (side chosen per sample)
)
_P = {name: i for i, name in enumerate(PARAMS)}


def _vec(**kw: float) -> np.ndarray:
    v = np.zeros(len(PARAMS), dtype=np.float64)
    for k, x in kw.items():
        v[_P[k]] = x
    return v


#: Apex parameter vector of each canonical class (row = class id of CANONICAL_CLASSES).
EXPRESSIONS: np.ndarray = np.stack([
    _vec(brow_raise=-0.75, brow_inner=-0.8, brow_knit=0.8, eye_open=-0.2, mouth_corner=-0.3,
         lip_stretch=-0.35, lip_press=0.9),                                              # angry
    _vec(brow_raise=-0.55, brow_inner=-0.3, brow_knit=0.45, eye_open=-0.55, nose_wrinkle=1.0,
         fold=0.6, mouth_corner=-0.35, mouth_open=0.15, upper_lip=0.9, asym=0.7),        # disgust
    _vec(brow_raise=0.65, brow_inner=0.7, brow_knit=0.5, eye_open=0.9, mouth_corner=-0.25,
         mouth_open=0.45, lip_stretch=0.9),                                              # fear
    _vec(brow_raise=0.05, eye_open=-0.35, fold=0.9, mouth_corner=1.0, mouth_open=0.4,
         lip_stretch=0.45),                                                              # happy
    _vec(brow_raise=-0.1, brow_inner=0.75, brow_knit=0.3, eye_open=-0.3, mouth_corner=-0.75,
         lip_stretch=-0.1, lip_press=0.25),                                              # sad
    _vec(brow_raise=1.0, brow_inner=0.15, eye_open=1.0, mouth_open=1.0, lip_stretch=-0.4),  # surprise
    _vec(),                                                                              # neutral
])
assert EXPRESSIONS.shape[0] == len(CANONICAL_CLASSES)

_REST_SD = _vec(brow_raise=0.15, brow_inner=0.12, eye_open=0.15, mouth_corner=0.15, lip_press=0.1)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _lerp(a, b, t: float) -> tuple[float, float, float]:
    """Colour between ``a`` and ``b`` (RGB tuples)."""
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _mul(a, k: float) -> tuple[float, float, float]:
    return (a[0] * k, a[1] * k, a[2] * k)


_CIRC: dict[int, np.ndarray] = {}


def _unit_circle(n: int) -> np.ndarray:
    if n not in _CIRC:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        _CIRC[n] = np.stack([np.cos(t), np.sin(t)], 1)
    return _CIRC[n]


# --------------------------------------------------------------------------------------
# identity and pose
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Identity:
    """Everything fixed for one subject.  Lengths are in face units (image half-side = 1)."""

    face_w: float
    face_h: float
    face_k: float        # superellipse exponent: 2 = ellipse, larger = squarer
    jaw_taper: float     # chin narrowing
    skin: tuple[float, float, float]   # RGB 0-255 (grey images use its luminance)
    hair: tuple[float, float, float]
    hairline: float      # y of the hairline (negative = up)
    bald: bool
    ear: float
    eye_y: float
    eye_sep: float       # half-distance between the eye centres
    eye_w: float
    eye_h: float
    iris: tuple[float, float, float]
    brow: tuple[float, float, float]
    brow_gap: float
    brow_len: float
    brow_thick: float
    brow_arch: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    lip: tuple[float, float, float]
    rest: np.ndarray = dataclasses.field(repr=False)     # resting-face offsets over PARAMS
    outline: np.ndarray = dataclasses.field(repr=False)  # face contour [40, 2]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Identity":
        u = lambda lo, hi: _uniform(rng, lo, hi)  # noqa: E731
        skin = _lerp((250, 222, 196), (92, 60, 42), u(0.0, 1.0) ** 1.2)
        skin = tuple(float(np.clip(c * u(0.93, 1.07), 0, 255)) for c in skin)
        hair = _lerp((225, 195, 130), (25, 20, 18), u(0.0, 1.0) ** 0.6)
        if rng.random() < 0.1:  # grey hair
            g = u(140, 200)
            hair = (g, g, g)
        bald = bool(rng.random() < 0.12)
        # brows darker than the skin whatever the hair colour
        brow = _lerp(hair, (20, 16, 14), 0.3) if not bald else _mul(skin, 0.45)
        if sum(brow) > 0.75 * sum(skin):
            brow = _mul(skin, 0.5)
        iris = _lerp((90, 140, 200), (50, 30, 20), u(0.0, 1.0))
        lip = _lerp(_mul(skin, 0.62), (150, 50, 60), u(0.15, 0.35))
        face_w, face_h, face_k, jaw = u(0.5, 0.64), u(0.66, 0.8), u(2.0, 2.9), u(0.0, 0.3)
        c, s = _unit_circle(40).T
        x = face_w * np.sign(c) * np.abs(c) ** (2 / face_k)
        y = face_h * np.sign(s) * np.abs(s) ** (2 / face_k)
        x = np.where(y > 0, x * (1 - jaw * (y / face_h) ** 2), x)
        return cls(
            face_w=face_w, face_h=face_h, face_k=face_k, jaw_taper=jaw,
            skin=skin, hair=hair, hairline=u(-0.52, -0.36), bald=bald,
            ear=u(0.07, 0.12),
            eye_y=u(-0.16, -0.06), eye_sep=u(0.2, 0.27), eye_w=u(0.09, 0.12), eye_h=u(0.045, 0.06),
            iris=iris, brow=brow,
            brow_gap=u(0.1, 0.15), brow_len=u(0.17, 0.24), brow_thick=u(0.035, 0.06),
            brow_arch=u(0.0, 0.04),
            nose_y=u(0.1, 0.17), nose_w=u(0.06, 0.09),
            mouth_y=u(0.32, 0.4), mouth_w=u(0.16, 0.22), lip_thick=u(0.03, 0.05), lip=lip,
            rest=rng.normal(0.0, 1.0, len(PARAMS)) * _REST_SD,
            outline=np.stack([x, y + 0.02], 1),
        )


@dataclass(frozen=True)
class Pose:
    """Geometric pose *and* the photometric nuisances of one image (or of one clip).

    ``angle`` degrees, ``scale`` relative, ``dx``/``dy`` fractions of the image side;
    ``bg`` background RGB; lighting gradient ``light_dir`` (radians) with ``light_gain``
    (relative change across the image); ``brightness`` (added, 0-255 scale) and
    ``contrast`` (multiplied); ``blur`` Gaussian sigma in output pixels (0 = none);
    ``noise`` additive Gaussian sd (0-255 scale); ``occluder`` ``None`` or
    ``(is_ellipse, cx, cy, w, h, angle_deg, r, g, b)`` in face units.
    """

    angle: float
    scale: float
    dx: float
    dy: float
    bg: tuple[float, float, float]
    light_dir: float
    light_gain: float
    brightness: float
    contrast: float
    blur: float
    noise: float
    occluder: tuple | None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Pose":
        u = lambda lo, hi: _uniform(rng, lo, hi)  # noqa: E731
        bgv = u(20, 235)
        bg = tuple(float(np.clip(bgv + rng.normal(0, 25), 0, 255)) for _ in range(3))
        occ = None
        if rng.random() < 0.25:
            g = u(0, 255)
            col = tuple(float(np.clip(g + rng.normal(0, 20), 0, 255)) for _ in range(3))
            occ = (bool(rng.random() < 0.5), u(-0.45, 0.45), u(-0.4, 0.55), u(0.1, 0.28),
                   u(0.1, 0.24), u(-40, 40)) + col
        return cls(
            angle=float(np.clip(rng.normal(0, 8), -20, 20)), scale=u(0.88, 1.12),
            dx=u(-0.06, 0.06), dy=u(-0.06, 0.06), bg=bg,
            light_dir=u(0, 2 * np.pi), light_gain=u(0.0, 0.6),
            brightness=u(-20, 20), contrast=u(0.75, 1.15),
            blur=u(0.3, 0.8) if rng.random() < 0.25 else 0.0,
            noise=u(1.0, 6.0), occluder=occ,
        )

    def jitter(self, rng: np.random.Generator, amount: float = 1.0) -> "Pose":
        """A slightly moved copy (one frame step of a clip)."""
        a = amount
        return dataclasses.replace(
            self,
            angle=self.angle + float(rng.normal(0, 0.35 * a)),
            scale=self.scale * (1 + float(rng.normal(0, 0.004 * a))),
            dx=self.dx + float(rng.normal(0, 0.003 * a)),
            dy=self.dy + float(rng.normal(0, 0.003 * a)),
            light_gain=max(0.0, self.light_gain + float(rng.normal(0, 0.01 * a))),
        )


def sample_style(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample expression variation: (multiplicative factor, additive micro-movement)."""
    mult = np.clip(rng.normal(1.0, 0.2, len(PARAMS)), 0.4, 1.6)
    add = rng.normal(0.0, 0.04, len(PARAMS))
    add[_P["asym"]] = 0.0
    # the side of an asymmetric expression is a sign on the asymmetry factor
    if rng.random() < 0.5:
        mult[_P["asym"]] *= -1
    return mult, add


def expression_params(expression: int, intensity: float, identity: Identity,
                      style: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The drawn parameter vector: resting face + intensity * (class apex * style) + micro."""
    apex = EXPRESSIONS[int(expression)]
    if style is None:
        return identity.rest + float(intensity) * apex
    mult, add = style
    return identity.rest + float(intensity) * apex * mult + add


# --------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------
_SHIFT = 4  # sub-pixel bits of the OpenCV drawing calls
_FIX = float(1 << _SHIFT)
_BEZ: dict[int, np.ndarray] = {}
_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_MOUTH_IN = (45.0, 20.0, 25.0)
_TEETH = (225.0, 222.0, 210.0)
_WHITE = (236.0, 234.0, 228.0)
_PUPIL = (15.0, 12.0, 12.0)


def _grid(r: int) -> tuple[np.ndarray, np.ndarray]:
    if r not in _GRIDS:
        c = (np.arange(r, dtype=np.float32) + 0.5) / r * 2 - 1
        _GRIDS[r] = (np.ascontiguousarray(np.broadcast_to(c[None, :], (r, r))),
                     np.ascontiguousarray(np.broadcast_to(c[:, None], (r, r))))
    return _GRIDS[r]


def _ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 24, rot: float = 0.0) -> np.ndarray:
    pts = _unit_circle(n) * (ax, ay)
    if rot:
        c, s = np.cos(rot), np.sin(rot)
        pts = pts @ np.array([[c, s], [-s, c]])
    return pts + (cx, cy)


def _bezier(p0, p1, p2, n: int = 9) -> np.ndarray:
    """Quadratic curve from ``p0`` to ``p2`` passing through ``p1`` at its middle."""
    w = _BEZ.get(n)
    if w is None:
        t = np.linspace(0, 1, n)
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t ** 2
        w = _BEZ[n] = np.stack([a - 0.5 * b, 2 * b, c - 0.5 * b], 1)
    return w @ np.array((p0, p1, p2), dtype=np.float64)


class _Canvas:
    """Collects face-unit polygons, then draws them all through the pose's affine map."""

    def __init__(self) -> None:
        self.ops: list[tuple[bool, list[np.ndarray], tuple, float]] = []

    def fill(self, c, *polys: np.ndarray) -> None:
        self.ops.append((False, list(polys), c, 0.0))

    def line(self, c, thick: float, *polys: np.ndarray) -> None:
        self.ops.append((True, list(polys), c, thick))

    def render(self, r: int, pose: Pose, rgb: bool) -> np.ndarray:
        a = np.deg2rad(pose.angle)
        s = pose.scale * r / 2
        m = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * (s * _FIX)
        t = np.array([r / 2 + pose.dx * r, r / 2 + pose.dy * r]) * _FIX
        polys = [p for op in self.ops for p in op[1]]
        allp = np.rint(np.concatenate(polys) @ m + t).astype(np.int32)
        bounds = np.cumsum([0] + [len(p) for p in polys])
        if rgb:
            img = np.empty((r, r, 3), np.uint8)
            img[...] = tuple(int(round(v)) for v in pose.bg)
            conv = lambda c: c  # noqa: E731
        else:
            img = np.empty((r, r), np.uint8)
            img[...] = int(round(0.299 * pose.bg[0] + 0.587 * pose.bg[1] + 0.114 * pose.bg[2]))
            conv = lambda c: (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2],)  # noqa: E731
        k = 0
        for is_line, ps, c, thick in self.ops:
            pts = [allp[bounds[k + j]:bounds[k + j + 1]] for j in range(len(ps))]
            k += len(ps)
            if is_line:
                cv2.polylines(img, pts, False, conv(c), max(1, int(round(thick * s))), cv2.LINE_AA, _SHIFT)
            else:
                cv2.fillPoly(img, pts, conv(c), cv2.LINE_AA, _SHIFT)
        return img


def _draw(cv: _Canvas, idt: Identity, p: np.ndarray, pose: Pose) -> None:
    (brow_raise, brow_inner, knit, eye_open, wrinkle, fold, corner, mouth_open, stretch,
     upper_lip, press, asym) = (float(v) for v in p)
    mouth_open = max(0.0, mouth_open)
    wrinkle, fold, upper_lip, press = max(0.0, wrinkle), max(0.0, fold), max(0.0, upper_lip), max(0.0, press)
    skin = idt.skin
    dark = _mul(skin, 0.5)

    # neck, ears, hair, face
    fw, fh = idt.face_w, idt.face_h
    cv.fill(_mul(skin, 0.85), np.array([[-0.22, 0.4], [0.22, 0.4], [0.3, 1.4], [-0.3, 1.4]]))
    cv.fill(_mul(skin, 0.9), _ellipse(-fw * 0.98, 0.0, idt.ear * 0.6, idt.ear, 10),
            _ellipse(fw * 0.98, 0.0, idt.ear * 0.6, idt.ear, 10))
    face = idt.outline.copy()
    low = face[:, 1] > 0.02
    face[low, 1] = 0.02 + (face[low, 1] - 0.02) * (1 + 0.07 * mouth_open)
    if not idt.bald:
        cv.fill(idt.hair, face * 1.06 + (0.0, -0.03))
    cv.fill(skin, face)
    if not idt.bald:
        cap = face[face[:, 1] < idt.hairline]
        if len(cap) >= 3:
            cv.fill(idt.hair, cap * 1.03)

    # forehead lines (raised brows)
    fl = brow_raise - 0.2
    if fl > 0.05:
        yy = idt.eye_y - idt.brow_gap - 0.11
        cv.line(_lerp(skin, dark, min(1.0, 1.2 * fl)), 0.03,
                _bezier((-0.2, yy + 0.01), (0.0, yy - 0.01), (0.2, yy + 0.01), 5),
                _bezier((-0.2, yy - 0.04), (0.0, yy - 0.06), (0.2, yy - 0.04), 5))

    # eyes
    eh = idt.eye_h * min(2.2, max(0.15, 1 + 0.9 * eye_open))
    ir = idt.eye_w * 0.48
    pr = ir * 0.45
    ey, sep, ew = idt.eye_y, idt.eye_sep, idt.eye_w
    cv.fill(_WHITE, _ellipse(-sep, ey, ew, eh, 16), _ellipse(sep, ey, ew, eh, 16))
    cv.fill(idt.iris, _ellipse(-sep, ey, ir, min(ir, eh * 0.95), 12), _ellipse(sep, ey, ir, min(ir, eh * 0.95), 12))
    cv.fill(_PUPIL, _ellipse(-sep, ey, pr, min(pr, eh * 0.9), 8), _ellipse(sep, ey, pr, min(pr, eh * 0.9), 8))
    lid = _unit_circle(16)[8:] * (ew, eh)  # upper half (y < 0)
    lid = np.concatenate([lid, [[ew, 0.0]]])
    cv.line(_mul(skin, 0.35), 0.018, lid + (-sep, ey), lid + (sep, ey))

    # brows
    by = ey - idt.brow_gap - 0.1 * brow_raise
    inner_y = by - 0.09 * brow_inner + 0.03 * knit
    outer_y = by + 0.01
    arch = idt.brow_arch + 0.03 * max(0.0, brow_raise)
    brows = []
    for s in (-1, 1):
        inner_x = s * (sep - idt.brow_len * 0.45 - 0.045 * knit)
        outer_x = s * (sep + idt.brow_len * 0.55)
        mid = (0.5 * (inner_x + outer_x) + s * 0.02, 0.5 * (inner_y + outer_y) - arch)
        brows.append(_bezier((inner_x, inner_y), mid, (outer_x, outer_y), 7))
    cv.line(idt.brow, idt.brow_thick, *brows)
    if knit > 0.3:  # frown lines between the brows
        cv.line(_lerp(skin, dark, min(1.0, knit - 0.3)), 0.03,
                np.array([[-0.025, by], [-0.02, by + 0.06]]), np.array([[0.025, by], [0.02, by + 0.06]]))

    # nose
    ny = idt.nose_y - 0.025 * wrinkle
    nw = idt.nose_w * (1 + 0.3 * wrinkle)
    cv.line(_mul(skin, 0.7), 0.016, _bezier((-nw, ny - 0.01), (0.0, ny + 0.02), (nw, ny - 0.01), 7))
    nr = 0.018 * (1 + 0.6 * wrinkle)
    cv.fill(_mul(skin, 0.45), _ellipse(-nw * 0.5, ny, nr, 0.011, 8), _ellipse(nw * 0.5, ny, nr, 0.011, 8))
    if wrinkle > 0.1:
        yy = ey + 0.01
        cv.line(_lerp(skin, dark, min(1.0, wrinkle)), 0.03,
                *[np.array([[-0.05, yy + 0.04 * j], [0.05, yy + 0.04 * j - 0.005]]) for j in range(2)])

    # mouth
    half = idt.mouth_w * min(1.6, max(0.45, 1 + 0.4 * stretch - 0.2 * press))
    my = idt.mouth_y
    left = (-half, my - 0.1 * corner - 0.045 * max(0.0, asym))
    right = (half, my - 0.1 * corner - 0.045 * max(0.0, -asym))
    gap = 0.22 * mouth_open
    up_y = my - 0.25 * gap - 0.06 * upper_lip
    lo_y = my + 0.75 * gap + 0.02 * max(0.0, corner) * mouth_open
    upper = _bezier(left, (0.0, up_y), right)
    lower = _bezier(left, (0.0, lo_y), right)
    if fold > 0.1:  # nasolabial folds
        mid_y = 0.5 * (ny + my)
        cv.line(_lerp(skin, dark, min(1.0, fold)), 0.03,
                _bezier((-nw * 1.3, ny - 0.03), (-(half + 0.06), mid_y), (left[0] - 0.04, left[1] + 0.01), 6),
                _bezier((nw * 1.3, ny - 0.03), (half + 0.06, mid_y), (right[0] + 0.04, right[1] + 0.01), 6))
    if lo_y - up_y > 0.012:
        cv.fill(_MOUTH_IN, np.concatenate([upper, lower[::-1]]))
        teeth_h = min(0.45 * (lo_y - up_y), 0.05)
        cv.fill(_TEETH, np.concatenate([upper, upper[::-1] + (0.0, teeth_h)]))
    lt = idt.lip_thick * min(1.5, max(0.3, 1 - 0.6 * press))
    cv.line(idt.lip, lt, upper)
    cv.line(idt.lip, lt * 1.3, lower)

    # occluder
    occ = pose.occluder
    if occ is not None:
        is_ell, ox, oy, ow, oh, oa = occ[:6]
        if is_ell:
            pts = _ellipse(ox, oy, ow, oh, 20, np.deg2rad(oa))
        else:
            pts = _ellipse(ox, oy, ow * np.sqrt(2), oh * np.sqrt(2), 4, np.deg2rad(oa) + np.pi / 4)
        cv.fill(tuple(occ[6:9]), pts)


def render_face(expression: int, intensity: float, identity: Identity, pose: Pose, size: int,
                rgb: bool, rng: np.random.Generator, *,
                style: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Draw one face: uint8 ``(size, size)`` grey or ``(size, size, 3)`` RGB.

    ``expression`` is a canonical class id, ``intensity`` in [0, 1] (0 = resting face).
    ``style`` is the per-sample expression variation of :func:`sample_style` (drawn from
    ``rng`` when ``None``); ``rng`` also draws the pixel noise.  Drawn at ``max(size, 96)``
    pixels, then reduced with ``cv2.INTER_AREA``.
    """
    size = int(size)
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if style is None:
        style = sample_style(rng)
    cv = _Canvas()
    _draw(cv, identity, expression_params(expression, intensity, identity, style), pose)
    r = max(size, 96)
    img = cv.render(r, pose, rgb).astype(np.float32)

    # photometry: lighting gradient, contrast / brightness, blur, resize, noise
    gx, gy = _grid(r)
    g = 0.5 * pose.light_gain
    gain = (g * np.cos(pose.light_dir)) * gx + (g * np.sin(pose.light_dir)) * gy
    gain += 1.0
    gain *= pose.contrast
    if rgb:
        gain = gain[..., None]
    img *= gain
    img += 128.0 * (1 - pose.contrast) + pose.brightness
    if pose.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), pose.blur * r / size)
    if r != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if pose.noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(pose.noise)
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


# --------------------------------------------------------------------------------------
# datasets as arrays
# --------------------------------------------------------------------------------------
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
# torch datasets
# --------------------------------------------------------------------------------------
class SyntheticImages(Dataset):
    """Images ``[N,H,W]`` or ``[N,H,W,3]`` -> ``(uint8 tensor [C,H,W], int label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
        if not (len(images) == len(labels) == len(groups)):
            raise ValueError("images, labels and groups must have the same length")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.groups = np.asarray(groups, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.ascontiguousarray(self.images[i]))
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1).contiguous()
        return x, int(self.labels[i])


class SyntheticClips(Dataset):
    """Clips ``[N,T,H,W]`` or ``[N,T,H,W,3]`` -> ``(uint8 tensor [T,C,H,W], int label)``."""

    def __init__(self, clips: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
        if not (len(clips) == len(labels) == len(groups)):
            raise ValueError("clips, labels and groups must have the same length")
        self.clips = clips
        self.labels = np.asarray(labels, dtype=np.int64)
        self.groups = np.asarray(groups, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.ascontiguousarray(self.clips[i]))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
        return x, int(self.labels[i])


# --------------------------------------------------------------------------------------
# DataModules
# --------------------------------------------------------------------------------------
def _split_seed(data_seed: int, split: str) -> int:
    tag = {"train": 0, "val": 1, "test": 2}[split]
    return int(np.random.SeedSequence([int(data_seed), 0x5EED, tag]).generate_state(1)[0])


class _SyntheticBase(FERDataModule):
    requires_root: ClassVar[bool] = False
    #: subjects per split; the ranges are consecutive and therefore disjoint
    split_identities: ClassVar[dict[str, int]] = {"train": 40, "val": 10, "test": 20}

    def __init__(self, root: str | None = None, *, train_per_class: int, val_per_class: int,
                 test_per_class: int, image_size: int | None = None, rgb: bool | None = None,
                 data_seed: int = 1234, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.train_per_class = int(train_per_class)
        self.val_per_class = int(val_per_class)
        self.test_per_class = int(test_per_class)
        self.image_size = int(image_size) if image_size is not None else int(self.input_size)
        self.rgb = bool(rgb) if rgb is not None else self.in_chans == 3
        self.data_seed = int(data_seed)

    def _split_specs(self):
        offset = 0
        for split, n in (("train", self.train_per_class), ("val", self.val_per_class),
                         ("test", self.test_per_class)):
            n_ids = self.split_identities[split]
            yield split, n, _split_seed(self.data_seed, split), n_ids, offset
            offset += n_ids

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(train_per_class=self.train_per_class, val_per_class=self.val_per_class,
                    test_per_class=self.test_per_class, image_size=self.image_size, rgb=self.rgb,
                    data_seed=self.data_seed)
        return args


@DATASETS.register("synthetic-static")
class SyntheticStatic(_SyntheticBase):
    """Seeded synthetic static faces; train/val/test have disjoint subjects."""

    info = DatasetInfo("static", "synthetic faces; identity-disjoint train/val/test; seeded")
    default_input_size = 48
    default_in_chans = 1

    def __init__(self, root: str | None = None, *, train_per_class: int = 300, val_per_class: int = 30,
                 test_per_class: int = 50, image_size: int | None = None, rgb: bool | None = None,
                 data_seed: int = 1234, **kwargs: Any) -> None:
        super().__init__(root, train_per_class=train_per_class, val_per_class=val_per_class,
                         test_per_class=test_per_class, image_size=image_size, rgb=rgb,
                         data_seed=data_seed, **kwargs)

    def build_splits(self) -> dict[str, Dataset | None]:
        out: dict[str, Dataset | None] = {}
        for split, n, seed, n_ids, offset in self._split_specs():
            x, y, g = make_static(n, seed=seed, size=self.image_size, rgb=self.rgb,
                                  n_identities=n_ids, identity_offset=offset)
            out[split] = SyntheticImages(x, y, g)
        return out


@DATASETS.register("synthetic-dynamic")
class SyntheticDynamic(_SyntheticBase):
    """Seeded synthetic clips (neutral -> onset -> apex); disjoint subjects per split."""

    info = DatasetInfo("dynamic", "synthetic faces; identity-disjoint train/val/test; seeded")
    default_input_size = 48
    default_in_chans = 3

    def __init__(self, root: str | None = None, *, train_per_class: int = 40, val_per_class: int = 10,
                 test_per_class: int = 20, frames: int = 16, image_size: int | None = None,
                 rgb: bool | None = None, data_seed: int = 1234, **kwargs: Any) -> None:
        super().__init__(root, train_per_class=train_per_class, val_per_class=val_per_class,
                         test_per_class=test_per_class, image_size=image_size, rgb=rgb,
                         data_seed=data_seed, **kwargs)
        self.frames = int(frames)

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args["frames"] = self.frames
        return args

    def build_splits(self) -> dict[str, Dataset | None]:
        out: dict[str, Dataset | None] = {}
        for split, n, seed, n_ids, offset in self._split_specs():
            x, y, g, _ = make_clips(n, seed=seed, size=self.image_size, rgb=self.rgb, frames=self.frames,
                                    n_identities=n_ids, identity_offset=offset)
            out[split] = SyntheticClips(x, y, g)
        return out
