"""What a run's test predictions say: the predictions file, its intervals, calibration and cost.

Every run keeps its test split's per-sample record in ``predictions.npz`` beside its
``metrics.json``: ``index`` (position in the test split), ``sample_id`` (file or clip path,
else the index), ``label``, ``pred``, ``probs`` ``[N, C]`` and ``classes``; each sample once,
also under DDP (:meth:`fer_bench.metrics.FERMetrics.predictions`).  WAR and UAR recomputed
from it equal the run's (tested).  From it come the bootstrap intervals, ECE and NLL of the
leaderboard row (:func:`summary`), and ``fer-bench leaderboard compare``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench import stats

PREDICTIONS_FILE = "predictions.npz"
RELIABILITY_FILE = "reliability.png"


def sample_ids(dm, split: str, positions: np.ndarray) -> list[str]:
    """File or clip path of each split position (the position itself where the data is in memory)."""
    ds = dm.splits[split]
    base = ds.base
    while not (hasattr(base, "paths") or hasattr(base, "sources")) and hasattr(base, "base"):
        base = base.base  # through the decoded-image cache
    names = getattr(base, "paths", None) or getattr(base, "sources", None)
    if names is None:
        return [str(int(p)) for p in positions]
    return [str(names[int(ds.indices[int(p)])]) for p in positions]


def save_predictions(path: str | os.PathLike, preds: dict[str, Any], ids: list[str], classes: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, index=np.asarray(preds["index"], dtype=np.int64),
                        label=np.asarray(preds["label"], dtype=np.int64), pred=np.asarray(preds["pred"], dtype=np.int64),
                        probs=np.asarray(preds["probs"], dtype=np.float32), sample_id=np.asarray(ids, dtype=str),
                        classes=np.asarray(classes, dtype=str))
    return path


def load_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def summary(preds: dict[str, Any], num_classes: int, *, seed: int = 0,
            resamples: int = stats.DEFAULT_RESAMPLES) -> dict[str, float]:
    """The row's WAR/UAR 95 % bootstrap intervals (stratified by class), ECE (15 bins) and NLL."""
    label, pred, probs = (np.asarray(preds[k]) for k in ("label", "pred", "probs"))
    if len(label) == 0:
        return {}
    ci = stats.bootstrap_ci(label, pred, num_classes, resamples=resamples, seed=seed)
    return {"war_ci_low": ci["war"].low, "war_ci_high": ci["war"].high,
            "uar_ci_low": ci["uar"].low, "uar_ci_high": ci["uar"].high,
            "ece": stats.expected_calibration_error(probs, label), "nll": stats.negative_log_likelihood(probs, label),
            "bootstrap_resamples": resamples}


def peak_memory_mb(device_type: str) -> float:
    """Peak memory of the run on its device: CUDA's max allocated, else the process's peak RSS."""
    if device_type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2 ** 20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | os.PathLike, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: str | os.PathLike, n_bins: int = 15,
                     title: str = "") -> None:
    """Reliability diagram: accuracy against mean confidence in the 15 equal-width confidence
    bins of :func:`fer_bench.stats.expected_calibration_error`, bar widths the bins, the
    diagonal a perfectly calibrated model, the sample count of each bin printed on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if not m.any():
            continue
        acc = float(correct[m].mean())
        ax.bar(lo, acc, width=hi - lo, align="edge", color="tab:blue", edgecolor="white", alpha=0.8)
        ax.plot([(lo + hi) / 2], [float(conf[m].mean())], "o", color="tab:red", ms=3)
        ax.text((lo + hi) / 2, min(acc + 0.02, 0.97), str(int(m.sum())), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy (bars); mean confidence (dots)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
