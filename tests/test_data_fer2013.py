"""FER2013 (csv, icml, folders) and FERPlus (csv pair, folders; real vote file) parsers."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data import DATASETS
from fer_bench.data import fer2013 as F
from fer_bench.data import fer2013_csv as FC
from fer_bench.data import ferplus as FP
from fer_bench.data.check import check_dataset
from fer_bench.errors import DataFormatError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import class_grey_level, synth_images

REAL_VOTES = Path(__file__).resolve().parents[2] / "shared/data/ferplus/fer2013new.csv"
C = {name: i for i, name in enumerate(CANONICAL_CLASSES_8)}


def _levels(ds) -> tuple[np.ndarray, np.ndarray]:
    """(mean pixel of every decoded sample, its label) of a raw split dataset."""
    xs = [ds[i][0] for i in range(len(ds))]
    assert all(x.dtype == torch.uint8 and x.shape == (1, 48, 48) for x in xs)
    return np.array([float(x.float().mean()) for x in xs]), np.asarray(ds.labels)


def _train(dataset: str, root: Path, out: Path, **data_args) -> dict:
    from fer_bench.train import TrainConfig, run

    run(TrainConfig(method="resnet18_pretrained", dataset=dataset, root=str(root), max_epochs=1, limit_per_class=3,
                    batch_size=8, progress=False, out=str(out), data_args=data_args))
    return json.loads((out / "metrics.json").read_text())


# ======================================================================================
# FER2013
# ======================================================================================
@pytest.mark.parametrize("layout", ["csv", "icml", "folders"])
def test_fer2013_synth_read_back(tmp_path, layout):
    """Every layout: 3 images per class in each split, labels match the class-encoding pixels."""
    write_layout("fer2013", str(tmp_path), per_class=3, seed=1, layout=layout, pattern="class-grey")
    dm = DATASETS.get("fer2013")(str(tmp_path))
    splits = dm.build_splits()
    assert dm.resolved_layout == layout
    assert set(splits) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        means, labels = _levels(splits[split])
        assert np.bincount(labels, minlength=7).tolist() == [3] * 7, split
        tol = 0 if layout != "folders" else 2  # csv is lossless, JPEG is not
        for c in range(7):
            assert np.all(np.abs(means[labels == c] - class_grey_level(c)) <= tol), (split, c)
    assert dm.protocol_args()["layout"] == layout


def test_fer2013_csv_holds_the_synthetic_faces_exactly(tmp_path):
    write_layout("fer2013", str(tmp_path), per_class=2, seed=5)
    table = FC.read_fer2013_csv(tmp_path / "fer2013.csv")
    assert len(table) == 3 * 14 and table.images.shape == (42, 48, 48) and table.images.dtype == np.uint8
    assert table.usage.tolist() == ["Training"] * 14 + ["PublicTest"] * 14 + ["PrivateTest"] * 14
    imgs, labels = synth_images(2, seed=50)  # the Training rows: seed * 10 + 0
    assert np.array_equal(table.images[:14], imgs) and table.emotion[:14].tolist() == labels.tolist()
    assert imgs.std() > 10  # real faces, not a constant


def test_fer2013_root_forms_and_forced_layout(tmp_path):
    write_layout("fer2013", str(tmp_path / "fer2013"), per_class=1, seed=0, layout="csv", pattern="class-grey")
    write_layout("fer2013", str(tmp_path), per_class=2, seed=0, layout="folders", pattern="class-grey")
    auto = F.FER2013(str(tmp_path))
    assert len(auto.build_splits()["train"]) == 7 and auto.resolved_layout == "csv"  # fer2013/fer2013.csv first
    forced = F.FER2013(str(tmp_path), layout="folders")
    assert len(forced.build_splits()["train"]) == 14 and forced.resolved_layout == "folders"
    as_file = F.FER2013(str(tmp_path / "fer2013" / "fer2013.csv"))
    assert len(as_file.build_splits()["test"]) == 7


def test_fer2013_vectorised_parse_equals_split_parse(tmp_path, monkeypatch):
    """Chunked np.fromstring == a per-value parse, across chunk boundaries and odd spacing."""
    monkeypatch.setattr(FC, "_CHUNK_ROWS", 4)
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (11, 2304))
    rows = [" ".join(map(str, r)) for r in px]
    rows[5] = "  ".join(map(str, px[5]))  # double spaces are still 2304 values
    rows[6] = " " + rows[6] + " "
    got = FC.parse_pixels(np.array(rows, dtype=object), tmp_path / "x.csv")
    assert np.array_equal(got.reshape(11, -1), px)


def _write_small_csv(path: Path, rows: list[str], header: str = "emotion,pixels,Usage") -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def _row(label=0, usage="Training", values=None) -> str:
    values = [7] * 2304 if values is None else values
    return f"{label},{' '.join(map(str, values))},{usage}"


@pytest.mark.parametrize("bad_row, line, found", [
    (_row(values=[1] * 2303), 4, "2303 values"),
    (_row(values=[1] * 2303 + [256]), 4, "value 256"),
    (_row(values=[1] * 2303 + ["12a"]), 4, "'12a'"),
    (_row(values=[1] * 2303 + [-3]), 4, "value -3"),
    (_row(label=7), 4, "'7'"),
    (_row(label=""), 4, "empty"),
    (_row(usage="Validation"), 4, "'Validation'"),
])
def test_fer2013_bad_row_names_file_and_line(tmp_path, bad_row, line, found):
    rows = [_row(), _row(usage="PublicTest"), bad_row, _row(usage="PrivateTest")]
    path = _write_small_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    e = ei.value
    assert e.path == str(path) and e.line == line and found in str(e)
    assert str(e).startswith(f"{path}, line {line}: expected")


def test_fer2013_compensating_counts_and_later_chunk(tmp_path, monkeypatch):
    """A row of 2303 values followed by one of 2305 has the right total: still caught, on its line."""
    monkeypatch.setattr(FC, "_CHUNK_ROWS", 4)  # rows 4..7 form the second chunk
    rows = [_row()] * 5 + [_row(values=[1] * 2303), _row(values=[1] * 2305), _row(usage="PrivateTest")]
    _write_small_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    assert ei.value.line == 7 and "2303 values" in str(ei.value)


def test_fer2013_icml_header_and_lines(tmp_path):
    path = tmp_path / "icml_face_data.csv"
    path.write_text("emotion, Usage, pixels\n" + f"3,Training,{' '.join(['9'] * 2304)}\n"
                    + f"3, PublicTest, {' '.join(['9'] * 2300)}\n")
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    assert ei.value.line == 3 and "2300 values" in str(ei.value) and ei.value.path == str(path)
    _write_small_csv(tmp_path / "fer2013.csv", [_row()], header="emotion,pixels")  # Kaggle's train.csv header
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    assert ei.value.line == 1 and "emotion,pixels,Usage" in str(ei.value)


def test_fer2013_folder_errors(tmp_path):
    write_layout("fer2013", str(tmp_path), per_class=1, seed=0, layout="folders", pattern="class-grey")
    victim = next((tmp_path / "train" / "happy").glob("Training_*.jpg"))
    renamed = victim.with_name("im42.jpg")
    victim.rename(renamed)
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    assert ei.value.path == str(renamed) and "Training_" in str(ei.value)
    renamed.rename(victim)
    (tmp_path / "test" / "contempt").mkdir()
    with pytest.raises(DataFormatError) as ei:
        F.FER2013(str(tmp_path)).build_splits()
    assert "contempt" in str(ei.value) and ei.value.path == str(tmp_path / "test")


def _break_two_images(files: list[Path]) -> tuple[Path, Path]:
    garbage, empty = files[0], files[1]
    garbage.write_bytes(b"this is not a JPEG" * 20)
    empty.write_bytes(b"")
    return garbage, empty


def _check_cli(name: str, root: Path, capsys) -> tuple[int, dict]:
    from fer_bench.cli import main

    capsys.readouterr()
    rc = main(["data", "check", name, "--root", str(root), "--json"])
    out = capsys.readouterr()
    return rc, json.loads(out.out)


def test_fer2013_corrupt_and_empty_images_are_reported(tmp_path, capsys):
    write_layout("fer2013", str(tmp_path), per_class=2, seed=0, layout="folders")
    garbage, empty = _break_two_images(sorted((tmp_path / "test" / "sad").glob("*.jpg")))
    report = check_dataset("fer2013", str(tmp_path))
    problems = {p["file"]: p["problem"] for p in report["problems"]}
    assert problems == {str(garbage): "unreadable", str(empty): "zero-byte"}
    rc, js = _check_cli("fer2013", tmp_path, capsys)
    assert rc == 1 and {p["file"] for p in js["problems"]} == {str(garbage), str(empty)}


def test_fer2013_cli_check_broken_csv(tmp_path, capsys):
    path = _write_small_csv(tmp_path / "fer2013.csv", [_row(), _row(values=[1] * 10)])
    rc, js = _check_cli("fer2013", tmp_path, capsys)
    assert rc == 1 and js["error"].startswith(f"{path}, line 3:")


@pytest.mark.parametrize("layout", ["folders"])  # the default csv layout: tests/test_datasets.py
def test_fer2013_train_one_epoch(tmp_path, layout):
    write_layout("fer2013", str(tmp_path / "d"), per_class=4, seed=0, layout=layout)
    m = _train("fer2013", tmp_path / "d", tmp_path / "out")
    assert (m["n_train"], m["n_val"], m["n_test"]) == (21, 21, 21)


# ======================================================================================
# FERPlus: synthetic layouts
# ======================================================================================
@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_ferplus_synth_read_back(tmp_path, layout):
    write_layout("ferplus", str(tmp_path), per_class=2, seed=3, layout=layout, pattern="class-grey")
    dm = FP.FERPlus(str(tmp_path))
    splits = dm.build_splits()
    assert dm.resolved_layout == layout and dm.num_classes == 8
    for split in ("train", "val", "test"):
        means, labels = _levels(splits[split])
        # the non-face, no-majority and unknown-majority rows are dropped in majority mode
        assert np.bincount(labels, minlength=8).tolist() == [2] * 8, split
        for c in range(8):
            assert np.all(np.abs(means[labels == c] - class_grey_level(c)) <= (0 if layout == "csv" else 2))
    prob = FP.FERPlus(str(tmp_path), label_mode="probability").build_splits()
    train = prob["train"]
    # + the tie row (neutral 4 / happiness 4 / surprise 2): kept as 0.5 neutral + 0.5 happy, argmax neutral
    assert np.bincount(train.labels, minlength=8).tolist() == [2, 2, 2, 2, 2, 2, 3, 2]
    ys = torch.stack([train[i][1] for i in range(len(train))])
    assert ys.dtype == torch.float32 and ys.shape == (17, 8)
    assert torch.allclose(ys.sum(1), torch.ones(17))
    tie = int(np.flatnonzero(ys[:, C["neutral"]].numpy() == 0.5)[0])
    assert ys[tie, C["happy"]] == 0.5
    for i in range(len(train)):  # regular faces: 5/8 on their class, 3/8 on the next FERPlus emotion
        if i != tie:
            c = int(train.labels[i])
            nxt = FP.FERPLUS_TO_CANONICAL[(FP.CANONICAL_TO_FERPLUS[c] + 1) % 8]
            assert ys[i, c] == pytest.approx(5 / 8) and ys[i, nxt] == pytest.approx(3 / 8)
    assert [isinstance(prob[s][0][1], int) for s in ("val", "test")] == [True, True]  # always majority


def test_ferplus_folder_boxes_crop(tmp_path):
    write_layout("ferplus", str(tmp_path), per_class=1, seed=0, layout="folders", pattern="class-grey")
    label = tmp_path / "data" / "FER2013Train" / "label.csv"
    lines = label.read_text().splitlines()
    # lines 1-2 are the tie and unknown-majority rows (dropped); line 3 is the first kept face
    lines[2] = lines[2].replace('"(0, 0, 48, 48)"', '"(4, 8, 36, 40)"')  # left, top, right, bottom
    label.write_text("\n".join(lines) + "\n")
    train = FP.FERPlus(str(tmp_path)).build_splits()["train"]
    assert tuple(train[0][0].shape) == (1, 32, 32)
    assert tuple(train[1][0].shape) == (1, 48, 48)
    # the box-less lines written by the reference's generate_training_data.py (name + 10 votes)
    label.write_text("".join(re.sub(r',"\(.*?\)"', "", line) + "\n" for line in lines))
    assert ',"(' not in label.read_text()
    again = FP.FERPlus(str(tmp_path)).build_splits()["train"]
    assert again.boxes is None and again.labels.tolist() == train.labels.tolist()
    assert tuple(again[0][0].shape) == (1, 48, 48)


def test_ferplus_misaligned_files_are_rejected(tmp_path):
    write_layout("ferplus", str(tmp_path), per_class=1, seed=0, pattern="class-grey")
    new = tmp_path / "fer2013new.csv"
    lines = new.read_text().splitlines()
    assert lines[15].startswith("PublicTest,")  # line 16 = row 14: 11 rows per split (8 faces + 3 special)
    lines[15] = lines[15].replace("PublicTest", "Training", 1)
    new.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        FP.FERPlus(str(tmp_path)).build_splits()
    assert ei.value.path == str(new) and ei.value.line == 16 and "aligned by position" in str(ei.value)
    new.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataFormatError) as ei:
        FP.FERPlus(str(tmp_path)).build_splits()
    assert "33 data rows" in str(ei.value) and "32 rows" in str(ei.value)


def test_ferplus_bad_vote_names_line(tmp_path):
    write_layout("ferplus", str(tmp_path), per_class=1, seed=0, layout="folders")
    label = tmp_path / "data" / "FER2013Valid" / "label.csv"
    lines = label.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",x"
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as ei:
        FP.FERPlus(str(tmp_path)).build_splits()
    assert ei.value.path == str(label) and ei.value.line == 3 and "'x'" in str(ei.value)


def test_ferplus_corrupt_and_empty_images_are_reported(tmp_path, capsys):
    write_layout("ferplus", str(tmp_path), per_class=1, seed=0, layout="folders")
    folder = tmp_path / "data" / "FER2013Test"
    kept = [folder / line.split(",")[0] for line in (folder / "label.csv").read_text().splitlines()[2:]]
    garbage, empty = _break_two_images(kept)  # (lines 1-2: the tie and unknown rows, dropped)
    report = check_dataset("ferplus", str(tmp_path))
    assert {p["file"]: p["problem"] for p in report["problems"]} == {str(garbage): "unreadable",
                                                                     str(empty): "zero-byte"}
    rc, js = _check_cli("ferplus", tmp_path, capsys)
    assert rc == 1 and {p["file"] for p in js["problems"]} == {str(garbage), str(empty)}


def test_ferplus_train_one_epoch_soft_targets(tmp_path):
    write_layout("ferplus", str(tmp_path / "d"), per_class=3, seed=0)
    m = _train("ferplus", tmp_path / "d", tmp_path / "out", label_mode="probability")
    assert (m["n_train"], m["n_test"]) == (8 * 3, 8 * 3) and len(m["classes"]) == 8


def test_ferplus_train_one_epoch_folders(tmp_path):
    write_layout("ferplus", str(tmp_path / "d"), per_class=3, seed=0, layout="folders")
    m = _train("ferplus", tmp_path / "d", tmp_path / "out")
    assert m["n_test"] == 8 * 3


# ======================================================================================
# FERPlus: the real vote file aligned with a generated 35,887-row fer2013.csv
# ======================================================================================
@pytest.fixture(scope="session")
def real_root(tmp_path_factory) -> Path:
    """``fer2013new.csv`` (link to the real file) + ``fer2013/fer2013.csv`` whose row ``r`` has
    first pixel ``r % 256`` (the rest 0) and the Usage of the real file's row ``r``."""
    if not REAL_VOTES.is_file():
        pytest.skip(f"the real FERPlus vote file is not at {REAL_VOTES}")
    root = tmp_path_factory.mktemp("ferplus_real")
    (root / "fer2013new.csv").symlink_to(REAL_VOTES)
    usage = [line.split(",", 1)[0] for line in REAL_VOTES.read_text().splitlines()[1:]]
    tail = " 0" * 2303
    (root / "fer2013").mkdir()
    with open(root / "fer2013" / "fer2013.csv", "w") as f:
        f.write("emotion,pixels,Usage\n")
        f.writelines(f"{i % 7},{i % 256}{tail},{u}\n" for i, u in enumerate(usage))
    return root


@pytest.fixture(scope="session")
def real_majority(real_root):
    return FP.FERPlus(str(real_root)).build_splits()


@pytest.fixture(scope="session")
def real_probability(real_root, real_majority):
    return FP.FERPlus(str(real_root), label_mode="probability").build_splits()


def test_real_ferplus_majority_counts(real_majority):
    """datasets.md: majority mode gives 25,060 / 3,199 / 3,153 (Training/PublicTest/PrivateTest)."""
    assert [len(real_majority[s]) for s in ("train", "val", "test")] == [25060, 3199, 3153]
    # per canonical class (angry, disgust, fear, happy, sad, surprise, neutral, contempt)
    assert np.bincount(real_majority["train"].labels, minlength=8).tolist() == [2100, 119, 532, 7287, 3014, 3149,
                                                                                 8740, 119]
    assert np.bincount(real_majority["val"].labels, minlength=8).tolist() == [287, 24, 62, 865, 351, 415, 1182, 13]
    assert np.bincount(real_majority["test"].labels, minlength=8).tolist() == [273, 18, 83, 893, 384, 396, 1090, 16]


def test_real_ferplus_skips_non_faces(real_majority, real_probability):
    import pandas as pd

    names = pd.read_csv(REAL_VOTES, dtype=str, keep_default_na=False)["Image name"].to_numpy()
    empty = np.flatnonzero(names == "")
    assert len(empty) == 173 and empty[:3].tolist() == [17, 23, 59]
    for splits in (real_majority, real_probability):
        used = np.concatenate([splits[s].positions for s in ("train", "val", "test")])
        assert not np.isin(empty, used).any()


def test_real_ferplus_rows_aligned_by_position(real_majority):
    train = real_majority["train"]
    # every sample's pixels come from the csv row it claims (first pixel = row % 256)
    assert np.array_equal(train.images[train.positions, 0, 0], (train.positions % 256).astype(np.uint8))
    # row 61 is fer0000060.png (the name drifts by one after the non-face row 59): surprise 9 votes
    j = int(np.flatnonzero(train.positions == 61)[0])
    x, y = train[j]
    assert int(x[0, 0, 0]) == 61 and y == C["surprise"]
    # row 60 is fer0000059.png: neutral 8 / surprise 2 -> neutral (a by-name lookup of 60 would say surprise)
    j = int(np.flatnonzero(train.positions == 60)[0])
    assert int(train[j][0][0, 0, 0]) == 60 and train[j][1] == C["neutral"]
    test = real_majority["test"]
    assert test.positions[-1] == 35886 and int(test[len(test) - 1][0][0, 0, 0]) == 35886 % 256


# (row, votes neutral..NF in the real file, canonical class of the majority)
HAND_PICKED = [
    (4, [9, 0, 0, 1, 0, 0, 0, 0, 0, 0], "neutral"),
    (7, [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], "happy"),
    (61, [0, 0, 9, 0, 0, 0, 1, 0, 0, 0], "surprise"),
    (6, [2, 0, 0, 8, 0, 0, 0, 0, 0, 0], "sad"),
    (10, [2, 0, 0, 0, 8, 0, 0, 0, 0, 0], "angry"),
    (2746, [1, 0, 1, 0, 1, 7, 0, 0, 0, 0], "disgust"),
    (96, [0, 0, 2, 0, 0, 0, 8, 0, 0, 0], "fear"),
    (573, [1, 0, 0, 0, 0, 0, 0, 8, 1, 0], "contempt"),
]


@pytest.mark.parametrize("row, votes, cls", HAND_PICKED)
def test_real_ferplus_class_mapping(real_majority, row, votes, cls):
    line = REAL_VOTES.read_text().splitlines()[row + 1]
    assert [int(v) for v in line.split(",")[2:]] == votes  # the row really holds these votes
    train = real_majority["train"]
    j = int(np.flatnonzero(train.positions == row)[0])
    assert train.labels[j] == C[cls] and train[j][1] == C[cls]
    assert CANONICAL_CLASSES_8[train.labels[j]] == cls


def test_real_ferplus_probability_targets(real_majority, real_probability):
    """Hand-computed with the reference's rules (votes <= 1 removed first)."""
    train = real_probability["train"]

    def target(row):
        j = int(np.flatnonzero(train.positions == row)[0])
        y = train[j][1]
        assert y.dtype == torch.float32 and y.shape == (8,)
        return y.numpy(), int(train.labels[j])

    # row 0: 4,0,0,1,3,2 -> sadness 1 removed, total 9; take neutral 4 (< 6.75), anger 3 (7 >= 6.75)
    y, lab = target(0)
    assert y[C["neutral"]] == pytest.approx(4 / 7) and y[C["angry"]] == pytest.approx(3 / 7) and lab == C["neutral"]
    assert y.sum() == pytest.approx(1.0) and np.count_nonzero(y) == 2
    # row 66: neutral 6, happiness 4 -> 0.6 / 0.4
    y, lab = target(66)
    assert y[C["neutral"]] == pytest.approx(0.6) and y[C["happy"]] == pytest.approx(0.4)
    # row 69: 5,0,0,1,1,0,1,0,2,0 -> ones removed; neutral 5 then unknown 2 reached: unknown dropped -> neutral 1.0
    y, lab = target(69)
    assert y[C["neutral"]] == pytest.approx(1.0) and lab == C["neutral"]
    # row 17 is a non-face; validation and test stay majority
    assert 17 not in train.positions
    for s in ("val", "test"):
        assert np.array_equal(real_probability[s].positions, real_majority[s].positions)
        assert np.array_equal(real_probability[s].labels, real_majority[s].labels)
        assert real_probability[s].targets is None
    assert len(train) == 27956  # this implementation's count of the reference's probability mode


def test_ferplus_majority_rules_by_hand():
    votes = np.array([
        [6, 0, 0, 1, 3, 0, 0, 0, 0, 0],   # sadness 1 removed: neutral 6 > 0.5 * 9
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],   # tie: no majority
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],   # everything removed as outliers
        [0, 0, 0, 0, 0, 0, 0, 0, 6, 4],   # unknown majority
        [0, 0, 0, 0, 0, 0, 0, 2, 1, 1],   # contempt 2 of 2 after removal
        [3, 2, 2, 0, 0, 0, 0, 0, 0, 0],   # 3 of 7: no majority
    ])
    assert FP.ferplus_majority(votes).tolist() == [0, -1, -1, -1, 7, -1]
    assert FP.ferplus_majority([[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]]).tolist() == [-1]  # real row 0: 4 of 9 is no majority
    targets, keep = FP.ferplus_probability(votes)
    assert keep.tolist() == [True, True, False, False, True, True]
    np.testing.assert_allclose(targets[0], [6 / 9, 0, 0, 0, 3 / 9, 0, 0, 0], rtol=1e-6)
    assert targets[4].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    assert targets[1].tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(targets[5], [3 / 7, 2 / 7, 2 / 7, 0, 0, 0, 0, 0], rtol=1e-6)
    assert FP.FERPLUS_TO_CANONICAL.tolist() == [C[c] for c in ("neutral", "happy", "surprise", "sad", "angry",
                                                              "disgust", "fear", "contempt")]


def test_ferplus_root_combinations(tmp_path):
    """fer2013new.csv beside a fer2013/ folder, or both in one folder."""
    write_layout("ferplus", str(tmp_path / "a"), per_class=1, seed=0, pattern="class-grey")
    os.makedirs(tmp_path / "b" / "fer2013")
    os.rename(tmp_path / "a" / "fer2013.csv", tmp_path / "b" / "fer2013" / "fer2013.csv")
    os.rename(tmp_path / "a" / "fer2013new.csv", tmp_path / "b" / "fer2013new.csv")
    assert len(FP.FERPlus(str(tmp_path / "b")).build_splits()["test"]) == 8
    with pytest.raises(DataFormatError) as ei:
        FP.FERPlus(str(tmp_path / "b" / "fer2013"), layout="csv").build_splits()
    assert "fer2013new.csv" in str(ei.value)
