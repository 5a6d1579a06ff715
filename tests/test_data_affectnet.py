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

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8
from fer_bench.data import DATASETS
from fer_bench.data import affectnet as af
from fer_bench.data.io import decode_image
from fer_bench.errors import DataFormatError, UserError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import mark_level

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
    with pytest.raises(UserError, match="classes must be one of 7, 8"):
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
