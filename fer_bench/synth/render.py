"""Drawing one synthetic face with OpenCV polygons (the renderer behind every synthetic image).

Polygons in face units go through the pose's affine map at ``max(size, 96)`` pixels with
sub-pixel anti-aliasing, then photometry (lighting gradient, contrast, blur, noise) and an
``INTER_AREA`` reduction to the requested size.  See :mod:`fer_bench.synth.geometry` for the
design of identities, expressions and nuisances.
"""
from __future__ import annotations

import cv2
import numpy as np

from fer_bench.synth.geometry import Identity, Pose, _lerp, _mul, _unit_circle, expression_params, sample_style

__all__ = ["render_face"]


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
    fw = idt.face_w
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
