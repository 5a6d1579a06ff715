"""Statistics on per-sample test predictions: bootstrap intervals, paired comparisons, calibration.

Everything here works on NumPy arrays of one test split (``labels``, ``preds`` class ids,
``probs`` ``[N, C]``) and imports neither torch nor a method, so that the leaderboard commands
can run it on the prediction files the jobs keep.

- :func:`bootstrap_ci`: percentile intervals for WAR and UAR over the test samples, resampled
  with replacement *within each class* (stratified: every resample keeps the class counts, so
  UAR stays defined and the interval measures the sampling error of the recalls; Efron &
  Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13).
- :func:`paired_difference`: the difference A − B of two methods on the *same* samples; each
  replicate resamples the samples within each seed (stratified, the same draw for A and B),
  then resamples the seeds, so the interval holds seed spread and sampling error together.
- :func:`expected_calibration_error` (15 equal-width confidence bins, Guo et al. ICML 2017)
  and :func:`negative_log_likelihood`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000


def war_uar(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[float, float]:
    """WAR (accuracy) and UAR (mean recall over the classes present in ``labels``)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    correct = labels == preds
    recalls = [correct[labels == c].mean() for c in range(num_classes) if np.any(labels == c)]
    return float(correct.mean()), float(np.mean(recalls))


def _strata(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in range(num_classes) if np.any(labels == c)]


def _resample(strata: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])


def _scores_at(correct: np.ndarray, labels: np.ndarray, sel: np.ndarray, num_classes: int) -> tuple[float, float]:
    c, y = correct[sel], labels[sel]
    per_class = np.bincount(y, weights=c, minlength=num_classes)
    counts = np.bincount(y, minlength=num_classes)
    present = counts > 0
    return float(c.mean()), float((per_class[present] / counts[present]).mean())


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def bootstrap_ci(labels, preds, num_classes: int, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = 0.95) -> dict[str, Interval]:
    """``{"war": Interval, "uar": Interval}``: stratified percentile bootstrap intervals."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    correct = (labels == preds).astype(np.float64)
    strata = _strata(labels, num_classes)
    rng = np.random.default_rng(seed)
    draws = np.array([_scores_at(correct, labels, _resample(strata, rng), num_classes) for _ in range(resamples)])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: Interval(float(np.percentile(draws[:, k], lo)), float(np.percentile(draws[:, k], hi)))
            for k, m in enumerate(("war", "uar"))}


@dataclass(frozen=True)
class Comparison:
    """A − B in WAR and UAR (fractions) with their intervals and a plain verdict per metric."""

    diff: dict[str, float]
    interval: dict[str, Interval]
    seeds: int
    samples: int

    def verdict(self, metric: str, a: str = "A", b: str = "B") -> str:
        iv = self.interval[metric]
        if iv.low > 0:
            return f"{a} better"
        if iv.high < 0:
            return f"{b} better"
        return "no detectable difference"


def paired_difference(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_classes: int, *,
                      resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> Comparison:
    """``pairs``: one ``(labels, preds_a, preds_b)`` per seed (or fold), aligned on the same
    test samples.  Each replicate draws the seeds with replacement and, within each drawn
    seed, the samples (stratified by class, the same draw for A and B); the statistic is the
    mean over the drawn seeds of WAR_A − WAR_B (and UAR)."""
    if not pairs:
        raise ValueError("no paired runs to compare")
    prepared = []
    for labels, pa, pb in pairs:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(pa) or len(labels) != len(pb):
            raise ValueError("paired predictions must cover the same samples")
        prepared.append((labels, (labels == np.asarray(pa)).astype(float), (labels == np.asarray(pb)).astype(float),
                         _strata(labels, num_classes)))
    point = np.mean([np.subtract(_scores_at(ca, y, np.arange(len(y)), num_classes),
                                 _scores_at(cb, y, np.arange(len(y)), num_classes)) for y, ca, cb, _ in prepared], axis=0)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, 2))
    for r in range(resamples):
        chosen = rng.integers(0, len(prepared), len(prepared)) if len(prepared) > 1 else [0]
        diffs = []
        for k in chosen:
            y, ca, cb, strata = prepared[k]
            sel = _resample(strata, rng)
            diffs.append(np.subtract(_scores_at(ca, y, sel, num_classes), _scores_at(cb, y, sel, num_classes)))
        draws[r] = np.mean(diffs, axis=0)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return Comparison(
        diff={"war": float(point[0]), "uar": float(point[1])},
        interval={m: Interval(float(np.percentile(draws[:, k], lo)), float(np.percentile(draws[:, k], hi)))
                  for k, m in enumerate(("war", "uar"))},
        seeds=len(prepared), samples=int(sum(len(p[0]) for p in prepared)),
    )


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE: Σ_b (|B_b| / N) · |accuracy(B_b) − confidence(B_b)| over equal-width bins of the
    top-class probability ((0, 1/15], ..., (14/15, 1]), as torchmetrics' ``l1`` norm."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    acc = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(acc[m].mean() - conf[m].mean())
    return float(ece)


def negative_log_likelihood(probs, labels, eps: float = 1e-12) -> float:
    """Mean −log p(true class)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0)).mean())
