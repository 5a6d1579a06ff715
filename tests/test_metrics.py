import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_bench.metrics import FERMetrics, MissingClassWarning, dedup_by_index

from conftest import free_port

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def numpy_scores(pred: np.ndarray, target: np.ndarray, k: int):
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (target, pred), 1)
    support = cm.sum(1)
    recall = np.array([cm[c, c] / support[c] if support[c] else np.nan for c in range(k)])
    return (pred == target).mean(), np.nanmean(recall), recall, cm


def test_war_uar_recall_confusion_match_numpy():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 7, 500)
    pred = np.where(rng.random(500) < 0.6, target, rng.integers(0, 7, 500))
    m = FERMetrics(CLASSES)
    for s in range(0, 500, 64):
        m.update(torch.tensor(pred[s:s + 64]), torch.tensor(target[s:s + 64]), torch.arange(s, min(s + 64, 500)))
    got = m.compute()
    war, uar, recall, cm = numpy_scores(pred, target, 7)
    assert got.war == pytest.approx(war, abs=1e-12)
    assert got.uar == pytest.approx(uar, abs=1e-12)
    assert [got.per_class_recall[c] for c in CLASSES] == pytest.approx(list(recall))
    assert got.confusion == cm.tolist()
    assert got.n == 500


def test_class_never_predicted_counts_zero_in_uar():
    # 4 classes present, "fear" has samples but is never predicted
    target = torch.tensor([0, 0, 2, 2, 3, 3, 4, 4, 5, 6])
    pred = torch.tensor([0, 0, 3, 3, 3, 3, 4, 4, 5, 6])
    m = FERMetrics(CLASSES)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m.update(pred, target, torch.arange(10))
        s = m.compute()
    assert s.per_class_recall["fear"] == 0.0
    # disgust has no samples: excluded (None) and warned, 6 classes averaged
    assert s.per_class_recall["disgust"] is None
    assert s.uar == pytest.approx((1 + 0 + 1 + 1 + 1 + 1) / 6)
    assert s.war == pytest.approx(0.8)
    assert any(issubclass(w.category, MissingClassWarning) and "disgust" in str(w.message) for w in rec)


def test_soft_targets_and_logits_use_argmax():
    logits = torch.tensor([[2.0, 0.1, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]])
    m = FERMetrics(["a", "b", "c"])
    m.update(logits, soft, torch.arange(3))
    s = m.compute()
    assert s.war == pytest.approx(2 / 3)
    assert s.confusion == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]


def test_duplicate_indices_count_once():
    idx = torch.tensor([3, 1, 2, 3, 1])
    i, p = dedup_by_index(idx, torch.tensor([30, 10, 20, 31, 11]))
    assert i.tolist() == [1, 2, 3] and p.tolist() == [10, 20, 30]
    m = FERMetrics(["a", "b"])
    m.update(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]))
    m.update(torch.tensor([1]), torch.tensor([0]), torch.tensor([0]))  # padded duplicate of sample 0
    assert m.compute().war == pytest.approx(2 / 3)



@pytest.mark.slow
def test_metrics_exact_under_two_process_gloo_ddp(tmp_path):
    out = tmp_path / "ddp.json"
    worker = Path(__file__).with_name("_ddp_metrics_worker.py")
    subprocess.run([sys.executable, str(worker), str(free_port()), str(out)], check=True, timeout=300)
    res = json.loads(out.read_text())
    sys.path.insert(0, str(worker.parent))
    from _ddp_metrics_worker import data

    logits, target = data()
    war, uar, recall, cm = numpy_scores(logits.argmax(1), target, 7)
    exact = res["exact"]
    assert res["per_rank"] == 51  # 101 samples padded to 102 by DistributedSampler
    assert exact["n_evaluated"] == 101
    assert exact["war"] == pytest.approx(war, abs=1e-6)
    assert exact["uar"] == pytest.approx(uar, abs=1e-6)
    assert exact["confusion"] == cm.tolist()
    assert exact["per_class_recall"]["disgust"] == 0.0  # never predicted, still averaged
    # counting the padded duplicate would have given a different (wrong) figure
    assert res["naive"]["n_evaluated"] == 102
    assert abs(res["naive"]["war"] - war) > 1e-3
