"""Which samples form a split: a seeded stratified train/val split (by sample or by subject),
subject-independent k folds, and at most N samples per class (``--limit-per-class``)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np


def stratified_split(
    labels: Sequence[int], val_fraction: float, seed: int, groups: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/val split of sample positions.

    Without ``groups`` each class gives ``round(n_c * val_fraction)`` samples (at least one
    when it has two or more).  With ``groups`` (subject ids) whole groups go to validation,
    per class of a group's majority label, so that no subject is on both sides.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    if groups is None:
        for c in np.unique(labels):
            pos = np.flatnonzero(labels == c)
            rng.shuffle(pos)
            k = int(round(len(pos) * val_fraction))
            if k == 0 and len(pos) >= 2 and val_fraction > 0:
                k = 1
            val.extend(pos[:k].tolist())
    else:
        groups = np.asarray(groups)
        uniq = np.unique(groups)
        major = {g: np.bincount(labels[groups == g]).argmax() for g in uniq}
        for c in np.unique([major[g] for g in uniq]):
            gs = np.array([g for g in uniq if major[g] == c])
            rng.shuffle(gs)
            k = int(round(len(gs) * val_fraction))
            if k == 0 and len(gs) >= 2 and val_fraction > 0:
                k = 1
            val.extend(np.flatnonzero(np.isin(groups, gs[:k])).tolist())
    val_arr = np.sort(np.asarray(val, dtype=np.int64))
    train_arr = np.setdiff1d(np.arange(len(labels)), val_arr)
    return train_arr, val_arr


def subject_folds(subjects: Sequence[Any], n_folds: int) -> dict[str, int]:
    """Subject-independent k folds: the fold of every subject, the subjects sorted by number
    (``S005`` < ``S010`` < ``S100``) and dealt round-robin (the ``i``-th to fold ``i mod k``)."""
    def key(s: str):
        m = re.search(r"(\d+)", s)
        return (int(m.group(1)) if m else -1, s)

    uniq = sorted({str(s) for s in subjects}, key=key)
    return {s: i % n_folds for i, s in enumerate(uniq)}


def limit_per_class(labels: Sequence[int], positions: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """At most ``n`` samples per class from ``positions`` (seeded, order kept)."""
    if n is None:
        return positions
    labels = np.asarray(labels)[positions]
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(labels):
        pos = positions[labels == c]
        if len(pos) > n:
            pos = np.sort(rng.choice(pos, size=n, replace=False))
        keep.extend(pos.tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))
