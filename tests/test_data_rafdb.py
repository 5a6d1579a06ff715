"""RAF-DB basic: official layout (aligned / original images), Kaggle repackage, compound rejection."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data import DATASETS
from fer_bench.data import rafdb as R
from fer_bench.data.check import check_dataset
from fer_bench.errors import DataFormatError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import class_grey_level

from conftest import eye_discs_photo

C = {name: i for i, name in enumerate(CANONICAL_CLASSES)}


def _levels(ds, size: int) -> tuple[np.ndarray, np.ndarray]:
    xs = [ds[i][0] for i in range(len(ds))]
    assert all(x.dtype == torch.uint8 and tuple(x.shape) == (3, size, size) for x in xs)
    return np.array([float(x.float().mean()) for x in xs]), np.asarray(ds.labels)


def test_label_mapping_is_the_published_one():
    # 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
    assert R.RAF_TO_CANONICAL == {1: C["surprise"], 2: C["fear"], 3: C["disgust"], 4: C["happy"], 5: C["sad"],
                                  6: C["angry"], 7: C["neutral"]}


@pytest.mark.parametrize("layout, images, size", [("basic", "aligned", 100), ("basic", "original", 140),
                                                  ("kaggle", "aligned", 100)])
def test_synth_read_back(tmp_path, layout, images, size):
    """3 per class in train and test; every decoded image's grey level encodes its canonical class."""
    write_layout("rafdb", str(tmp_path), per_class=3, seed=2, layout=layout, pattern="class-grey")
    dm = DATASETS.get("rafdb")(str(tmp_path), images=images)
    splits = dm.build_splits()
    assert dm.resolved_layout == layout and splits["val"] is None
    for split in ("train", "test"):
        means, labels = _levels(splits[split], size)
        assert np.bincount(labels, minlength=7).tolist() == [3] * 7
        for c in range(7):
            assert np.all(np.abs(means[labels == c] - class_grey_level(c)) <= 2), (split, c)
    assert all(Path(p).name.startswith("test_") for p in splits["test"].paths)
    suffix = "_aligned.jpg" if images == "aligned" else ".jpg"
    assert all(p.endswith(suffix) for p in splits["train"].paths)
    dm.setup()  # no validation split: one is carved from train (10 %, at least one per class)
    assert dm.split_sizes() == {"train": 14, "val": 7, "test": 21}
    assert set(dm.splits["val"].labels.tolist()) == set(range(7))
    assert dm.protocol_args()["images"] == images


def test_official_file_format_and_labels(tmp_path):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    label_file = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    assert lines[0].split()[0] == "train_00001.jpg" and lines[7].split()[0] == "test_0001.jpg"
    # label text -> canonical, line by line
    names, labels = R.read_partition_file(label_file)
    for line, name, lab in zip(lines, names, labels):
        raf = int(line.split()[1])
        assert name == line.split()[0] and lab == R.RAF_TO_CANONICAL[raf]
    # --root may be basic/ itself
    assert len(R.RAFDB(str(tmp_path / "basic")).build_splits()["test"]) == 7


def test_compound_subset_is_rejected(tmp_path):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    label_file = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[4] = "train_00005.jpg 9"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        R.RAFDB(str(tmp_path)).build_splits()
    assert ei.value.path == str(label_file) and ei.value.line == 5
    assert "compound" in str(ei.value) and "label 9" in str(ei.value)


@pytest.mark.parametrize("bad, found", [("train_00005.jpg 0", "'0'"), ("train_00005.jpg", "''"),
                                        ("train_00005.jpg 3 1", "saw 3"), ("img_00005.jpg 3", "img_00005")])
def test_bad_label_lines(tmp_path, bad, found):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    label_file = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[4] = bad
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        R.RAFDB(str(tmp_path)).build_splits()
    assert ei.value.path == str(label_file) and ei.value.line == 5 and found in str(ei.value)


def test_kaggle_label_disagreeing_with_folder(tmp_path):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, layout="kaggle", pattern="class-grey")
    csv = tmp_path / "test_labels.csv"
    lines = csv.read_text().splitlines()
    name, lab = lines[3].split(",")
    lines[3] = f"{name},{int(lab) % 7 + 1}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        R.RAFDB(str(tmp_path)).build_splits()
    assert ei.value.path == str(csv) and ei.value.line == 4 and f"DATASET/test/{lab}/" in str(ei.value)
    csv.write_text("img,emotion\n")
    with pytest.raises(DataFormatError) as ei:
        R.RAFDB(str(tmp_path), layout="kaggle").build_splits()
    assert ei.value.line == 1 and "image,label" in str(ei.value)


def test_kaggle_root_may_be_dataset_folder(tmp_path):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, layout="kaggle", pattern="class-grey")
    dm = R.RAFDB(str(tmp_path / "DATASET"))
    assert len(dm.build_splits()["train"]) == 7 and dm.resolved_layout == "kaggle"


@pytest.mark.parametrize("layout", ["basic", "kaggle"])
def test_corrupt_and_empty_images_are_reported(tmp_path, capsys, layout):
    from fer_bench.cli import main

    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, layout=layout)
    dm = R.RAFDB(str(tmp_path))
    train = dm.build_splits()["train"]
    garbage, empty = Path(train.paths[0]), Path(train.paths[1])
    garbage.write_bytes(b"\x00\x01garbage" * 50)
    empty.write_bytes(b"")
    report = check_dataset("rafdb", str(tmp_path))
    assert {p["file"]: p["problem"] for p in report["problems"]} == {str(garbage): "unreadable",
                                                                     str(empty): "zero-byte"}
    capsys.readouterr()
    assert main(["data", "check", "rafdb", "--root", str(tmp_path), "--json"]) == 1
    js = json.loads(capsys.readouterr().out)
    assert {p["file"] for p in js["problems"]} == {str(garbage), str(empty)}


def test_cli_check_compound_exits_nonzero(tmp_path, capsys):
    from fer_bench.cli import main

    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    label_file = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text().replace(" 7\n", " 11\n", 1))
    capsys.readouterr()
    assert main(["data", "check", "rafdb", "--root", str(tmp_path), "--json"]) == 1
    out = capsys.readouterr()
    err = json.loads(out.out)["error"]
    assert err.startswith(f"{label_file}, line ") and "compound" in err and str(label_file) in out.err


@pytest.mark.parametrize("layout", ["kaggle"])  # the default basic layout: tests/test_datasets.py
def test_train_one_epoch(tmp_path, layout):
    from fer_bench.train import TrainConfig, run

    write_layout("rafdb", str(tmp_path / "d"), per_class=4, seed=0, layout=layout, size=48)
    run(TrainConfig(method="resnet18_pretrained", dataset="rafdb", root=str(tmp_path / "d"), max_epochs=1, limit_per_class=3,
                    batch_size=8, progress=False, out=str(tmp_path / "out")))
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (m["n_train"], m["n_val"], m["n_test"]) == (21, 7, 21)


# -- crop=landmarks: the original photos aligned by Annotation/manual/<name>_manu_attri.txt ----------------
def _eye_centres(x: torch.Tensor) -> np.ndarray:
    """Centroids (x, y) of the two largest dark blobs of an aligned ``[3, S, S]`` image, left to right."""
    import cv2

    dark = (x.float().mean(0).numpy() < 50).astype(np.uint8)
    n, _, stats, cents = cv2.connectedComponentsWithStats(dark)
    two = sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:2]
    return cents[sorted(two, key=lambda k: cents[k, 0])]


def _manual_file(root: Path, stem: str) -> Path:
    return root / "basic" / "Annotation" / "manual" / f"{stem}_manu_attri.txt"


@pytest.mark.parametrize("order", ["image-left first", "image-right first"])
def test_landmark_alignment_levels_the_eyes(tmp_path, order):
    from fer_bench.data.align import alignment_matrix, template_points
    from fer_bench.data.io import write_image

    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    img, pts = eye_discs_photo(angle=30.0)
    write_image(tmp_path / "basic" / "Image" / "original" / "train_00001.jpg", img)
    listed = pts[[1, 0, 2, 4, 3]] if order == "image-right first" else pts  # the README does not say which
    _manual_file(tmp_path, "train_00001").write_text("".join(f"{x:.3f}\t{y:.3f}\n" for x, y in listed) + "1\n2\n2\n")
    dm = R.RAFDB(str(tmp_path), images="original", crop="landmarks", input_size=112)
    train = dm.build_splits()["train"]
    i = [Path(p).name for p in train.paths].index("train_00001.jpg")
    assert np.allclose(train.landmarks[i], pts, atol=1e-3)  # subject's right eye (image left) first, either way
    M = alignment_matrix(train.landmarks[i], 112, template="arcface-loose")
    assert np.allclose(np.c_[pts, np.ones(5)] @ M.T, template_points("arcface-loose") * 112, atol=0.01)
    x, y = train[i]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 112, 112)
    eyes = _eye_centres(x)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5  # level, though the face in the photo is turned by 30 degrees
    assert np.allclose(eyes, template_points("arcface-loose")[:2] * 112, atol=0.5)  # on the template's eyes
    # every other sample: the synthetic manual points, the input size
    assert all(tuple(train[k][0].shape) == (3, 112, 112) for k in range(len(train)))


@pytest.mark.parametrize("text, line, found", [
    ("12.5\t30.1\n40.2\t30.0\n30.0\t45.0\n", 4, "the end of the file"),
    ("12.5\t30.1\n40.2\t30.0\nabc\t50.1\n20.0\t60.0\n40.0\t60.0\n0\n0\n2\n", 3, "'abc\\t50.1'"),
    ("12.5\t30.1\n40.2\n30.0\t45.0\n20.0\t60.0\n40.0\t60.0\n0\n0\n2\n", 2, "'40.2'"),
    ("12.5\t30.1\n40.2\t30.0\t1\n30.0\t45.0\n20.0\t60.0\n40.0\t60.0\n0\n0\n2\n", 2, "30.0\\t1"),
    ("12.5\t30.1\n12.5\t30.1\n30.0\t45.0\n20.0\t60.0\n40.0\t60.0\n0\n0\n2\n", 2, "distinct eye centres"),
    (None, None, "no such file"),
])
def test_malformed_landmark_file_is_named(tmp_path, text, line, found):
    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    bad = _manual_file(tmp_path, "test_0003")
    if text is None:
        bad.unlink()
    else:
        bad.write_text(text)
    with pytest.raises(DataFormatError) as ei:
        R.RAFDB(str(tmp_path), images="original", crop="landmarks").build_splits()
    assert ei.value.path == str(bad) and ei.value.line == line and found in str(ei.value)
    assert R.RAFDB(str(tmp_path), images="original").build_splits()["test"]  # read only for crop=landmarks


def test_crop_option_checked_and_recorded(tmp_path):
    from fer_bench.errors import UserError

    write_layout("rafdb", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    with pytest.raises(UserError, match="crop=landmarks .* pass images=original"):
        R.RAFDB(str(tmp_path), crop="landmarks")
    with pytest.raises(UserError, match="crop"):
        R.RAFDB(str(tmp_path), images="original", crop="haar")
    plain = R.RAFDB(str(tmp_path))
    assert plain.protocol_args()["crop"] == "none" and "align" not in plain.protocol_args()
    dm = R.RAFDB(str(tmp_path), images="original", crop="landmarks")
    args = dm.protocol_args()
    assert (args["images"], args["crop"], args["align"]) == ("original", "landmarks", "arcface-loose+0")
    manual = tmp_path / "basic" / "Annotation" / "manual"
    for p in manual.iterdir():
        p.unlink()
    manual.rmdir()
    with pytest.raises(DataFormatError) as ei:
        dm.build_splits()
    assert ei.value.path == str(manual) and "manu_attri" in str(ei.value)


def test_landmark_aligned_datamodule_end_to_end(tmp_path):
    """The synthetic layout's manual files (5 points of the drawn face, then gender, race, age), read by the
    DataModule with crop=landmarks: setup and one training batch of the input size."""
    write_layout("rafdb", str(tmp_path), per_class=2, seed=0)
    lines = _manual_file(tmp_path, "train_00001").read_text().splitlines()
    assert len(lines) == 8 and all(len(s.split("\t")) == 2 for s in lines[:5])
    pts = R.read_manual_landmarks(_manual_file(tmp_path, "train_00001"))
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0] and pts[0, 1] < pts[2, 1] < pts[3, 1]  # a frontal face
    assert np.all((pts > 20) & (pts < 120))  # inside the face of the 140x140 original
    dm = DATASETS.get("rafdb")(str(tmp_path), images="original", crop="landmarks", input_size=64, batch_size=4,
                               num_workers=0)
    dm.setup("fit")
    x, y, idx, skipped = next(iter(dm.train_dataloader()))
    assert tuple(x.shape) == (4, 3, 64, 64) and x.dtype == torch.float32 and skipped == []
    assert dm.protocol_args()["crop"] == "landmarks"
