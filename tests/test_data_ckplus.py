"""CK+ parsers (official sequence tree and CK+48) on synthetic trees written in the exact layouts."""
from __future__ import annotations

import json
import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.data import DATASETS
from fer_bench.data import ckplus as ck
from fer_bench.errors import DataFormatError, UserError
from fer_bench.synth import write_layout
from fer_bench.synth.samples import mark_level

PER_CLASS = 2
N_LABELLED = 7 * PER_CLASS
# written out here, independently of the parser: CK+ code -> canonical name
CODE_TO_NAME = {1: "angry", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sad", 7: "surprise"}
FOLDER_TO_NAME = {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "sadness": "sad", "surprise": "surprise"}


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckplus")
    write_layout("ckplus", str(root), per_class=PER_CLASS, seed=0, mark=True)
    return root


@pytest.fixture(scope="module")
def ck48(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ck48")
    write_layout("ckplus", str(root), per_class=PER_CLASS, seed=0, layout="ck48", mark=True)
    return root


def make(root, **kw):
    kw.setdefault("fold", 0)
    return DATASETS.get("ckplus")(str(root), **kw)


def both(splits):
    tr, te = splits["train"], splits["test"]
    return list(tr.paths) + list(te.paths), np.concatenate([tr.labels, te.labels]), \
        np.concatenate([tr.groups, te.groups]), [(tr, i) for i in range(len(tr))] + [(te, i) for i in range(len(te))]


def emotion_files(root: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(subject, sequence) -> (peak frame, code), read here with a plain float()."""
    out = {}
    for p in (root / "Emotion").glob("S*/*/*_emotion.txt"):
        peak = int(re.search(r"_(\d+)_emotion\.txt$", p.name).group(1))
        out[(p.parent.parent.name, p.parent.name)] = (peak, int(float(p.read_text())))
    return out


def frame_no(path: str) -> int:
    return int(re.search(r"_(\d+)\.png$", path).group(1))


def seq_of(path: str) -> tuple[str, str]:
    p = Path(path)
    return p.parent.parent.name, p.parent.name


# --------------------------------------------------------------------------------------
def test_emotion_file_exact_float_format(tmp_path):
    cases = {"   3.0000000e+00\n": 3, "   2.0000000e+00": 2, "7.0000000e+00\r\n": 7, "\n   1.0000000e+00\n": 1}
    for i, (text, code) in enumerate(cases.items()):
        p = tmp_path / f"S005_00{i}_00000011_emotion.txt"
        p.write_text(text)
        assert ck.parse_emotion_file(p) == code
    bad = {"   0.0000000e+00\n": "0 (neutral)", "   8.0000000e+00\n": "code 1-7", "   2.5000000e+00\n": "code 1-7",
           "": "empty", "   3.0000000e+00   4.0000000e+00\n": "exactly one number", "abc\n": "a number"}
    for i, (text, what) in enumerate(bad.items()):
        p = tmp_path / f"bad{i}_emotion.txt"
        p.write_text(text)
        with pytest.raises(DataFormatError) as e:
            ck.parse_emotion_file(p)
        assert str(p) in str(e.value) and what in str(e.value)
        assert text.strip() == "" or e.value.line == 1


def test_official_counts_and_labels_class_by_class(official):
    dm = make(official, crop="none")
    assert dm.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
    paths, labels, groups, items = both(dm.build_splits())
    assert len(paths) == 3 * N_LABELLED
    assert Counter(dm.classes[k] for k in labels) == {c: 3 * PER_CLASS for c in CODE_TO_NAME.values()}
    emo = emotion_files(official)
    assert len(emo) == N_LABELLED
    for path, label in zip(paths, labels):  # label against the sequence's emotion file
        assert dm.classes[label] == CODE_TO_NAME[emo[seq_of(path)][1]]
    n_colour = 0
    for ds, i in items:  # label against the pixels: the synthetic stamp encodes the class
        x, y = ds[i]
        assert x.shape == (1, 120, 160)  # grey, whole frame (crop=none)
        assert int(x[0, :8, :8].float().mean()) == mark_level(CANONICAL_CLASSES_8.index(dm.classes[y]))
        n_colour += cv2.imread(ds.paths[i], cv2.IMREAD_UNCHANGED).ndim == 3
    assert n_colour > 0  # colour frames exist and are read grey


def test_last_three_frames_neutral_and_unlabelled(official):
    emo = emotion_files(official)
    dm = make(official, crop="none")
    paths, labels, _, _ = both(dm.build_splits())
    by_seq: dict = {}
    for p in paths:
        by_seq.setdefault(seq_of(p), []).append(frame_no(p))
    assert set(by_seq) == set(emo)  # unlabelled sequences give nothing
    for key, (peak, _) in emo.items():
        assert sorted(by_seq[key]) == [peak - 2, peak - 1, peak]
        n_frames = len(list((official / "cohn-kanade-images" / key[0] / key[1]).glob("*.png")))
        assert peak == n_frames  # the emotion file names the last frame
    all_seqs = {(p.parent.name, p.name) for p in (official / "cohn-kanade-images").glob("S*/*")}
    assert dm.n_unlabelled == len(all_seqs - set(emo)) == PER_CLASS // 2 + 1

    dm8 = make(official, crop="none", with_neutral=True)
    assert dm8.classes == CANONICAL_CLASSES_8 and dm8.num_classes == 8
    paths8, labels8, _, items8 = both(dm8.build_splits())
    assert len(paths8) == 4 * N_LABELLED
    neutral = [p for p, k in zip(paths8, labels8) if dm8.classes[k] == "neutral"]
    assert sorted(seq_of(p) for p in neutral) == sorted(emo) and {frame_no(p) for p in neutral} == {1}
    assert Counter(dm8.classes[k] for k in labels8)["contempt"] == 3 * PER_CLASS
    for ds, i in items8:
        x, y = ds[i]
        assert int(x[0, :8, :8].float().mean()) == mark_level(CANONICAL_CLASSES_8.index(dm8.classes[y]))
    assert dm8.protocol_args()["classes"] == 8 and dm8.protocol_args()["with_neutral"] is True


@pytest.mark.parametrize("tree", ["official", "ck48"])
def test_folds_disjoint_by_subject_and_cover_every_subject(tree, request):
    root = request.getfixturevalue(tree)
    test_subjects = []
    for k in range(ck.N_FOLDS):
        dm = make(root, fold=k, crop="none") if tree == "official" else make(root, fold=k)
        dm.setup()
        tr, va, te = (dm.splits[s] for s in ("train", "val", "test"))
        g_tr, g_va, g_te = (set(s.base.groups[s.indices]) for s in (tr, va, te))
        assert g_te and g_tr and g_va
        assert not g_tr & g_te and not g_va & g_te and not g_tr & g_va
        assert len(tr) + len(va) + len(te) == 3 * N_LABELLED
        test_subjects.append(g_te)
    subjects = sorted(set().union(*test_subjects), key=lambda s: int(s[1:]))
    assert len(subjects) >= 10
    assert sum(len(s) for s in test_subjects) == len(subjects)  # each subject in exactly one test fold
    for i, s in enumerate(subjects):  # sorted by number, dealt round-robin
        assert s in test_subjects[i % 10]
    # fold membership does not depend on the training seed
    a, b = make(root, fold=3, seed=0), make(root, fold=3, seed=17)
    assert list(a.build_splits()["test"].paths) == list(b.build_splits()["test"].paths)


def test_fold_is_required(official):
    for bad in (None, 10, -1, "1"):
        with pytest.raises(UserError, match="--fold 0..9"):
            make(official, fold=bad)


def test_landmark_crop_and_centre_fallback(official, tmp_path):
    root = tmp_path / "ck"
    shutil.copytree(official, root)
    dm = make(root, crop="landmarks")
    te = dm.build_splits()["test"]
    assert dm.crop_used == "landmarks" and dm.crop_fallbacks == 0
    for i, p in enumerate(te.paths):
        lp = root / "Landmarks" / seq_of(p)[0] / seq_of(p)[1] / (Path(p).stem + "_landmarks.txt")
        pts = np.loadtxt(lp)
        side = int(round(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])) * 1.1))
        assert te[i][0].shape == (1, side, side)
    (root / "Landmarks" / seq_of(te.paths[0])[0] / seq_of(te.paths[0])[1] /
     (Path(te.paths[0]).stem + "_landmarks.txt")).unlink()
    dm = make(root, crop="landmarks")
    with pytest.warns(UserWarning, match="1 of"):
        te = dm.build_splits()["test"]
    assert dm.crop_fallbacks == 1 and dm.protocol_args()["crop_fallbacks"] == 1
    assert te[0][0].shape == (1, 90, 90)  # centre square, 0.75 * min(160, 120)
    assert make(root, crop="center").build_splits()["test"][1][0].shape == (1, 90, 90)


def test_auto_crop_is_the_shipped_haar_cascade(official):
    """The pinned OpenCV 4 wheel ships the frontal-face cascade: auto uses it (the protocol's crop)."""
    import warnings

    assert ck.haar_available()
    dm = make(official)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few synthetic frames may have no detected face
        splits = dm.build_splits()
    te = splits["test"]
    assert dm.crop_used == "haar"
    # crop_fallbacks counts every protocol frame (train and test): compare with all of them
    n_frames = len(splits["train"].paths) + len(te.paths)
    assert dm.crop_fallbacks < n_frames / 2  # most synthetic faces are found
    x, _ = te[0]
    assert x.shape[0] == 1 and x.shape[1] == x.shape[2] and x.shape[1] < 120  # a square face crop


def test_haar_crop_largest_face_and_fallback(official, tmp_path, monkeypatch):
    root = tmp_path / "ck"
    shutil.copytree(official, root, ignore=shutil.ignore_patterns("Landmarks"))
    contempt_level = mark_level(CANONICAL_CLASSES_8.index("contempt"))

    class FakeCascade:  # cv2.CascadeClassifier's interface; no face on contempt frames
        def __init__(self, path):
            self.path = path

        def empty(self):
            return False

        def detectMultiScale(self, img, scaleFactor, minNeighbors, minSize):
            if int(img[:8, :8].mean()) == contempt_level:
                return ()
            return np.array([[10, 10, 20, 20], [30, 5, 60, 60], [0, 0, 40, 40]])

    cascade = tmp_path / "haarcascade_frontalface_default.xml"
    cascade.write_text("<opencv_storage/>")
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(UserError, match="CascadeClassifier"):
        make(root, crop="haar", cascade=str(cascade)).build_splits()
    dm = make(root)  # auto without Landmarks/ nor a cascade: centre crop, with a warning
    with pytest.warns(UserWarning, match="centre crop"):
        dm.build_splits()
    assert dm.crop_used == "center"

    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    dm = make(root, crop="haar", cascade=str(cascade))
    with pytest.warns(UserWarning, match="no detected face"):
        splits = dm.build_splits()
    assert dm.crop_fallbacks == 3 * PER_CLASS  # every contempt frame
    for ds in (splits["train"], splits["test"]):
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == ((1, 90, 90) if dm.classes[y] == "contempt" else (1, 60, 60))


def test_ck48_counts_labels_subjects(ck48):
    base = ck48 / "CK+48"
    assert sorted(p.name for p in base.iterdir()) == sorted(FOLDER_TO_NAME)
    dm = make(ck48)
    paths, labels, groups, items = both(dm.build_splits())
    assert dm.layout_used == "ck48" and len(paths) == 3 * N_LABELLED
    for p, k, g in zip(paths, labels, groups):
        assert dm.classes[k] == FOLDER_TO_NAME[Path(p).parent.name]
        assert g == Path(p).name.split("_")[0]
    for ds, i in items:
        x, y = ds[i]
        assert x.shape == (1, 48, 48)
        assert int(x[0, :8, :8].float().mean()) == mark_level(CANONICAL_CLASSES_8.index(dm.classes[y]))
    with pytest.raises(UserError, match="neutral"):
        make(ck48, with_neutral=True).build_splits()
    with pytest.raises(UserError, match="already 48x48"):
        make(ck48, crop="landmarks").build_splits()


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((20, 30), 100, np.uint8))


def test_official_layout_errors(tmp_path):
    for j in range(1, 5):
        _png(tmp_path / "cohn-kanade-images" / "S005" / "001" / f"S005_001_{j:08d}.png")
    with pytest.raises(DataFormatError, match="Emotion"):
        make(tmp_path).build_splits()
    emo = tmp_path / "Emotion" / "S005" / "001"
    emo.mkdir(parents=True)
    (emo / "S005_001_00000009_emotion.txt").write_text("   3.0000000e+00\n")
    with pytest.raises(DataFormatError, match="peak frame 9") as e:
        make(tmp_path).build_splits()
    assert "S005_001_00000009_emotion.txt" in str(e.value)
    (emo / "S005_001_00000009_emotion.txt").rename(emo / "S005_001_00000004_emotion.txt")
    (emo / "S005_001_00000003_emotion.txt").write_text("   3.0000000e+00\n")
    with pytest.raises(DataFormatError, match="at most one"):
        make(tmp_path).build_splits()
    (emo / "S005_001_00000003_emotion.txt").unlink()
    with pytest.raises(DataFormatError, match="at least 10 subjects"):  # one subject cannot make 10 folds
        make(tmp_path, crop="none").build_splits()
    seqs, n_unl = ck.scan_official(tmp_path)
    got = [(s.subject, s.sequence, s.code, [n for n, _ in s.frames]) for s in seqs]
    assert got == [("S005", "001", 3, [1, 2, 3, 4])]
    assert n_unl == 0


def test_cli_data_check_json(official, capsys):
    from fer_bench.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["data", "check", "ckplus", "--root", str(official), "--fold", "0", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out)
    assert report["dataset"] == "ckplus" and report["fold"] == 0 and report["problems"] == []
    counts = report["counts"]
    assert list(counts) == ["train", "val", "test"] and list(counts["test"]) == list(ck.CLASSES_7)
    for c in ck.CLASSES_7:
        assert sum(counts[s][c] for s in counts) == 3 * PER_CLASS
    assert main(["data", "check", "ckplus", "--root", str(official), "--json"]) == 2
    assert "--fold 0..9" in capsys.readouterr().err


@pytest.mark.parametrize("tree", ["official", "ck48"])
def test_one_epoch_writes_metrics(tree, request, tmp_path):
    from fer_bench.train import TrainConfig, run

    root = request.getfixturevalue(tree)
    if tree == "official":  # fold-0 test counts, computed from the Emotion files
        emo = emotion_files(root)
        subjects = sorted({s for s, _ in emo}, key=lambda s: int(s[1:]))
        fold0 = set(subjects[0::10])
        per_class = Counter(CODE_TO_NAME[code] for (s, _), (_, code) in emo.items() if s in fold0)
        per_class = {c: 3 * n for c, n in per_class.items()}
    else:
        subjects = sorted({p.name.split("_")[0] for p in root.glob("CK+48/*/*.png")}, key=lambda s: int(s[1:]))
        fold0 = set(subjects[0::10])
        per_class = Counter(FOLDER_TO_NAME[p.parent.name] for p in root.glob("CK+48/*/*.png")
                            if p.name.split("_")[0] in fold0)
    expected = sum(min(3, n) for n in per_class.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(TrainConfig(method="resnet18_pretrained", dataset="ckplus", root=str(root), fold=0, max_epochs=1, limit_per_class=3,
                        batch_size=8, progress=False, out=str(tmp_path / "run")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_test"] == expected > 0
    assert metrics["classes"] == list(ck.CLASSES_7) and metrics["fold"] == 0
