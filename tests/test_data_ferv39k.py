"""FERV39K: split lists, class mapping name by name, frame order, synthetic tree, one run."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data import DATASETS
from fer_bench.data.check import check_dataset
from fer_bench.data.video import ClipDataset, write_frame_folder
from fer_bench.errors import DataFormatError, UserError
from fer_bench.synth import write_layout

SETUPS = Path("4_setups/All_scenes")
CLIPS = Path("2_ClipsforFaceCrop")
# FERV39K emotion name -> canonical name (written out by hand, not derived)
NAME_TO_CANONICAL = {"Happy": "happy", "Sad": "sad", "Neutral": "neutral", "Angry": "angry",
                     "Surprise": "surprise", "Disgust": "disgust", "Fear": "fear"}
GREY = {"Happy": 30, "Sad": 60, "Neutral": 90, "Angry": 120, "Surprise": 150, "Disgust": 180, "Fear": 210}


def _dm(root, **kw):
    dm = DATASETS.get("ferv39k")(str(root), **kw)
    dm.setup()
    return dm


def _write_lists(root: Path, train: list[str], test: list[str]) -> None:
    (root / SETUPS).mkdir(parents=True, exist_ok=True)
    (root / SETUPS / "train_All.csv").write_text("".join(line + "\n" for line in train))
    (root / SETUPS / "test_All.csv").write_text("".join(line + "\n" for line in test))


def test_labels_map_name_by_name(tmp_path):
    names = list(NAME_TO_CANONICAL)
    train, test = [], []
    for j, name in enumerate(names):
        for r in range(3):  # 2 train + 1 test clip per class, over two scenes
            rel = f"{('Action', 'Daily-Life')[r % 2]}/{name}/{r + 1:04d}"
            frames = np.full((4 + 3 * j + r, 16, 16, 3), GREY[name], np.uint8)  # 4..24 frames
            write_frame_folder(tmp_path / CLIPS / rel, frames, name=lambda k: f"{k}.jpg")
            (test if r == 2 else train).append(f"{rel} {name}")
    _write_lists(tmp_path, train, test)
    dm = _dm(tmp_path)
    assert len(dm.splits["test"]) == 7 and len(dm.splits["train"]) + len(dm.splits["val"]) == 14
    for split in ("train", "val", "test"):
        ds = dm.splits[split].base
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (16, 3, 16, 16)
            name = min(GREY, key=lambda n: abs(GREY[n] - float(x.float().mean())))
            assert CANONICAL_CLASSES[y] == NAME_TO_CANONICAL[name], (ds.sources[i], y)
            assert Path(ds.sources[i]).parent.name == name  # the list's path, under 2_ClipsforFaceCrop
    assert sorted(dm.splits["test"].labels.tolist()) == list(range(7))


def test_frames_are_read_in_natural_order(tmp_path):
    rel = "Action/Happy/0001"
    levels = np.arange(1, 13, dtype=np.uint8) * 20  # frame k (1-based) has grey level 20 k
    write_frame_folder(tmp_path / CLIPS / rel, np.broadcast_to(levels[:, None, None, None], (12, 8, 8, 3)).copy(),
                       name=lambda k: f"{k}.png")  # 1.png ... 12.png: "10.png" < "2.png" as strings
    _write_lists(tmp_path, [f"{rel} Happy"], [f"{rel.replace('0001', '0002')} Happy"])
    (tmp_path / CLIPS / "Action/Happy/0002").mkdir()
    dm = _dm(tmp_path, frames=12, val_fraction=0.0)
    assert dm.splits["train"].base.train and len(dm.splits["val"]) == 0
    x, _ = ClipDataset(dm.splits["train"].base.sources, [3], frames=12, train=False)[0]  # eval-mode reader
    assert x[:, 0, 0, 0].tolist() == levels.tolist()
    rep = check_dataset("ferv39k", str(tmp_path), val_fraction=0.0)  # the empty test clip is reported
    assert [(p["split"], Path(p["file"]).relative_to(tmp_path).as_posix()) for p in rep["problems"]] == \
        [("test", f"{CLIPS.as_posix()}/Action/Happy/0002")]


def test_list_errors_name_file_and_line(tmp_path):
    (tmp_path / CLIPS).mkdir()
    _write_lists(tmp_path, ["Action/Happy/0001 Happy", "", "Action/Happy/0002 Happiness"], ["Action/Sad/0001 Sad"])
    with pytest.raises(DataFormatError) as e:
        _dm(tmp_path)
    assert e.value.path.endswith("train_All.csv") and e.value.line == 3 and "'Happiness'" in str(e.value)
    _write_lists(tmp_path, ["Action/Happy/0001"], ["Action/Sad/0001 Sad"])
    with pytest.raises(DataFormatError) as e:
        _dm(tmp_path)
    assert e.value.line == 1
    _write_lists(tmp_path, ["Action/Sad/0001 Sad"], ["Action/Sad/0001 Sad"])
    with pytest.raises(DataFormatError, match="shared clip"):
        _dm(tmp_path)
    (tmp_path / SETUPS / "test_All.csv").unlink()
    with pytest.raises(DataFormatError) as e:
        _dm(tmp_path)
    assert e.value.path.endswith("test_All.csv") and e.value.found == "no such file"
    with pytest.raises(UserError, match="single official split"):
        DATASETS.get("ferv39k")(str(tmp_path), fold=1)
    cls = DATASETS.get("ferv39k")
    assert cls.info.modality == "dynamic" and cls.default_input_size == 112 and cls.default_in_chans == 3


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ferv39k")
    write_layout("ferv39k", str(root), per_class=5, seed=0, size=32, max_frames=20)
    return root


def test_synth_layout_and_counts(tree):
    line = re.compile(r"^(Action|Crime|Daily-Life)/(Happy|Sad|Neutral|Angry|Surprise|Disgust|Fear)/\d{4} \2$")
    train = (tree / SETUPS / "train_All.csv").read_text().splitlines()
    test = (tree / SETUPS / "test_All.csv").read_text().splitlines()
    assert len(train) == 28 and len(test) == 7
    assert all(line.match(t) for t in train + test), [t for t in train + test if not line.match(t)]
    assert set(train).isdisjoint(test)
    assert Counter(t.split()[1] for t in test) == {n: 1 for n in NAME_TO_CANONICAL}
    assert {t.split("/")[0] for t in train + test} == {"Action", "Crime", "Daily-Life"}
    for t in train + test:
        files = sorted((tree / CLIPS / t.split()[0]).iterdir(), key=lambda p: int(p.stem))
        assert [p.name for p in files] == [f"{k}.jpg" for k in range(1, len(files) + 1)]
        assert 8 <= len(files) <= 20
    dm = _dm(tree)
    assert np.bincount(dm.splits["test"].labels, minlength=7).tolist() == [1] * 7
    assert np.bincount(dm.splits["val"].labels, minlength=7).tolist() == [1] * 7
    assert np.bincount(dm.splits["train"].labels, minlength=7).tolist() == [3] * 7
    assert not dm.splits["val"].base.train and dm.splits["train"].base.train
