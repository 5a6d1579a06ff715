"""Face boxes for face crops: OpenCV's Haar frontal-face detector, landmark boxes, square crops,
and faces aligned by the landmarks a dataset ships.

Shared by the readers that crop faces (CK+: boxes; RAF-DB and AffectNet: ``crop=landmarks``, the
5-point alignment of :class:`AlignedFaces`); no dataset layout here.  Landmarks are read from
text files of 68 ``x y`` lines (:func:`parse_landmarks`); 68 iBUG points reduce to the 5 of
:mod:`fer_bench.data.align` by :func:`five_from_68`.  Detections are cached per process by
(path, size, mtime, cascade).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fer_bench.data.align import align_face, template_points
from fer_bench.data.io import ImageListDataset, decode_image, to_chw
from fer_bench.errors import DataFormatError, UnreadableSample, UserError

CENTER_FRACTION = 0.75
LANDMARK_MARGIN = 0.10
HAAR_MAX_SIDE = 320
#: the box meaning "the centred square" (see :func:`crop_face`)
CENTER_BOX = (-1, -1, -1, -1)
#: the template of the readers' landmark alignment (``crop=landmarks``): ``arcface-loose``, because FER
#: crops (RAF-DB's aligned 100x100, AffectNet's) show the whole face, forehead and chin included, which
#: ArcFace's tight crop cuts (see :data:`fer_bench.data.align.LOOSE_FACTOR`)
ALIGN_TEMPLATE = "arcface-loose"


def landmark_box(points: np.ndarray, margin: float = LANDMARK_MARGIN) -> tuple[int, int, int, int]:
    """Square ``(x, y, w, h)`` around the landmarks' bounding box, side ``max(w, h) * (1 + margin)``."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    side = max(x1 - x0, y1 - y0) * (1.0 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = max(1, int(round(side)))
    return int(round(cx - s / 2)), int(round(cy - s / 2)), s, s


def parse_landmarks(path: str | os.PathLike) -> np.ndarray:
    """The 68 ``(x, y)`` AAM points of a landmark file such as CK+'s ``*_landmarks.txt`` (one ``x y``
    pair per line)."""
    path = Path(path)
    text = path.read_text(errors="replace")
    try:
        vals = np.array(text.split(), dtype=np.float64)
    except ValueError:
        bad = next(t for t in text.split() if not _is_float(t))
        raise DataFormatError(path, "68 lines of two numbers (x y)", found=repr(bad)) from None
    if vals.size != 136 or not np.isfinite(vals).all():
        raise DataFormatError(path, "68 landmark points (136 finite numbers, 'x y' per line)",
                              found=f"{vals.size} numbers")
    return vals.reshape(68, 2)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def crop_face(img: np.ndarray, box) -> np.ndarray:
    """Crop ``box = (x, y, w, h)`` shifted inside the image (not truncated); a box with ``w <= 0``
    is the centred square of side ``CENTER_FRACTION * min(H, W)``."""
    H, W = img.shape[:2]
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        s = max(1, int(round(CENTER_FRACTION * min(H, W))))
        x, y, w, h = (W - s) // 2, (H - s) // 2, s, s
    else:
        w, h = min(w, W), min(h, H)
        x, y = min(max(x, 0), W - w), min(max(y, 0), H - h)
    return img[y:y + h, x:x + w]


_DETECTIONS: dict[tuple, tuple[int, int, int, int] | None] = {}


def default_cascade() -> str:
    base = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    return os.path.join(base, "haarcascade_frontalface_default.xml")


def haar_available(cascade: str | None = None) -> bool:
    """True when OpenCV has ``CascadeClassifier`` and the cascade file exists."""
    return getattr(cv2, "CascadeClassifier", None) is not None and os.path.isfile(cascade or default_cascade())


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face cascade: the largest face of a grey image, or ``None``."""

    def __init__(self, cascade: str | None = None) -> None:
        self.cascade = cascade or default_cascade()
        cls = getattr(cv2, "CascadeClassifier", None)
        if cls is None:
            raise UserError(
                f"crop=haar: OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it to opencv-contrib's "
                "xobjdetect); use crop=landmarks with the Landmarks/ folder of the CK+ release, or crop=center")
        if not os.path.isfile(self.cascade):
            raise UserError(f"crop=haar: cascade file {self.cascade} not found (OpenCV 5 wheels ship no cascades); "
                            "pass -d cascade=PATH/haarcascade_frontalface_default.xml")
        self.clf = cls(self.cascade)
        if self.clf.empty():
            raise UserError(f"crop=haar: OpenCV could not load the cascade {self.cascade}")

    def detect(self, grey: np.ndarray) -> tuple[int, int, int, int] | None:
        H, W = grey.shape[:2]
        scale = min(1.0, HAAR_MAX_SIDE / max(H, W))
        small = cv2.resize(grey, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else grey
        m = max(24, min(small.shape[:2]) // 5)
        faces = self.clf.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        if faces is None or len(faces) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda f: f[2] * f[3])
        return tuple(int(round(v / scale)) for v in (x, y, w, h))

    def detect_file(self, path: str) -> tuple[int, int, int, int] | None:
        """Cached per process by (path, size, mtime, cascade); raises UnreadableSample."""
        st = os.stat(path) if os.path.exists(path) else None
        key = (path, st.st_size if st else -1, st.st_mtime_ns if st else -1, self.cascade)
        if key not in _DETECTIONS:
            _DETECTIONS[key] = self.detect(decode_image(path, grey=True))
        return _DETECTIONS[key]


def face_boxes(paths, crop: str, *, landmarks=None, cascade: str | None = None) -> tuple[np.ndarray | None, int]:
    """``(boxes int64 [N, 4] or None, fallbacks)`` of frames for a crop mode.

    ``crop``: ``none`` (no boxes), ``center`` (every box :data:`CENTER_BOX`), ``landmarks``
    (``landmarks(path)`` gives a frame's points or ``None``), ``haar`` (the largest detected
    face).  A frame without landmarks or without a detected face gets the centre box and
    counts as a fallback; an unreadable frame gets the centre box uncounted (the sample is
    skipped and counted when read).
    """
    if crop == "none":
        return None, 0
    n = len(paths)
    boxes = np.tile(np.asarray(CENTER_BOX, np.int64), (n, 1))
    fallbacks = 0
    if crop == "landmarks":
        for i, p in enumerate(paths):
            pts = landmarks(p)
            if pts is None:
                fallbacks += 1
            else:
                boxes[i] = landmark_box(pts)
    elif crop == "haar":
        det = HaarFaceDetector(cascade)
        for i, p in enumerate(paths):
            try:
                box = det.detect_file(p)
            except UnreadableSample:
                continue  # not a fallback: the sample is skipped and counted when read
            if box is None:
                fallbacks += 1
            else:
                boxes[i] = box
    return boxes, fallbacks


class CroppedFrames(ImageListDataset):
    """Grey frames, each cropped by its box (``(-1, -1, -1, -1)`` = centre square; no boxes =
    the whole image); a box is shifted inside the frame, not truncated (see :func:`crop_face`)."""

    def __getitem__(self, i: int):
        img = decode_image(self.paths[i], grey=True)
        if self.boxes is not None:
            img = crop_face(img, self.boxes[i])
            if img.size == 0:
                raise UnreadableSample(self.paths[i], "empty face crop")
        return to_chw(img), int(self.labels[i])


def five_from_68(points: np.ndarray) -> np.ndarray:
    """The 5 points of :mod:`fer_bench.data.align` (subject's right eye, left eye, nose tip, right and
    left mouth corners) of 68 points ``(..., 68, 2)`` in the iBUG 300-W mark-up: the eye centres are the
    means of points 37-42 and 43-48 (1-based), the nose tip point 31, the mouth corners points 49 and 55.

    C. Sagonas, G. Tzimiropoulos, S. Zafeiriou, M. Pantic, "300 Faces in-the-Wild Challenge: The first
    facial landmark localization Challenge", ICCV Workshops 2013 (the 68-point scheme, its Fig. 1).
    """
    p = np.asarray(points, np.float64)
    return np.stack([p[..., 36:42, :].mean(-2), p[..., 42:48, :].mean(-2), p[..., 30, :], p[..., 48, :],
                     p[..., 54, :]], axis=-2)


def parse_point_strings(values, n_points: int, sep: str, batch: int = 2048) -> np.ndarray:
    """``float64 [n, n_points, 2]`` of strings of ``2 * n_points`` numbers ``x1<sep>y1<sep>x2...``; a
    string that is not exactly that is a row of NaN (the caller names its line)."""
    text = [str(v) for v in values]
    pts = np.full((len(text), n_points, 2), np.nan)
    ok = np.array([t.count(sep) == 2 * n_points - 1 for t in text], dtype=bool)
    for a in range(0, len(text), batch):  # one split of a batch of well-shaped strings, then row by row
        rows = a + np.flatnonzero(ok[a:a + batch])
        try:
            pts[rows] = np.array(sep.join(text[k] for k in rows).split(sep) if len(rows) else [],
                                 dtype=np.float64).reshape(-1, n_points, 2)
            continue
        except ValueError:
            pass
        for k in rows:  # a field that is not a number: find its row
            try:
                pts[k] = np.array(text[k].split(sep), dtype=np.float64).reshape(n_points, 2)
            except ValueError:
                pass
    return pts


class AlignedFaces(ImageListDataset):
    """RGB images, each warped by its 5 ``landmarks`` (``[N, 5, 2]``, image pixels, in the order of
    :mod:`fer_bench.data.align`) onto ``template`` at ``size x size``
    (:func:`~fer_bench.data.align.align_face`).  ``paths`` is any sequence of paths (a list,
    AffectNet's ``PathTable``) and is not copied."""

    def __init__(self, paths, labels, landmarks: np.ndarray, size: int, *, template: str = ALIGN_TEMPLATE,
                 margin: float = 0.0) -> None:
        template_points(template, margin)  # checked here, not at the first sample
        if len(paths) != len(labels) or len(landmarks) != len(labels):
            raise ValueError("paths, labels and landmarks differ in length")
        self.paths = paths
        self.labels = np.asarray(labels, dtype=np.int64)
        self.landmarks = np.asarray(landmarks, dtype=np.float32).reshape(len(self.labels), 5, 2)
        self.size, self.template, self.margin = int(size), template, float(margin)
        self.grey, self.boxes, self.targets = False, None, None

    def __getitem__(self, i: int):
        img = decode_image(self.paths[i])
        face = align_face(img, self.landmarks[i].astype(np.float64), self.size, template=self.template,
                          margin=self.margin)
        return to_chw(face), int(self.labels[i])
