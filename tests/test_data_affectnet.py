"""AffectNet parsers (original CSV release and the .npy repackage) on synthetic trees."""
from __future__ import annotations

import csv
import gc
import json
import os
import shutil
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8
from fer_bench.data import DATASETS
from fer_bench.data import affectnet as af
from fer_bench.data.io import decode_image
from fer_bench.errors import DataFormatError, UserError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import mark_level

from conftest import eye_discs_photo

PER_CLASS = 3
# written out here, independently of the parser: AffectNet code -> canonical name
CODE_TO_NAME = {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry", 7: "contempt"}
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"


@pytest.fixture(scope="module")
def csv_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affectnet_csv")
    write_layout("affectnet", str(root), per_class=PER_CLASS, seed=0, layout="csv", mark=True)
    return root


@pytest.fixture(scope="module")
def npy_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affectnet_npy")
    write_layout("affectnet", str(root), per_class=PER_CLASS, seed=0, layout="npy", mark=True)
    return root


def make(root, **kw):
    return DATASETS.get("affectnet")(str(root), **kw)


def csv_rows(root: Path, name: str) -> dict[str, dict[str, str]]:
    with open(root / "Manually_Annotated_file_lists" / name, newline="") as f:
        return {r["subDirectory_filePath"]: r for r in csv.DictReader(f)}


def stamp(x) -> float:
    """Mean of the inside of the 16x16 class stamp at the face's top-left (JPEG-robust)."""
    return float(x[:, 2:14, 2:14].float().mean())


@pytest.mark.parametrize("n_classes", [7, 8])
def test_csv_counts_labels_and_box_crop(csv_tree, n_classes):
    dm = make(csv_tree, classes=n_classes)
    assert dm.classes == (CANONICAL_CLASSES if n_classes == 7 else CANONICAL_CLASSES_8)
    splits = dm.build_splits()
    assert splits["val"] is None and dm.layout_used == "csv"
    img_dir = csv_tree / "Manually_Annotated_Images"
    for split, name in (("train", "training.csv"), ("test", "validation.csv")):
        ds, rows = splits[split], csv_rows(csv_tree, name)
        assert len(ds) == n_classes * PER_CLASS
        assert Counter(dm.classes[k] for k in ds.labels) == {c: PER_CLASS for c in dm.classes}
        dropped = {8: 1, 9: 1, 10: 1} | ({7: PER_CLASS} if n_classes == 7 else {})
        assert dm.dropped[split] == dropped
        for i in range(len(ds)):
            rel = os.path.relpath(ds.paths[i], img_dir)
            row = rows[rel]
            assert dm.classes[ds.labels[i]] == CODE_TO_NAME[int(row["expression"])]
            x, y = ds[i]
            assert x.shape == (3, int(row["face_height"]), int(row["face_width"]))  # the box, not the image
            full = decode_image(ds.paths[i])
            assert full.shape[0] > x.shape[1] or full.shape[1] > x.shape[2]
            assert abs(stamp(x) - mark_level(CANONICAL_CLASSES_8.index(dm.classes[y]))) < 6
    assert dm.protocol_args()["classes"] == n_classes


def test_npy_counts_and_labels(npy_tree):
    for n_classes in (7, 8):
        dm = make(npy_tree, classes=n_classes)
        splits = dm.build_splits()
        assert dm.layout_used == "npy"
        for split, folder in (("train", "train_set"), ("test", "val_set")):
            ds = splits[split]
            assert len(ds) == n_classes * PER_CLASS
            assert Counter(dm.classes[k] for k in ds.labels) == {c: PER_CLASS for c in dm.classes}
            for i in range(len(ds)):
                path = Path(ds.paths[i])
                assert path.parent == npy_tree / folder / "images"
                code = int(str(np.load(npy_tree / folder / "annotations" / f"{path.stem}_exp.npy")))
                assert dm.classes[ds.labels[i]] == CODE_TO_NAME[code]
                x, y = ds[i]
                assert x.shape == (3, 64, 64)
                assert abs(stamp(x) - mark_level(CANONICAL_CLASSES_8.index(dm.classes[y]))) < 6
    assert af.read_exp_npy(npy_tree / "train_set" / "annotations" / "0_exp.npy") in range(8)


def _write_list(root: Path, name: str, lines: list[str]) -> Path:
    d = root / "Manually_Annotated_file_lists"
    d.mkdir(parents=True, exist_ok=True)
    (root / "Manually_Annotated_Images").mkdir(exist_ok=True)
    p = d / name
    p.write_text(HEADER + "".join(lines))
    return p


def test_codes_8_to_10_dropped_and_bad_rows_named(tmp_path):
    lines = [f"1/{c:056x}.jpg,1,2,30,40,1.0;2.0,{c},0.1,-0.2\n" for c in range(11)]
    p = _write_list(tmp_path, "training.csv", lines * 2)
    rel, boxes, labels, dropped = af.read_csv_index(p, 7)
    assert list(labels) == [CANONICAL_CLASSES.index(CODE_TO_NAME[c]) for c in range(7)] * 2
    assert dropped.tolist() == [0] * 7 + [2, 2, 2, 2]
    assert boxes.tolist() == [[1, 2, 30, 40]] * 14 and rel[0] == b"1/" + b"0" * 56 + b".jpg"
    rel, boxes, labels, dropped = af.read_csv_index(p, 8)
    assert list(labels) == [CANONICAL_CLASSES_8.index(CODE_TO_NAME[c]) for c in range(8)] * 2
    assert dropped.tolist() == [0] * 8 + [2, 2, 2]
    for bad, line, what in (("11", 4, "expression code 0-10"), ("abc", 4, "expression code 0-10"),
                            ("", 4, "expression code 0-10")):
        rows = lines[:2] + [f"1/x.jpg,1,2,30,40,1.0,{bad},0,0\n"] + lines[2:]
        p = _write_list(tmp_path, "training.csv", rows)
        with pytest.raises(DataFormatError) as e:
            af.read_csv_index(p)
        assert e.value.line == line and what in str(e.value) and str(p) in str(e.value)
    p = _write_list(tmp_path, "training.csv", lines[:3] + ["1/y.jpg,1,two,30,40,1.0,3,0,0\n"])
    with pytest.raises(DataFormatError, match="integer face_x") as e:
        af.read_csv_index(p)
    assert e.value.line == 5
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match="header") as e:
        af.read_csv_index(p)
    assert e.value.line == 1
    with pytest.raises(DataFormatError, match="train_set"):
        make(tmp_path / "nothing_here", layout="npy").build_splits()
    with pytest.raises(UserError, match="classes: expected one of 7, 8"):
        make(tmp_path, classes=6)


def test_balanced_sampler_draws_classes_uniformly(tmp_path):
    counts = {0: 600, 1: 1500, 2: 150, 3: 80, 4: 40, 5: 30, 6: 100}  # codes, very imbalanced like the release
    lines = [f"{c}/{c:04d}{k:052x}.jpg,0,0,10,10,0;0,{c},0,0\n" for c, n in counts.items() for k in range(n)]
    _write_list(tmp_path, "training.csv", lines)
    _write_list(tmp_path, "validation.csv", [f"t/{c}.jpg,0,0,10,10,0;0,{c},0,0\n" for c in range(7)])
    dm = make(tmp_path, sampler="balanced", seed=3)
    dm.setup()
    labels = dm.splits["train"].labels
    n = len(labels)
    sampler = dm.train_dataloader().sampler
    assert type(sampler).__name__ == "WeightedRandomSampler" and len(sampler) == n
    draws = np.concatenate([np.fromiter(iter(sampler), np.int64) for _ in range(2)])  # two epochs, ~4000 draws
    assert len(draws) == 2 * n > 4000
    freq = np.bincount(labels[draws], minlength=7) / len(draws)
    assert np.all(np.abs(freq - 1 / 7) < 0.025), freq
    fresh = make(tmp_path, sampler="balanced", seed=3)
    fresh.setup()
    again = np.fromiter(iter(fresh.train_dataloader().sampler), np.int64)
    assert np.array_equal(again, draws[:n])  # seeded: the same draws for the same seed
    plain = make(tmp_path, seed=3)
    plain.setup()
    loader = plain.train_dataloader()
    assert type(loader.sampler).__name__ == "RandomSampler"
    draws = np.concatenate([np.fromiter(iter(loader.sampler), np.int64) for _ in range(2)])
    freq = np.bincount(labels[draws], minlength=7) / len(draws)
    assert np.allclose(freq, np.bincount(labels, minlength=7) / n)  # the imbalance as is: 50x
    assert freq[CANONICAL_CLASSES.index("happy")] / freq[CANONICAL_CLASSES.index("disgust")] > 40
    assert dm.protocol_args()["sampler"] == "balanced" and plain.protocol_args()["sampler"] == "uniform"


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
    except (OSError, StopIteration):
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def test_index_of_290k_rows_is_lazy_and_bounded(tmp_path):
    block = [f"{1 + i % 1000}/{i:056x}.jpg,{i % 97},{i % 89},{100 + i % 50},{100 + i % 50},"
             + ";".join(["123.45"] * 20) + f",{i % 11},0.5,-0.25\n" for i in range(1000)]
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    (tmp_path / "Manually_Annotated_Images").mkdir()  # empty: no image is ever opened
    (lists / "training.csv").write_text(HEADER + "".join(block) * 290)
    (lists / "validation.csv").write_text(HEADER + "".join(block[:110]))
    gc.collect()
    rss_ok = _reset_peak_rss()
    rss0 = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        dm = make(tmp_path, classes=8)
        splits = dm.build_splits()
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    hwm = _status_kib("VmHWM")
    train = splits["train"]
    assert len(train) == 290 * sum(1 for i in range(1000) if i % 11 < 8)
    assert len(splits["test"]) == sum(1 for i in range(110) if i % 11 < 8)
    assert train.paths[0] == str(tmp_path / "Manually_Annotated_Images" / "1" / f"{0:056x}.jpg")
    last_kept = max(i for i in range(1000) if i % 11 < 8)
    assert train.paths[len(train) - 1].endswith(f"{1 + last_kept}/{last_kept:056x}.jpg")
    assert train.boxes[1].tolist() == [1, 1, 101, 101] and train.boxes.dtype == np.int32
    assert isinstance(train.paths, af.PathTable) and train.paths.rel.dtype.kind == "S"
    assert dm.dropped["train"] == {c: 290 * sum(1 for i in range(1000) if i % 11 == c) for c in (8, 9, 10)}
    msg = f"indexing 290,000 rows: tracemalloc peak {traced_peak / 2**20:.0f} MiB"
    if rss_ok and rss0 and hwm:
        msg += f", peak RSS growth {(hwm - rss0) / 1024:.0f} MiB"
        assert (hwm - rss0) * 1024 < 2**30
    print(msg)
    assert traced_peak < 2**30


def test_zero_byte_and_corrupt_images_skipped_and_counted(csv_tree, tmp_path):
    from fer_bench.data.check import check_dataset

    root = tmp_path / "af"
    shutil.copytree(csv_tree, root)
    dm = make(root)
    splits = dm.build_splits()
    empty, corrupt = Path(splits["train"].paths[0]), Path(splits["test"].paths[1])
    empty.write_bytes(b"")
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 10)
    report = check_dataset("affectnet", str(root))
    problems = sorted((p["split"], p["file"], p["problem"]) for p in report["problems"])
    assert problems == [("test", str(corrupt), "unreadable"), ("train", str(empty), "zero-byte")]
    assert sum(report["counts"]["test"].values()) == 7 * PER_CLASS  # still indexed, skipped when read
    dm.setup()
    item = dm.splits["test"][1]
    assert item[0] is None and str(corrupt) in item[3]


@pytest.mark.parametrize("layout,data_args,n_classes",
                         [("csv", {"classes": 8}, 8), ("npy", {"sampler": "balanced"}, 7)])
def test_one_epoch_writes_metrics(layout, data_args, n_classes, request, tmp_path):
    from fer_bench.train import TrainConfig, run

    root = request.getfixturevalue(f"{layout}_tree")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(TrainConfig(method="resnet18_pretrained", dataset="affectnet", root=str(root), max_epochs=1, limit_per_class=3,
                        batch_size=8, progress=False, out=str(tmp_path / "run"), data_args=data_args))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_test"] == n_classes * min(3, PER_CLASS)
    assert len(metrics["classes"]) == n_classes and metrics["skipped_files"] == []
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert f"sampler: {data_args.get('sampler', 'uniform')}" in config and f"layout: {layout}" in config


# -- crop=landmarks: aligned by the csv's 68 facial_landmarks ---------------------------------------------
def _as_68(five: np.ndarray) -> np.ndarray:
    """68 iBUG points whose eye rings (37-42, 43-48) surround the given eye centres, nose tip (31) and mouth
    corners (49, 55) are the given ones; the rest on the nose."""
    ring = np.array([[-6, 0], [-2, -3], [2, -3], [6, 0], [2, 3], [-2, 3]], float)
    pts = np.tile(five[2], (68, 1))
    pts[36:42], pts[42:48], pts[48], pts[54] = five[0] + ring, five[1] + ring, five[3], five[4]
    return pts


def _landmark_row(rel: str, pts68, code: int = 1) -> str:
    return f"{rel},10,10,100,100,{';'.join(f'{v:.2f}' for v in np.ravel(pts68))},{code},0.1,-0.2\n"


def test_landmark_alignment_levels_the_eyes(tmp_path):
    from fer_bench.data.align import alignment_matrix, template_points
    from fer_bench.data.faces import five_from_68
    from fer_bench.data.io import write_image

    img, five = eye_discs_photo(angle=-25.0)
    write_image(tmp_path / "Manually_Annotated_Images" / "1" / "a.jpg", img)
    for name in ("training.csv", "validation.csv"):
        _write_list(tmp_path, name, [_landmark_row("1/a.jpg", _as_68(five))])
    assert np.allclose(five_from_68(_as_68(five)), five)
    dm = make(tmp_path, crop="landmarks", input_size=112)
    train = dm.build_splits()["train"]
    assert np.allclose(train.landmarks[0], five, atol=0.01)
    M = alignment_matrix(train.landmarks[0], 112, template="arcface-loose")
    assert np.allclose(np.c_[five, np.ones(5)] @ M.T, template_points("arcface-loose") * 112, atol=0.02)
    x, y = train[0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 112, 112)
    import cv2

    dark = (x.float().mean(0).numpy() < 50).astype(np.uint8)
    n, _, stats, cents = cv2.connectedComponentsWithStats(dark)
    two = sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:2]
    eyes = cents[sorted(two, key=lambda k: cents[k, 0])]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5  # level, though the face in the photo is turned by 25 degrees
    assert np.allclose(eyes, template_points("arcface-loose")[:2] * 112, atol=0.5)  # on the template's eyes
    assert tuple(make(tmp_path).build_splits()["train"][0][0].shape) == (3, 100, 100)  # the face box, by default


def test_malformed_landmarks_name_file_and_line(tmp_path):
    good = _as_68(np.array([[40.0, 50], [70, 50], [55, 65], [45, 80], [65, 80]]))
    rows = [_landmark_row(f"1/{k}.jpg", good, code=k % 7) for k in range(6)]
    bad_rows = {"135 numbers": ";".join(["1.0"] * 135), "a word": ";".join(["1.0"] * 67 + ["abc"] + ["1.0"] * 68),
                "empty": "", "nan": ";".join(["nan"] * 136),
                "one eye": ";".join(f"{v:.1f}" for v in np.ravel(_as_68(np.array([[40.0, 50], [40, 50], [55, 65],
                                                                                       [45, 80], [65, 80]]))))}
    for what, lnd in bad_rows.items():
        p = _write_list(tmp_path, "training.csv", rows[:3] + [f"1/x.jpg,10,10,100,100,{lnd},3,0,0\n"] + rows[3:])
        with pytest.raises(DataFormatError) as e:
            af.read_csv_index(p, landmarks=True)
        assert e.value.path == str(p) and e.value.line == 5 and "facial_landmarks" in str(e.value), what
        assert len(af.read_csv_index(p)) == 4  # the column is not read without crop=landmarks
    p = _write_list(tmp_path, "training.csv", rows + [f"1/x.jpg,10,10,100,100,{bad_rows['empty']},9,0,0\n"])
    rel, boxes, labels, dropped, five = af.read_csv_index(p, landmarks=True)  # a dropped row's landmarks: unread
    assert five.shape == (6, 5, 2) and five.dtype == np.float32 and dropped[9] == 1
    _write_list(tmp_path, "validation.csv", rows)
    with pytest.raises(DataFormatError, match="line 8"):
        _write_list(tmp_path, "training.csv", rows + [f"1/x.jpg,10,10,100,100,{bad_rows['a word']},2,0,0\n"])
        make(tmp_path, crop="landmarks").build_splits()


def test_crop_option_checked_and_recorded(csv_tree, npy_tree):
    with pytest.raises(UserError, match="crop"):
        make(csv_tree, crop="haar")
    plain = make(csv_tree)
    assert plain.protocol_args()["crop"] == "box" and "align" not in plain.protocol_args()
    dm = make(csv_tree, crop="landmarks")
    assert (dm.protocol_args()["crop"], dm.protocol_args()["align"]) == ("landmarks", "arcface-loose+0")
    npy = make(npy_tree)
    npy.build_splits()
    assert npy.protocol_args()["crop"] == "none"  # the repackage's images are crops already
    with pytest.raises(UserError, match="layout=csv"):
        make(npy_tree, crop="landmarks").build_splits()


def test_landmark_aligned_datamodule_end_to_end(csv_tree):
    """The synthetic csv's landmarks (68 points of the drawn face, inside its box) read by the DataModule with
    crop=landmarks: setup and one training batch of the input size."""
    from fer_bench.data.faces import five_from_68

    rows = csv_rows(csv_tree, "training.csv")
    for row in rows.values():
        pts = np.array(row["facial_landmarks"].split(";"), float).reshape(68, 2)
        x, y, w, h = (int(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
        assert np.all((pts >= (x, y)) & (pts <= (x + w, y + h)))
        eyes = five_from_68(pts)[:2]
        assert eyes[0, 0] < eyes[1, 0]  # the subject's right eye on the image's left
    dm = make(csv_tree, crop="landmarks", input_size=64, batch_size=4, num_workers=0)
    dm.setup("fit")
    batch, labels, idx, skipped = next(iter(dm.train_dataloader()))
    assert tuple(batch.shape) == (4, 3, 64, 64) and batch.dtype == torch.float32 and skipped == []
    assert dm.protocol_args()["crop"] == "landmarks"
