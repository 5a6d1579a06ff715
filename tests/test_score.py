"""``fer-bench score``: predictions made elsewhere, scored on a dataset's test split as a run's test."""
import json
import os

import numpy as np
import pytest

from fer_bench import stats
from fer_bench.cli import main
from fer_bench.evaluation import load_predictions, sample_ids, save_predictions
from fer_bench.score import load_test_split, score_predictions

DATA = {"train_per_class": 2, "val_per_class": 1, "test_per_class": 3}  # 21 test faces, 3 per class
D_FLAGS = [a for k, v in DATA.items() for a in ("-d", f"{k}={v}")]
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def labels():
    """The test labels of the synthetic set, in test order (sample id = test position)."""
    dm = load_test_split("synthetic-static", None, data_args=DATA)
    assert list(dm.classes) == CLASSES
    y = np.asarray(dm.splits["test"].labels)
    assert len(y) == 21 and np.bincount(y, minlength=7).tolist() == [3] * 7
    return y


def _csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _war_uar_by_hand(y, pred):
    correct = y == pred
    return correct.mean(), np.mean([correct[y == c].mean() for c in range(7)])


def test_a_runs_own_predictions_npz_scores_exactly_its_numbers(tmp_path):
    from fer_bench.train import TrainConfig, run

    res = run(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", max_epochs=1, batch_size=16,
                          input_size=32, progress=False, out=str(tmp_path / "run"), seed=2, data_args=dict(DATA)))
    # the run's seed seeds the bootstrap as in the run: the intervals are the run's too
    got = score_predictions("synthetic-static", None, res["predictions"], data_args={**DATA, "seed": 2},
                            out=tmp_path / "scored")
    assert got["source"] == "external" and got["input_kind"] == "probabilities"
    assert got["war"] == res["war"] and got["uar"] == res["uar"]
    assert got["per_class_recall"] == res["per_class_recall"] and got["confusion"] == res["confusion"]
    assert got["n_test"] == res["n_test"] == 21
    for k in ("war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "bootstrap_resamples"):
        assert got[k] == res[k], k
    assert got["ece"] == pytest.approx(res["ece"], abs=1e-6) and got["nll"] == pytest.approx(res["nll"], abs=1e-6)
    # the written predictions.npz is a run's layout over the same samples and labels
    mine, theirs = load_predictions(got["predictions"]), load_predictions(res["predictions"])
    assert sorted(mine) == sorted(theirs)
    for k in ("index", "label", "pred", "sample_id", "classes"):
        assert np.array_equal(mine[k], theirs[k]), k
    assert json.loads((tmp_path / "scored" / "metrics.json").read_text())["war"] == res["war"]


def test_probabilities_csv_scores_as_its_argmax_labels_and_gives_calibration(tmp_path, labels):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7) * 0.5, size=21)
    probs[labels == 3, 3] += 2.0  # every happy face right, the rest by chance
    probs *= rng.uniform(0.5, 3.0, size=(21, 1))  # rows need not sum to 1
    pred = probs.argmax(1)
    order = rng.permutation(21)  # rows in any order: matched by id
    by_probs = _csv(tmp_path / "probs.csv", ["id", *CLASSES[::-1]],  # columns in any order: matched by name
                    [[i, *(f"{p:.17g}" for p in probs[i][::-1])] for i in order])
    by_name = _csv(tmp_path / "labels.csv", ["id", "label"], [[i, CLASSES[pred[i]]] for i in order])
    by_index = _csv(tmp_path / "index.csv", ["id", "pred"], [[i, pred[i]] for i in order])
    p = score_predictions("synthetic-static", None, by_probs, data_args=DATA)
    n = score_predictions("synthetic-static", None, by_name, data_args=DATA)
    i = score_predictions("synthetic-static", None, by_index, data_args=DATA)
    war, uar = _war_uar_by_hand(labels, pred)
    assert 0 < war < 1 and p["per_class_recall"]["happy"] == 1.0
    for r in (p, n, i):
        assert r["war"] == pytest.approx(war) and r["uar"] == pytest.approx(uar)
        assert r["per_class_recall"] == p["per_class_recall"] and r["war_ci_low"] <= war <= r["war_ci_high"]
    normed = probs / probs.sum(1, keepdims=True)
    assert p["ece"] == pytest.approx(stats.expected_calibration_error(normed, labels)) and p["ece"] > 0
    assert p["nll"] == pytest.approx(stats.negative_log_likelihood(normed, labels))
    assert "ece" not in n and "nll" not in n and n["input_kind"] == "labels"


def test_a_class_never_predicted_has_recall_zero_and_lowers_uar(tmp_path, labels):
    pred = labels.copy()
    pred[labels == 2] = 3  # fear is never predicted: its three faces are called happy
    path = tmp_path / "p.npz"
    np.savez(path, ids=np.array([str(i) for i in range(21)]), preds=pred)
    r = score_predictions("synthetic-static", None, path, data_args=DATA)
    assert r["per_class_recall"]["fear"] == 0.0 and r["per_class_recall"]["happy"] == 1.0
    assert r["war"] == pytest.approx(18 / 21) and r["uar"] == pytest.approx(6 / 7)  # not 6/6 over the predicted classes
    assert list(r["per_class_recall"]) == CLASSES and r["absent_classes"] == []


def _label_rows(labels, ids=None):
    ids = list(range(21)) if ids is None else ids
    return [[i, CLASSES[labels[int(i)]] if str(i).isdigit() else "happy"] for i in ids]


@pytest.mark.parametrize("case, ids, words", [
    ("missing", [i for i in range(21) if i not in (7, 12)], ["2 of the 21 test samples", "no prediction", "'7'", "'12'"]),
    ("duplicate", list(range(21)) + [4], ["1 duplicate id", "'4'"]),
    ("unknown", list(range(21)) + ["nope.jpg"], ["1 id(s) not in the test split of synthetic-static", "'nope.jpg'"]),
])
def test_missing_duplicate_and_unknown_ids_are_refused_in_one_line(tmp_path, labels, capsys, case, ids, words):
    path = _csv(tmp_path / f"{case}.csv", ["id", "label"], _label_rows(labels, ids))
    rc = main(["score", "--dataset", "synthetic-static", *D_FLAGS, "--out", str(tmp_path / "out"), str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("fer-bench: error: ") and str(path) in err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "out").exists() and "WAR" not in out  # refused before anything was scored


def test_malformed_files_are_refused_naming_the_file_and_what_was_expected(tmp_path, labels, capsys):
    good = np.eye(7)[labels]
    ids = [str(i) for i in range(21)]
    np.savez(tmp_path / "narrow.npz", ids=np.array(ids), probs=good[:, :6])
    neg = good.copy()
    neg[5, 0] = -0.5
    np.savez(tmp_path / "negative.npz", ids=np.array(ids), probs=neg)
    zero = good.copy()
    zero[3] = 0
    np.savez(tmp_path / "zero.npz", ids=np.array(ids), probs=zero)
    np.savez(tmp_path / "full.npz", ids=np.array(ids), probs=good)
    whole = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    np.savez(tmp_path / "keys.npz", names=np.array(ids), preds=labels)
    rows = _label_rows(labels)
    rows[9][1] = "bored"
    _csv(tmp_path / "class.csv", ["id", "label"], rows)
    text = _csv(tmp_path / "cut.csv", ["id", *CLASSES], [[i, *good[i]] for i in range(21)]).read_text()
    (tmp_path / "cut.csv").write_text(text[: text.rindex(",")])  # the last row ends early
    _csv(tmp_path / "contempt.csv", ["id", *CLASSES, "contempt"], [[i, *good[i], 0] for i in range(21)])
    _csv(tmp_path / "header.csv", ["name", "label"], rows)
    expect = {
        "narrow.npz": "expected N x 7", "negative.npz": "negative value (give probabilities",
        "zero.npz": "summing to 0 (first: row 4)", "truncated.npz": "unreadable or truncated",
        "keys.npz": "'sample_id' (or 'ids')", "class.csv": "line 11: expected a class of the dataset",
        "cut.csv": "line 22: expected 8 fields", "contempt.csv": "not a class of the dataset: contempt",
        "header.csv": "line 1: expected a header with 'id'",
    }
    for name, words in expect.items():
        rc = main(["score", "--dataset", "synthetic-static", *D_FLAGS, str(tmp_path / name)])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and str(tmp_path / name) in err, (name, err)
        assert words in err, (name, err)


def test_the_command_prints_the_table_json_and_writes_a_rescorable_run_layout(tmp_path, labels, capsys):
    pred = labels.copy()
    pred[[0, 5]] = (labels[[0, 5]] + 1) % 7
    path = _csv(tmp_path / "p.csv", ["id", "label"], [[i, int(p)] for i, p in enumerate(pred)])
    assert main(["score", "--dataset", "synthetic-static", *D_FLAGS, "--out", str(tmp_path / "o"), str(path)]) == 0
    out = capsys.readouterr().out
    war, uar = _war_uar_by_hand(labels, pred)
    assert f"{100 * war:.2f}" in out and f"{100 * uar:.2f}" in out and "recall neutral" in out and "95 % interval" in out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["source"] == "external" and m["war"] == pytest.approx(war) and "ece" not in m
    written = load_predictions(m["predictions"])  # what leaderboard compare reads
    assert written["index"].tolist() == list(range(21)) and np.array_equal(written["label"], labels)
    assert np.array_equal(written["pred"], pred) and written["probs"].shape == (21, 7)
    # labels only: the probabilities are unknown (NaN), and the file scores the same again
    assert np.isnan(written["probs"]).all()
    assert main(["score", "--dataset", "synthetic-static", *D_FLAGS, "--json", m["predictions"]]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["war"] == m["war"] and again["uar"] == m["uar"] and "ece" not in again


def test_a_files_ids_may_be_paths_relative_to_the_root(tmp_path):
    from fer_bench.synth import write_layout

    root = tmp_path / "if"
    write_layout("imagefolder", str(root), per_class=2, seed=0)
    dm = load_test_split("imagefolder", str(root))
    test = dm.splits["test"]
    ids = sample_ids(dm, "test", np.arange(len(test)))
    y = np.asarray(test.labels)
    rel = [os.path.relpath(i, root) for i in ids]
    assert all(not r.startswith("..") for r in rel) and rel != ids
    path = tmp_path / "rel.npz"
    save_predictions(path, {"index": np.arange(len(y)), "label": y, "pred": y, "probs": np.eye(7)[y]}, rel, CLASSES)
    r = score_predictions("imagefolder", str(root), path)
    assert r["war"] == 1.0 and r["uar"] == 1.0 and r["n_test"] == len(y) > 0
