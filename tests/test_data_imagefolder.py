"""``imagefolder``: generic <root>/<split>/<class>/ trees, class-name synonyms, 7/8 classes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8
from fer_bench.data import DATASETS
from fer_bench.data import imagefolder as I
from fer_bench.data.check import check_dataset
from fer_bench.errors import DataFormatError, UserError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import class_grey_level


def _levels(ds) -> tuple[np.ndarray, np.ndarray]:
    xs = [ds[i][0] for i in range(len(ds))]
    assert all(x.dtype == torch.uint8 and tuple(x.shape) == (3, 48, 48) for x in xs)
    return np.array([float(x.float().mean()) for x in xs]), np.asarray(ds.labels)


@pytest.mark.parametrize("names, contempt, val, ext", [("canonical", False, True, "jpg"),
                                                       ("synonyms", True, False, "png")])
def test_synth_read_back(tmp_path, names, contempt, val, ext):
    write_layout("imagefolder", str(tmp_path), per_class=3, seed=4, names=names, contempt=contempt, val=val, ext=ext,
                           pattern="class-grey")
    dm = DATASETS.get("imagefolder")(str(tmp_path))
    n = 8 if contempt else 7
    assert dm.classes == (CANONICAL_CLASSES_8 if contempt else CANONICAL_CLASSES) and dm.num_classes == n
    splits = dm.build_splits()
    assert (splits["val"] is None) == (not val)
    for split in ("train", "val", "test") if val else ("train", "test"):
        means, labels = _levels(splits[split])
        assert np.bincount(labels, minlength=n).tolist() == [3] * n, split
        tol = 0 if ext == "png" else 2
        for c in range(n):
            assert np.all(np.abs(means[labels == c] - class_grey_level(c)) <= tol), (split, c)
    dm.setup()
    if val:
        assert dm.split_sizes() == {"train": 21, "val": 21, "test": 21}
        assert dm.protocol_args()["val"] == "folder"
    else:  # carved: one per class (round(0.3) = 0, raised to 1) from train
        assert dm.split_sizes() == {"train": 16, "val": 8, "test": 24}
        assert dm.protocol_args()["val"] == "carved from train"


def test_synonyms_case_insensitive():
    expect = {"ANGER": "angry", "Ang": "angry", "disgusted": "disgust", "Fearful": "fear", "afraid": "fear",
              "JOY": "happy", "Happiness": "happy", "sadness": "sad", "Surprised": "surprise",
              "Neutral": "neutral", "Contempt": "contempt"}
    for folder, cls in expect.items():
        assert I.canonical_class_of(folder) == CANONICAL_CLASSES_8.index(cls), folder
    assert I.canonical_class_of("calm") is None  # RAVDESS's calm is not neutral


def test_unknown_class_folder_lists_names(tmp_path):
    write_layout("imagefolder", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    (tmp_path / "test" / "calm").mkdir()
    (tmp_path / "test" / "Bored").mkdir()
    with pytest.raises(DataFormatError) as ei:
        DATASETS.get("imagefolder")(str(tmp_path))
    msg = str(ei.value)
    assert ei.value.path == str(tmp_path / "test")
    assert "['Bored', 'calm']" in msg and "happy: happy/happiness/joy" in msg and "contempt" in msg


def test_layout_errors(tmp_path):
    write_layout("imagefolder", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    (tmp_path / "train" / "Anger").mkdir()  # a second folder for angry
    with pytest.raises(DataFormatError) as ei:
        DATASETS.get("imagefolder")(str(tmp_path))
    assert "angry/" in str(ei.value) and "Anger/" in str(ei.value)
    (tmp_path / "train" / "Anger").rmdir()
    (tmp_path / "test").rename(tmp_path / "testing")
    with pytest.raises(DataFormatError) as ei:
        DATASETS.get("imagefolder")(str(tmp_path))
    assert "test/" in str(ei.value) and ei.value.path == str(tmp_path)


def test_seven_class_protocol_drops_contempt(tmp_path):
    write_layout("imagefolder", str(tmp_path), per_class=2, seed=0, contempt=True, pattern="class-grey")
    dm = DATASETS.get("imagefolder")(str(tmp_path), classes=7)
    splits = dm.build_splits()
    assert dm.num_classes == 7 and np.bincount(splits["test"].labels).tolist() == [2] * 7
    assert not any("contempt" in p for p in splits["test"].paths)
    with pytest.raises(UserError):
        DATASETS.get("imagefolder")(str(tmp_path), classes=9)


def test_non_images_are_ignored_but_broken_images_are_reported(tmp_path, capsys):
    from fer_bench.cli import main

    write_layout("imagefolder", str(tmp_path), per_class=2, seed=0)
    (tmp_path / "train" / "happy" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "train" / "happy" / ".DS_Store").write_bytes(b"x")
    files = sorted((tmp_path / "test" / "fear").glob("*.jpg"))
    files[0].write_bytes(b"garbage, not an image" * 10)
    files[1].write_bytes(b"")
    report = check_dataset("imagefolder", str(tmp_path))
    assert report["counts"]["test"]["fear"] == 2
    assert sum(report["counts"]["train"].values()) + sum(report["counts"]["val"].values()) == 14
    assert {p["file"]: p["problem"] for p in report["problems"]} == {str(files[0]): "unreadable",
                                                                     str(files[1]): "zero-byte"}
    capsys.readouterr()
    assert main(["data", "check", "imagefolder", "--root", str(tmp_path), "--json"]) == 1
    js = json.loads(capsys.readouterr().out)
    assert {p["file"] for p in js["problems"]} == {str(files[0]), str(files[1])}


def test_cli_check_broken_layout(tmp_path, capsys):
    from fer_bench.cli import main

    write_layout("imagefolder", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    (tmp_path / "train" / "frustrated").mkdir()
    capsys.readouterr()
    assert main(["data", "check", "imagefolder", "--root", str(tmp_path), "--json"]) == 1
    out = capsys.readouterr()
    err = json.loads(out.out)["error"]
    assert err.startswith(f"{tmp_path / 'train'}: expected class folders") and "frustrated" in err
    assert "frustrated" in out.err


def test_train_one_epoch(tmp_path):
    from fer_bench.train import TrainConfig, run

    write_layout("imagefolder", str(tmp_path / "d"), per_class=4, seed=0, contempt=True, names="synonyms")
    run(TrainConfig(method="resnet18_pretrained", dataset="imagefolder", root=str(tmp_path / "d"), max_epochs=1,
                    limit_per_class=3, batch_size=8, progress=False, out=str(tmp_path / "out")))
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (m["n_train"], m["n_val"], m["n_test"]) == (24, 8, 24) and m["classes"] == list(CANONICAL_CLASSES_8)
