"""Face alignment: a similarity transform of 5 landmarks onto a named template, and square box crops.

The 5 points are in the order of :attr:`fer_bench.data.detect.Face.landmarks`: the subject's
right eye, the subject's left eye, the nose tip, the subject's right mouth corner, the subject's
left mouth corner (for a frontal face: eyes and mouth corners from the image's left to its right).

**How a bundle names a crop rule.**  An aligned crop is fully described by the template's name
and the margin (plus the output size): ``{"template": "arcface-loose", "margin": 0.0}``, written
``arcface-loose+0`` where one string is needed (:func:`crop_rule`).  A box crop (no landmarks,
e.g. the Haar detector) is ``box+0.2``: :func:`crop_box` with ``margin=0.2``.
"""
from __future__ import annotations

import cv2
import numpy as np

from fer_bench.errors import UserError, verify_choice

#: InsightFace's 5-point template of its 112x112 ArcFace alignment (``arcface_dst`` in
#: deepinsight/insightface, ``python-package/insightface/utils/face_align.py``), divided by 112.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]]) / 112.0

#: ``arcface-loose``: the ArcFace points scaled by this factor about the image centre.  ArcFace's
#: crop is tight (it cuts the forehead above the brows and the chin); FER crops (RAF-DB's aligned
#: 100x100, AffectNet's, FER2013's 48x48) show the whole face with the forehead and the chin, which
#: carry expression (brow raise, jaw drop), and a little background.  With 0.8 the whole forehead is
#: in and the chin sits about a tenth of the side above the bottom edge (skimage's astronaut, frontal).
LOOSE_FACTOR = 0.8


def _scaled(points: np.ndarray, factor: float) -> np.ndarray:
    """``points`` (unit square) scaled by ``factor`` about the centre ``(0.5, 0.5)``."""
    return 0.5 + (points - 0.5) * factor


#: name -> (5, 2) points in the unit square, in the order of ``Face.landmarks``
TEMPLATES: dict[str, np.ndarray] = {
    "arcface": ARCFACE_112,
    "arcface-loose": _scaled(ARCFACE_112, LOOSE_FACTOR),
}


def crop_rule(template: str, margin: float = 0.0) -> str:
    """The one-string name of an aligned crop rule, e.g. ``arcface-loose+0.1`` (checked)."""
    template_points(template, margin)
    return f"{template}+{margin:g}"


def template_points(template: str = "arcface", margin: float = 0.0) -> np.ndarray:
    """The template's (5, 2) points in the unit square, shrunk toward the centre by ``margin``
    (a fraction: 0.1 scales them by 0.9, so the crop shows 1/0.9 as much around the face)."""
    verify_choice(template, "template", TEMPLATES)
    if not 0.0 <= margin < 1.0:
        raise UserError(f"margin must be in [0, 1), got {margin!r}")
    return _scaled(TEMPLATES[template], 1.0 - margin)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation; no reflection) that maps the
    points ``src`` (N, 2) onto ``dst`` (N, 2) in the least-squares sense.

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    IEEE TPAMI 13(4), 1991 (the closed form; the sign fix of its eq. 39-40 keeps a rotation).
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("the source points coincide: no similarity transform")
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        d[-1] = -1.0
    R = U @ np.diag(d) @ Vt
    scale = (S * d).sum() / var_s
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def alignment_matrix(landmarks: np.ndarray, size: int, *, template: str = "arcface", margin: float = 0.0) -> np.ndarray:
    """The 2x3 transform :func:`align_face` applies: image pixels -> aligned ``size x size`` pixels."""
    return similarity_transform(landmarks, template_points(template, margin) * size)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, *, template: str = "arcface",
               margin: float = 0.0) -> np.ndarray:
    """``image`` (H x W or H x W x C uint8) warped so that the 5 ``landmarks`` land on the
    template's points x ``size``: a ``size x size (x C)`` image, bilinear, borders replicated."""
    M = alignment_matrix(landmarks, size, template=template, margin=margin)
    return cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def padded_crop(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, *, border: str = "replicate") -> np.ndarray:
    """``image[y0:y1, x0:x1]`` for any integer rectangle, also one past the image's edges: the
    pixels outside are the nearest edge pixel (``border="replicate"``) or 0 (``"zero"``)."""
    H, W = image.shape[:2]
    if border == "replicate":
        rows = np.clip(np.arange(y0, y1), 0, H - 1)
        cols = np.clip(np.arange(x0, x1), 0, W - 1)
        return image[rows[:, None], cols[None, :]]
    out = np.zeros((max(0, y1 - y0), max(0, x1 - x0)) + image.shape[2:], image.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    return out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``size x size``: area averaging when shrinking, bilinear when enlarging."""
    shrink = image.shape[0] > size or image.shape[1] > size
    out = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape((size, size) + image.shape[2:])  # OpenCV drops a single channel axis


def crop_box(image: np.ndarray, box, size: int, *, margin: float = 0.2) -> np.ndarray:
    """The square centred on ``box = (x0, y0, x1, y1)`` with side ``max(w, h) * (1 + margin)``,
    borders replicated where it leaves the image, resized to ``size x size (x C)``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1.0 + margin))))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - side / 2))
    return resize_square(padded_crop(image, left, top, left + side, top + side), size)
