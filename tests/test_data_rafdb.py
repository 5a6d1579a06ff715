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
