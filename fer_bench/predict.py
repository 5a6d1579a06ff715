"""``fer-bench predict``: a bundle's model on faces in one's own images, folders and videos.

Each input is expanded (a folder: its image and video files, sorted, recursively), read, its faces
found (:func:`fer_bench.data.detect.detect_faces`: boxes and 5 landmarks), each face aligned to the
bundle's template (:func:`fer_bench.data.align.align_face`; a face without landmarks is cropped
around its box) and fed through the bundle's own test-time transform and test-time augmentation.
``detect=False`` takes each image (or frame) whole, as a face crop.

A static model gives one result per face of an image, and per face of every ``every``-th frame of
a video; a dynamic model gives one result per clip of a video: the bundle's frame count, placed
by its test-frame rule (:func:`fer_bench.data.sampling.sample_indices`), each frame cropped to
its largest face.  A video also gets a summary: the mean probabilities of its results.

An input that cannot be read, or that the model cannot take (an image for a video model), is a
:class:`Failure` with one line of reason; the others are still processed.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_bench.bundle import Bundle
from fer_bench.data.video import VIDEO_EXTENSIONS
from fer_bench.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class Result:
    """One prediction: a face of an image or frame, a clip, or a video's summary (``kind``)."""

    input: str
    kind: str  # image, frame, clip, video
    probs: np.ndarray  # in the bundle's class order
    classes: list[str]
    frame: int | None = None  # the frame index (a frame), or the first frame (a clip)
    face: int | None = None  # 0 = the largest face
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in the input's pixels
    score: float | None = None  # the detector's confidence
    n: int | None = None  # a summary: how many results it averages

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    def as_dict(self) -> dict:
        out = {"input": self.input, "kind": self.kind, "frame": self.frame, "face": self.face,
               "x0": None, "y0": None, "x1": None, "y1": None, "detector_score": self.score, "n": self.n,
               "class": self.label}
        if self.box is not None:
            out.update(zip(("x0", "y0", "x1", "y1"), (round(float(v), 1) for v in self.box)))
        out.update({f"p_{c}": round(float(p), 6) for c, p in zip(self.classes, self.probs)})
        return out


@dataclass
class Failure:
    input: str
    reason: str


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; a folder's image and video files, sorted, recursively.  A missing path stays
    in the list (its reading fails and is counted)."""
    out: list[Path] = []
    for given in inputs:
        p = Path(given)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
        else:
            out.append(p)
    return out


def read_image(path: Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB; an unreadable one raises ``ValueError`` with the reason."""
    import cv2

    if not path.is_file():
        raise ValueError("no such file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"not an image OpenCV can decode ({path.stat().st_size} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class Predictor:
    """A bundle's model with its face crop and preprocessing, on a device, in batches."""

    bundle: Bundle
    device: str = "cpu"
    detect: bool = True
    detector: str = "mtcnn"
    min_score: float = 0.9
    batch_size: int = 32
    every: int = 1  # a static model on a video: every N-th frame
    _model: object = field(default=None, repr=False)
    _transform: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._model = self.bundle.model(self.device)
        self._transform = self.bundle.transform()
        p = self.bundle.meta["preprocessing"]
        self.crop_side = int(max(p.get("resize") or 0, p["input_size"], 112))

    # -- faces --------------------------------------------------------------------------------
    def faces(self, image: np.ndarray) -> list[tuple[np.ndarray, tuple | None, float | None]]:
        """(crop, box, detector score) of each face of an RGB image, largest first; the whole image
        without detection."""
        if not self.detect:
            h, w = image.shape[:2]
            return [(image, (0.0, 0.0, float(w), float(h)), None)]
        from fer_bench.data.align import align_face, crop_box
        from fer_bench.data.detect import detect_faces

        crop = self.bundle.meta.get("face_crop") or {}
        out = []
        for f in detect_faces(image, detector=self.detector, min_score=self.min_score):
            if f.landmarks is not None:
                face = align_face(image, f.landmarks, self.crop_side, template=crop.get("template", "arcface-loose"),
                                  margin=float(crop.get("margin", 0.0)))
            else:
                face = crop_box(image, f.box, self.crop_side)
            out.append((face, tuple(float(v) for v in f.box), float(f.score)))
        return out

    # -- the model ----------------------------------------------------------------------------
    def _tensor(self, array: np.ndarray):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(array))
        return t.permute(2, 0, 1) if t.ndim == 3 else t.permute(0, 3, 1, 2)  # HWC -> CHW; THWC -> TCHW

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) of uint8 RGB face crops (H×W×3) or clips (T×H×W×3), in batches."""
        import torch

        out = []
        with torch.inference_mode():
            for at in range(0, len(crops), self.batch_size):
                x = torch.stack([self._transform(self._tensor(c)) for c in crops[at:at + self.batch_size]])
                scores = self._model.test_forward(x.to(self.device))
                out.append(torch.softmax(scores.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.bundle.classes)), np.float32)

    # -- inputs -------------------------------------------------------------------------------
    def image(self, path: Path) -> list[Result]:
        if self.bundle.modality == "dynamic":
            raise ValueError("an image, but the model is a video model (give a video file)")
        found = self.faces(read_image(path))
        if not found:
            raise ValueError("no face found (--no-detect takes the image as a face crop)")
        probs = self.classify([c for c, _, _ in found])
        return [Result(str(path), "image", p, self.bundle.classes, face=i, box=box, score=score)
                for i, ((_, box, score), p) in enumerate(zip(found, probs))]

    def video(self, path: Path) -> list[Result]:
        from fer_bench.data.video import open_video

        try:
            _, vr, n = open_video(path)
        except Exception as e:  # noqa: BLE001  (an unreadable video: the reason in one line)
            raise ValueError(getattr(e, "reason", None) or str(e).splitlines()[0]) from None
        if self.bundle.modality == "dynamic":
            results = self._clip(path, vr, n)
        else:
            results = self._frames(path, vr, n)
        del vr
        if not results:
            raise ValueError("no face found in any frame")
        mean = np.mean([r.probs for r in results], axis=0)
        return [*results, Result(str(path), "video", mean, self.bundle.classes, n=len(results))]

    def _frames(self, path: Path, vr, n: int) -> list[Result]:
        results: list[Result] = []
        for start in range(0, n, self.every * self.batch_size):
            idx = list(range(start, min(n, start + self.every * self.batch_size), self.every))
            frames = vr.get_batch(idx).asnumpy()
            found = [(i, face) for i, frame in zip(idx, frames) for face in enumerate(self.faces(frame))]
            probs = self.classify([crop for _, (_, (crop, _, _)) in found])
            results += [Result(str(path), "frame", p, self.bundle.classes, frame=i, face=k, box=box, score=score)
                        for (i, (k, (_, box, score))), p in zip(found, probs)]
        return results

    def _clip(self, path: Path, vr, n: int) -> list[Result]:
        from fer_bench.data.sampling import sample_indices

        p = self.bundle.meta["preprocessing"]
        idx = sample_indices(n, int(p["frames"]), train=False, eval_frames=p.get("test_frames") or "linspace",
                             short_clips=p.get("short_clips") or "repeat")
        frames = vr.get_batch(sorted(set(int(i) for i in idx))).asnumpy()
        by_index = dict(zip(sorted(set(int(i) for i in idx)), frames))
        crops, boxes, last = [], [], None
        for i in idx:
            found = self.faces(by_index[int(i)])
            if found:
                last = found[0]
            if last is None:
                continue
            crops.append(last[0])
            boxes.append(last[1])
        if not crops:
            return []
        side = self.crop_side
        import cv2

        clip = np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in crops])
        probs = self.classify([clip])[0]
        return [Result(str(path), "clip", probs, self.bundle.classes, frame=int(idx[0]), face=0, box=boxes[0])]

    def run(self, paths: list[Path]) -> Iterator[list[Result] | Failure]:
        """The results of each input, in order, or its failure."""
        for path in paths:
            try:
                if path.suffix.lower() in VIDEO_EXTENSIONS:
                    yield self.video(path)
                elif path.suffix.lower() in IMAGE_EXTENSIONS or not path.suffix:
                    yield self.image(path)
                else:
                    yield Failure(str(path), f"not an image or video file (expected {', '.join(IMAGE_EXTENSIONS)}, "
                                             f"{', '.join(VIDEO_EXTENSIONS)})")
            except ValueError as e:
                yield Failure(str(path), str(e))
            except UserError:
                raise


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str | None) -> str:
    """``device`` (default: :func:`default_device`) if torch can name it and this machine has it; else
    one line naming ``--device`` and what was expected."""
    import torch

    if not device:
        return default_device()
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device}: expected cpu, cuda or cuda:N") from None
    if d.type == "cuda" and (d.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {device}: expected a GPU this machine has ({torch.cuda.device_count()} CUDA "
                        "devices)")
    if d.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def write_results(results: list[Result], out: str | os.PathLike) -> Path:
    """``out`` as csv or json (by its suffix), written atomically."""
    import json

    from fer_bench.files import atomic_write_text

    out = Path(out)
    rows = [r.as_dict() for r in results]
    if out.suffix.lower() == ".json":
        atomic_write_text(out, json.dumps(rows, indent=1) + "\n")
    elif out.suffix.lower() == ".csv":
        import pandas as pd

        atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
    else:
        raise UserError(f"--out {out}: expected a .csv or .json file name")
    return out
