"""A suite's ``external:`` entries: predictions made elsewhere, scored as rows beside the trained ones."""
import contextlib
import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from fer_bench import stats
from fer_bench.bench import leaderboard as lb
from fer_bench.bench.compare import compare
from fer_bench.bench.launch import RUN_DIR_ENV
from fer_bench.cli import main
from fer_bench.evaluation import save_predictions
from fer_bench.score import load_test_split

DATA = {"train_per_class": 4, "val_per_class": 2, "test_per_class": 3}  # 21 test faces, 3 per class
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SUITE = """
suite: ext-tiny
defaults:
  max_epochs: 1
  batch_size: 16
  input_size: 32
  seeds: [0, 1]
  data_args: {train_per_class: 4, val_per_class: 2, test_per_class: 3}
cells:
  - method: resnet18_pretrained
    dataset: synthetic-static
external:
  - method: released_net
    dataset: synthetic-static
    predictions: preds/released_net.csv
    source: "released_net official checkpoint, github.com/example/released_net"
  - method: released_probs
    dataset: synthetic-static
    predictions: preds/released_probs.npz
    source: a checkpoint evaluated by its own code, with probabilities
"""


def _labels() -> np.ndarray:
    y = np.asarray(load_test_split("synthetic-static", None, data_args=DATA).splits["test"].labels)
    assert len(y) == 21 and np.bincount(y, minlength=7).tolist() == [3] * 7
    return y


def _write_labels_csv(path, labels, wrong):
    """Every test face (id = its test position) with its true class, except the ``wrong`` ones (called the next class)."""
    pred = labels.copy()
    pred[wrong] = (labels[wrong] + 1) % 7
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,label\n" + "".join(f"{i},{CLASSES[p]}\n" for i, p in enumerate(pred)))
    return pred


def _by_hand(labels, pred):
    correct = labels == pred
    return correct.mean(), np.mean([correct[labels == c].mean() for c in range(7)])


@contextlib.contextmanager
def _bench_env():
    """The runner exports the run folder for the DDP ranks it starts: undone after an in-process run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RUN_DIR_ENV, "")
        mp.delenv(RUN_DIR_ENV)
        yield mp


def _bench(*args) -> tuple[int, str]:
    out = io.StringIO()
    with _bench_env(), contextlib.redirect_stdout(out):
        rc = main(["bench", *map(str, args), "--no-progress"])
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The suite run once: two seeds of a 1-epoch cell and two external entries with known errors."""
    tmp = tmp_path_factory.mktemp("ext")
    labels = _labels()
    suite = tmp / "suite" / "ext.yaml"
    suite.parent.mkdir()
    suite.write_text(SUITE)
    pred = _write_labels_csv(suite.parent / "preds" / "released_net.csv", labels, wrong=[0, 9])  # 2 errors
    probs_pred = labels.copy()
    probs_pred[5] = (labels[5] + 3) % 7  # 1 error
    probs = 0.8 * np.eye(7)[probs_pred] + 0.2 / 7
    np.savez(suite.parent / "preds" / "released_probs.npz", ids=np.array([str(i) for i in range(21)]), probs=probs)
    boards, run = tmp / "boards", tmp / "run"
    rc, out = _bench(suite, "--leaderboards", boards, "--run-dir", run)
    assert rc == 0, out
    return {"tmp": tmp, "suite": suite, "boards": boards, "run": run, "labels": labels, "pred": pred,
            "probs": probs, "probs_pred": probs_pred, "out": out}


@pytest.mark.slow
def test_an_external_entry_is_a_row_beside_the_trained_ones_with_its_exact_scores(ran):
    v1 = pd.read_csv(ran["boards"] / "ext-tiny" / "v001.csv")
    assert len(v1) == 4 and (v1.status == "ok").all()
    trained, ext = v1[v1.kind == "train"], v1[v1.kind == "external"].set_index("method")
    assert sorted(trained.seed) == [0, 1] and sorted(ext.index) == ["released_net", "released_probs"]
    war, uar = _by_hand(ran["labels"], ran["pred"])
    row = ext.loc["released_net"]
    assert war == pytest.approx(19 / 21)
    assert row.war == pytest.approx(war, abs=1e-12) and row.uar == pytest.approx(uar, abs=1e-12)
    for c, name in enumerate(CLASSES):
        hand = (ran["pred"][ran["labels"] == c] == c).mean()
        assert row[f"recall_{name}"] == pytest.approx(hand, abs=1e-12), name
    assert row.war_ci_low <= row.war <= row.war_ci_high and row.n_test == 21 and row.classes == 7
    assert row.input_kind == "labels" and pd.isna(row.ece)  # no probabilities, no calibration
    # it claims nothing that did not run here: no seed, recipe, epochs, deviations, training, init or TTA
    for col in ("seed", "epochs", "input_size", "batch_size", "augmentation", "pretrained", "tta", "deviations",
                "reconstructed", "paper_protocol", "train_seconds", "params", "best_epoch", "n_train", "selection",
                "torch_version", "devices"):
        assert pd.isna(row[col]), col
    file = ran["suite"].parent / "preds" / "released_net.csv"
    assert row.source == "released_net official checkpoint, github.com/example/released_net"
    assert row.source_sha256 == hashlib.sha256(file.read_bytes()).hexdigest() and row.source_file == str(file.resolve())
    assert row.config_hash.startswith("ext-") and row.config_hash not in set(trained.config_hash)
    # the probabilities entry gets its calibration, as a run's row does
    p = ext.loc["released_probs"]
    assert p.war == pytest.approx(20 / 21, abs=1e-12) and p.input_kind == "probabilities"
    assert p.ece == pytest.approx(stats.expected_calibration_error(ran["probs"], ran["labels"]), abs=1e-9)
    # the kept predictions are in a run's layout, on the trained rows' test samples
    kept = np.load(row.predictions)
    assert np.array_equal(kept["pred"], ran["pred"]) and np.array_equal(kept["label"], ran["labels"])
    assert np.array_equal(np.load(trained.predictions.iloc[0])["index"], kept["index"])
    assert "2 external (0 already scored)" in ran["out"]


@pytest.mark.slow
def test_the_readme_page_and_show_mark_it_external(ran):
    folder = ran["boards"] / "ext-tiny"
    readme = (folder / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("| released_net |"))
    assert "| 90.48 [" in line and "| 1 | external 7cls |" in line  # no std over seeds: it has none
    assert "ext: predictions made elsewhere, scored here (released_net official checkpoint" in line
    assert "- ext = external: predictions made elsewhere" in readme
    trained = next(ln for ln in readme.splitlines() if ln.startswith("| resnet18_pretrained |"))
    assert "external" not in trained
    page = (folder / "index.html").read_text()
    assert "released_net official checkpoint" in page and "ext = external" in page and "± nan" not in page
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["leaderboard", "show", "ext-tiny", "--leaderboards", str(ran["boards"])]) == 0
    shown = out.getvalue()
    assert "external 7cls" in shown and "ext = external: predictions made elsewhere" in shown


@pytest.mark.slow
def test_compare_pairs_the_external_model_with_each_seed_and_gives_a_verdict(ran, capsys):
    rc = main(["leaderboard", "compare", "ext-tiny", "released_net", "resnet18_pretrained", "--dataset",
               "synthetic-static", "--leaderboards", str(ran["boards"]), "--resamples", "300", "--version", "v001"])
    out = capsys.readouterr().out
    assert rc == 0 and "synthetic-static: WAR " in out
    assert "WAR released_net better" in out  # 19/21 against one epoch on 28 faces
    df = lb.read_version(ran["boards"] / "ext-tiny", "v001")
    rec = compare(df, "released_net", "resnet18_pretrained", resamples=200)[0]
    trained = df[df.kind == "train"]
    assert rec["pairs"] == 2 and rec["samples"] == 42  # the one external model against each of the 2 seeds
    assert rec["war_a"] == pytest.approx(100 * 19 / 21) and rec["war_b"] == pytest.approx(100 * trained.war.mean())
    assert rec["diff_war"] == pytest.approx(100 * (19 / 21 - trained.war.mean()))
    assert "one external model" in rec["note"] and "not released_net's training noise" in rec["note"]


@pytest.mark.slow
def test_resuming_does_not_rescore_and_a_changed_file_is_a_new_entry(ran, monkeypatch):
    import fer_bench.score

    calls = []
    real = fer_bench.score.score_predictions

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(fer_bench.score, "score_predictions", spy)
    rows = sorted((ran["run"] / "rows").glob("external*.json"))
    before = {p.name: p.read_text() for p in rows}
    assert len(before) == 2
    rc, out = _bench(ran["suite"], "--leaderboards", ran["boards"], "--resume", ran["run"])
    assert rc == 0 and calls == [] and "2 already done" in out and "(2 already scored)" in out
    assert {p.name: p.read_text() for p in rows} == before
    assert lb.versions(ran["boards"] / "ext-tiny") == ["v001"]  # nothing new: nothing published again
    # one more error in the file: another SHA-256, another entry, scored and published
    _write_labels_csv(ran["suite"].parent / "preds" / "released_net.csv", ran["labels"], wrong=[0, 9, 14])
    rc, out = _bench(ran["suite"], "--leaderboards", ran["boards"], "--resume", ran["run"])
    assert rc == 0 and len(calls) == 1 and "(1 already scored)" in out
    v2 = pd.read_csv(ran["boards"] / "ext-tiny" / "v002.csv")
    v1 = pd.read_csv(ran["boards"] / "ext-tiny" / "v001.csv")
    new = v2[v2.method == "released_net"]
    assert len(v2) == 4 and len(new) == 1 and new.war.iloc[0] == pytest.approx(18 / 21, abs=1e-12)
    assert new.config_hash.iloc[0] != v1[v1.method == "released_net"].config_hash.iloc[0]
    assert sorted(v2[v2.kind == "train"].job) == sorted(v1[v1.kind == "train"].job)  # the jobs were not run again


# -- refused at load time, before any work ---------------------------------------------------------------
BAD = {
    "missing file": ("predictions: preds/nope.csv", ["external entry 1 (ext/synthetic-static)", "no such file",
                                                     "nope.csv"]),
    "unknown dataset": ("dataset: nonesuch", ["external entry 1 (ext/nonesuch)", "a registered dataset",
                                              "'nonesuch'"]),
    "unknown key": ("seeds: [0, 1]", ["only the keys method, dataset, predictions, source, fold, data_args",
                                      "found seeds"]),
    "no source": ("source: ''", ["'source': who made the predictions", "found ''"]),
    "a cell's method": ("method: resnet18_pretrained", ["a method name no cell of this suite runs on synthetic-static",
                                                        "'resnet18_pretrained'"]),
    "bad data_args": ("data_args: {test_per_klass: 3}", ["data_args the dataset accepts", "test_per_klass"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_entry_exits_2_with_one_line_before_any_work(tmp_path, capsys, case):
    change, words = BAD[case]
    key = change.split(":")[0]
    entry = {"method": "method: ext", "dataset": "dataset: synthetic-static", "predictions": "predictions: p.csv",
             "source": "source: somebody"}
    if key in entry:
        entry[key] = change
    else:
        entry["extra"] = change
    (tmp_path / "p.csv").write_text("id,label\n0,happy\n")
    suite = tmp_path / "bad.yaml"
    suite.write_text("suite: bad\ncells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n"
                     "external:\n  - " + "\n    ".join(entry.values()) + "\n")
    with _bench_env():
        rc = main(["bench", str(suite), "--run-dir", str(tmp_path / "run"), "--leaderboards", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"fer-bench: error: {suite}: expected ")
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_predictions_that_do_not_match_the_test_split_stop_the_run_before_any_job(tmp_path, capsys):
    labels = _labels()
    _write_labels_csv(tmp_path / "p.csv", labels, wrong=[])
    (tmp_path / "p.csv").write_text("\n".join((tmp_path / "p.csv").read_text().splitlines()[:-2]) + "\n")  # 2 missing
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.split("external:")[0] + "external:\n  - {method: ext, dataset: synthetic-static, "
                     "predictions: p.csv, source: somebody}\n")
    with _bench_env():
        rc = main(["bench", str(suite), "--run-dir", str(tmp_path / "run"), "--leaderboards", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "external entry ext/synthetic-static" in err and "2 of the 21 test samples" in err
    assert not (tmp_path / "run" / "rows").exists() and not (tmp_path / "run" / "plan.json").exists()


# -- the pairing, on constructed rows ----------------------------------------------------------------------
def _rows(tmp_path, labels, b_preds, ext_pred, ext_index=None):
    rows = []
    for seed, (index, pred) in enumerate(b_preds):
        path = save_predictions(tmp_path / f"b{seed}.npz", {"index": index, "label": labels[index], "pred": pred,
                                                            "probs": np.eye(7)[pred]}, [str(i) for i in index], CLASSES)
        war, uar = stats.war_uar(labels[index], pred, 7)
        rows.append({"method": "b", "dataset": "d", "kind": "train", "fold": None, "seed": seed, "war": war, "uar": uar,
                     "status": "ok", "predictions": str(path)})
    index = np.arange(len(labels)) if ext_index is None else ext_index
    path = save_predictions(tmp_path / "ext.npz", {"index": index, "label": labels[index], "pred": ext_pred,
                                                   "probs": np.full((len(index), 7), np.nan)}, [str(i) for i in index],
                            CLASSES)
    war, uar = stats.war_uar(labels[index], ext_pred, 7)
    rows.append({"method": "ext", "dataset": "d", "kind": "external", "fold": None, "seed": None, "war": war,
                 "uar": uar, "status": "ok", "predictions": str(path)})
    return pd.DataFrame(rows)


def test_an_external_row_is_paired_with_every_seed_and_restricted_to_a_reduced_test_set(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 30)
    ext = np.where(rng.random(210) < 0.9, labels, (labels + 1) % 7)
    seeds = [np.where(rng.random(210) < acc, labels, (labels + 2) % 7) for acc in (0.5, 0.55, 0.6)]
    df = _rows(tmp_path, labels, [(np.arange(210), p) for p in seeds], ext)
    rec = compare(df, "ext", "b", resamples=300)[0]
    assert rec["pairs"] == 3 and rec["samples"] == 630
    mean_b = np.mean([(p == labels).mean() for p in seeds])
    assert rec["diff_war"] == pytest.approx(100 * ((ext == labels).mean() - mean_b))
    assert rec["verdict_war"] == "ext better" and "paired with each of the 3 run(s) of b" in rec["note"]
    back = compare(df, "b", "ext", resamples=300)[0]
    assert back["diff_war"] == pytest.approx(-rec["diff_war"]) and back["verdict_war"] == "ext better"
    # the other method tested on 5 faces per class (limit_per_class): the external predictions are restricted to them
    sub = np.sort(np.concatenate([np.flatnonzero(labels == c)[:5] for c in range(7)]))
    df = _rows(tmp_path, labels, [(sub, seeds[0][sub])], ext)
    rec = compare(df, "ext", "b", resamples=200)[0]
    assert rec["samples"] == 35 and rec["war_a"] == pytest.approx(100 * (ext[sub] == labels[sub]).mean())
    # but a trained pair on different samples is still refused
    df = _rows(tmp_path, labels, [(sub, seeds[0][sub])], ext[sub[:-1]], ext_index=sub[:-1])
    with pytest.raises(Exception, match="tested on different samples"):
        compare(df, "ext", "b", resamples=50)
