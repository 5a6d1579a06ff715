"""Expression geometry of the synthetic faces: parameters, identities, poses and nuisances.

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

import numpy as np

from fer_bench.classes import CANONICAL_CLASSES

__all__ = ["PARAMS", "EXPRESSIONS", "Identity", "Pose", "sample_style", "expression_params"]

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
    def sample(cls, rng: np.random.Generator) -> Identity:
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
    def sample(cls, rng: np.random.Generator) -> Pose:
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

    def jitter(self, rng: np.random.Generator, amount: float = 1.0) -> Pose:
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

