"""Per-sample predictions, bootstrap intervals, paired comparisons and calibration."""
import numpy as np
import pytest
import torch

from fer_bench import stats
from fer_bench.evaluation import load_predictions


def _preds(n_per_class=60, k=7, acc=0.6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per_class)
    right = rng.random(len(labels)) < acc
    wrong = (labels + rng.integers(1, k, len(labels))) % k
    return labels, np.where(right, labels, wrong)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_samples():
    labels, preds = _preds()
    war, uar = stats.war_uar(labels, preds, 7)
    ci = stats.bootstrap_ci(labels, preds, 7, resamples=500, seed=1)
    assert ci["war"].contains(war) and ci["uar"].contains(uar)
    assert ci == stats.bootstrap_ci(labels, preds, 7, resamples=500, seed=1)  # seeded
    big_labels, big_preds = _preds(n_per_class=600)
    big = stats.bootstrap_ci(big_labels, big_preds, 7, resamples=500, seed=1)
    assert (big["war"].high - big["war"].low) < 0.5 * (ci["war"].high - ci["war"].low)
    # binomial check: the 95 % half-width of an accuracy near 0.6 over 420 samples is about 0.047
    assert (ci["war"].high - ci["war"].low) / 2 == pytest.approx(1.96 * np.sqrt(war * (1 - war) / 420), rel=0.25)


def test_uar_counts_a_never_predicted_class_as_zero():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 0, 1, 1, 0, 1])  # class 2 never predicted
    assert stats.war_uar(labels, preds, 3) == (pytest.approx(4 / 6), pytest.approx(2 / 3))


def test_paired_comparison_knows_the_answer_both_ways():
    labels, a = _preds(acc=0.7, seed=3)
    same = stats.paired_difference([(labels, a, a.copy())], 7, resamples=300)
    assert same.diff["war"] == 0 and same.verdict("war") == "no detectable difference"
    assert same.verdict("uar") == "no detectable difference"
    # B is A with 10 % of the samples turned wrong: A is right on 10 % more samples
    rng = np.random.default_rng(4)
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a == labels), size=len(labels) // 10, replace=False)
    b[flip] = (labels[flip] + 1) % 7
    pairs = [(labels, a, b)] * 3
    cmp = stats.paired_difference(pairs, 7, resamples=300)
    assert cmp.diff["war"] == pytest.approx(0.1, abs=0.01)
    assert cmp.verdict("war", "A", "B") == "A better"
    assert stats.paired_difference([(labels, b, a)] * 3, 7, resamples=300).verdict("war") == "B better"


def test_ece_equals_torchmetrics_and_nll_is_the_mean_log_loss():
    from torchmetrics.classification import MulticlassCalibrationError

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 7)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 7, 300)
    ours = stats.expected_calibration_error(probs, labels)
    ref = MulticlassCalibrationError(num_classes=7, n_bins=15, norm="l1")(torch.tensor(probs), torch.tensor(labels))
    assert ours == pytest.approx(float(ref), abs=1e-6)
    assert stats.negative_log_likelihood(probs, labels) == pytest.approx(-np.log(probs[np.arange(300), labels]).mean())
    onehot = np.eye(7)[labels]
    assert stats.expected_calibration_error(onehot, labels) == pytest.approx(0.0)  # confident and right


def test_a_run_keeps_its_predictions_and_they_give_its_numbers(tmp_path):
    from fer_bench.train import TrainConfig, run

    cfg = TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", max_epochs=1, batch_size=16, input_size=32,
                      progress=False, out=str(tmp_path), seed=2,
                      data_args={"train_per_class": 6, "val_per_class": 3, "test_per_class": 5})
    res = run(cfg)
    preds = load_predictions(res["predictions"])
    assert len(preds["index"]) == res["n_test"] == 35 and len(set(preds["index"].tolist())) == 35
    war, uar = stats.war_uar(preds["label"], preds["pred"], 7)
    assert war == res["war"] and uar == pytest.approx(res["uar"], abs=1e-12)
    assert np.allclose(preds["probs"].sum(1), 1, atol=1e-5) and (preds["probs"].argmax(1) == preds["pred"]).all()
    assert list(preds["classes"]) == res["classes"]
    assert res["war_ci_low"] <= res["war"] <= res["war_ci_high"] and res["bootstrap_resamples"] == 1000
    assert res["ece"] == pytest.approx(stats.expected_calibration_error(preds["probs"], preds["label"]))
    assert res["nll"] > 0 and res["train_samples_per_s"] > 0 and res["test_samples_per_s"] > 0
    assert res["peak_memory_mb"] > 100


def _board(tmp_path, runs):
    """A leaderboard version whose rows point at constructed prediction files."""
    from fer_bench.bench import leaderboard as lb
    from fer_bench.evaluation import save_predictions

    rows = []
    for method, seed, labels, preds in runs:
        path = tmp_path / "runs" / f"{method}-{seed}.npz"
        probs = np.eye(7)[preds] * 0.9 + 0.1 / 7
        save_predictions(path, {"index": np.arange(len(labels)), "label": labels, "pred": preds, "probs": probs},
                         [str(i) for i in range(len(labels))], [f"c{k}" for k in range(7)])
        war, uar = stats.war_uar(labels, preds, 7)
        ci = stats.bootstrap_ci(labels, preds, 7, resamples=200, seed=seed)
        rows.append({"suite": "s", "method": method, "dataset": "rafdb", "fold": None, "seed": seed, "war": war,
                     "job": f"{method}/rafdb/seed{seed}", "recall_angry": 0.5,
                     "uar": uar, "status": "ok", "predictions": str(path), "war_ci_low": ci["war"].low,
                     "war_ci_high": ci["war"].high, "uar_ci_low": ci["uar"].low, "uar_ci_high": ci["uar"].high})
    lb.write_version(tmp_path / "boards" / "s", rows)
    return tmp_path / "boards"


def test_leaderboard_compare_prints_a_verdict_known_both_ways(tmp_path):
    from conftest import run_cli

    runs = []
    for seed in (0, 1):
        labels, a = _preds(acc=0.7, seed=10 + seed)
        b = a.copy()
        flip = np.random.default_rng(seed).choice(np.flatnonzero(a == labels), size=len(labels) // 10, replace=False)
        b[flip] = (labels[flip] + 1) % 7
        runs += [("good", seed, labels, a), ("copy", seed, labels, a.copy()), ("worse", seed, labels, b)]
    boards = _board(tmp_path, runs)
    out = run_cli("leaderboard", "compare", "s", "good", "worse", "--leaderboards", str(boards), "--resamples", "300")
    assert "rafdb: WAR good better" in out.stdout
    out = run_cli("leaderboard", "compare", "s", "good", "copy", "--leaderboards", str(boards), "--resamples", "300")
    assert "rafdb: WAR no detectable difference" in out.stdout and "UAR no detectable difference" in out.stdout
    out = run_cli("leaderboard", "compare", "s", "worse", "good", "--leaderboards", str(boards), "--resamples", "300")
    assert "rafdb: WAR good better" in out.stdout
    bad = run_cli("leaderboard", "compare", "s", "good", "nope", "--leaderboards", str(boards), check=False)
    assert bad.returncode == 2 and "no successful run of 'nope'" in bad.stderr


def test_readme_interval_holds_seed_spread_and_sampling_error(tmp_path):
    from fer_bench.bench import leaderboard as lb

    runs = []
    for seed in (0, 1, 2):
        labels, a = _preds(acc=0.6 + 0.05 * seed, seed=seed)
        runs.append(("m", seed, labels, a))
    boards = _board(tmp_path, runs)
    df = lb.read_version(boards / "s")
    s = lb.summarise(df).iloc[0]
    vals = 100 * df["war"]
    boot = 100 * (df["war_ci_high"] - df["war_ci_low"]) / (2 * 1.96)
    expected = 1.96 * np.sqrt(vals.var(ddof=1) / 3 + (boot ** 2).mean())
    assert s["war_ci"] == pytest.approx(expected)
    assert s["war_ci"] > 1.96 * vals.std(ddof=1) / np.sqrt(3)  # wider than the seed spread alone
    table = lb.markdown_table(lb.summarise(df))
    assert f"[{s['war'] - expected:.2f}, {s['war'] + expected:.2f}]" in table


def test_cross_dataset_eval_excludes_the_unshared_class_and_matches_a_hand_computation(tmp_path):
    from fer_bench.synth import write_layout
    from fer_bench.train import TrainConfig, run

    from conftest import run_cli

    res = run(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", max_epochs=1, batch_size=16, input_size=32,
                          progress=False, out=str(tmp_path / "train"), seed=0,
                          data_args={"train_per_class": 6, "val_per_class": 3, "test_per_class": 5}))
    assert (tmp_path / "train" / "reliability.png").stat().st_size > 3000
    write_layout("imagefolder", str(tmp_path / "if8"), per_class=4, seed=1, contempt=True)  # 8 classes
    out = tmp_path / "cross"
    proc = run_cli("eval", "--checkpoint", res["checkpoint"], "--dataset", "imagefolder", "--root",
                   str(tmp_path / "if8"), "--out", str(out), timeout=300)
    assert "excluded: contempt (4 samples)" in proc.stdout
    import json

    m = json.loads((out / "metrics.json").read_text())
    assert m["excluded_dataset_classes"] == ["contempt"] and m["excluded_model_classes"] == []
    assert m["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    p = load_predictions(m["predictions"])
    assert len(p["label"]) == m["n_test"] == 28 and m["n_excluded"] == 4
    # by hand: accuracy and the mean of the seven recalls over the kept samples
    correct = p["label"] == p["pred"]
    assert m["war"] == pytest.approx(correct.mean())
    assert m["uar"] == pytest.approx(np.mean([correct[p["label"] == c].mean() for c in range(7)]))


def test_class_mapping_goes_through_the_canonical_names():
    from fer_bench.transfer import class_mapping

    mp = class_mapping(["angry", "happy", "contempt"], ["happy", "sad", "angry"])
    assert mp["shared"] == ["happy", "angry"] and mp["columns"] == [1, 0]
    assert mp["label_map"].tolist() == [0, -1, 1]
    assert mp["excluded_dataset_classes"] == ["sad"] and mp["excluded_model_classes"] == ["contempt"]


def test_a_suite_with_cross_eval_gives_a_transfer_matrix(tmp_path):
    import pandas as pd

    from fer_bench.synth import write_layout

    from conftest import run_cli

    write_layout("imagefolder", str(tmp_path / "data" / "imagefolder"), per_class=3, seed=2, contempt=True)
    suite = tmp_path / "x.yaml"
    suite.write_text("suite: x\ndefaults: {max_epochs: 1, batch_size: 16, input_size: 32, seeds: [0]}\ncells:\n"
                     "  - {method: resnet18_pretrained, dataset: synthetic-static, cross_eval: [imagefolder],\n"
                     "     data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}}\n")
    boards = tmp_path / "boards"
    run_cli("bench", str(suite), "--leaderboards", str(boards), "--no-progress", "--run-dir", str(tmp_path / "run"),
            "--data-root", str(tmp_path / "data"), timeout=400)
    df = pd.read_csv(boards / "x" / "v001.csv")
    cross = df[df["kind"] == "cross"].iloc[0]
    assert cross["eval_dataset"] == "imagefolder" and cross["excluded_classes"] == "contempt"
    assert cross["n_test"] == 21 and cross["n_excluded"] == 3 and cross["status"] == "ok"
    p = load_predictions(cross["predictions"])
    assert cross["war"] == pytest.approx((p["label"] == p["pred"]).mean())
    assert len(df[df["kind"] == "train"]) == 1  # the summary and regress see the trained row only
    readme = (boards / "x" / "README.md").read_text()
    assert "Cross-dataset transfer" in readme and "| resnet18_pretrained | synthetic-static |" in readme
    assert (boards / "x" / "transfer.png").stat().st_size > 5000


def test_the_leaderboard_page_is_self_contained_and_holds_every_row(tmp_path):
    from html.parser import HTMLParser

    import pandas as pd

    from fer_bench.bench.page import write_page

    runs = []
    for method in ("good", "worse"):
        for seed in (0, 1):
            labels, a = _preds(acc=0.7 if method == "good" else 0.5, seed=seed)
            runs.append((method, seed, labels, a))
    boards = _board(tmp_path, runs)
    for r in runs:  # a reliability diagram beside each predictions file, as a job writes it
        from fer_bench.evaluation import plot_reliability

        plot_reliability(np.eye(7)[r[3]] * 0.9 + 0.1 / 7, r[2], tmp_path / "runs" / "reliability.png")
    page = write_page(boards / "s", "s")
    text = page.read_text()

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.jobs, self.external = [], []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "tr" and "data-job" in a:
                self.jobs.append(a["data-job"])
            for key in ("src", "href"):
                if key in a and not a[key].startswith(("data:", "#")):
                    self.external.append(a[key])

    parser = Rows()
    parser.feed(text)
    csv = pd.read_csv(boards / "s" / "v001.csv")
    assert len(parser.jobs) == len(csv) == 4  # every CSV row is on the page
    assert parser.external == [] and "<script src" not in text  # nothing fetched
    assert "data:image/png;base64," in text and "good" in text and "Per-class recall" in text
