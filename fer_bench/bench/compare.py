"""``fer-bench leaderboard compare``: is method A's difference from method B real, or seed noise?

Rows of the two methods are paired by dataset, fold and seed; each pair's prediction files
(kept by every job, :mod:`fer_bench.evaluation`) are aligned on the test samples, and
:func:`fer_bench.stats.paired_difference` gives A − B in WAR and UAR with a 95 % interval
(paired bootstrap over the samples within each seed, then over the seeds) and a verdict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_bench import stats
from fer_bench.errors import UserError
from fer_bench.evaluation import load_predictions


def _runs(df: pd.DataFrame, method: str) -> pd.DataFrame:
    runs = df[(df["method"] == method) & (df["status"] == "ok")]
    if runs.empty:
        known = ", ".join(sorted(df["method"].unique()))
        raise UserError(f"no successful run of {method!r} in this version; methods: {known}")
    return runs


def _load(path: Any, method: str) -> dict[str, np.ndarray]:
    if not isinstance(path, str) or not path or not Path(path).exists():
        raise UserError(f"{method}: predictions file {path!r} not found (the run folder holds them; compare on the "
                        "machine that ran the suite, or copy its runs/ folder)")
    return load_predictions(path)


def compare(df: pd.DataFrame, method_a: str, method_b: str, *, dataset: str | None = None,
            resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """One record per dataset both methods ran on: mean WAR/UAR of each, A − B, its interval, verdicts."""
    if "predictions" not in df.columns:
        raise UserError("this leaderboard version has no predictions column (written before predictions were kept)")
    a, b = _runs(df, method_a), _runs(df, method_b)
    datasets = sorted(set(a["dataset"]) & set(b["dataset"]))
    if dataset is not None:
        if dataset not in datasets:
            raise UserError(f"--dataset {dataset}: both methods ran on {', '.join(datasets) or 'no common dataset'}")
        datasets = [dataset]
    out = []
    for d in datasets:
        key = ["fold", "seed"]
        ra = a[a["dataset"] == d].assign(fold=lambda x: x["fold"].fillna(-1))
        rb = b[b["dataset"] == d].assign(fold=lambda x: x["fold"].fillna(-1))
        paired = ra.merge(rb, on=key, suffixes=("_a", "_b"))
        if paired.empty:
            continue
        pairs, num_classes = [], 0
        for _, r in paired.iterrows():
            pa, pb = _load(r["predictions_a"], method_a), _load(r["predictions_b"], method_b)
            if not (np.array_equal(pa["index"], pb["index"]) and np.array_equal(pa["label"], pb["label"])):
                raise UserError(f"{d} fold {r['fold']} seed {r['seed']}: the two runs were tested on different samples")
            num_classes = max(num_classes, pa["probs"].shape[1])
            pairs.append((pa["label"], pa["pred"], pb["pred"]))
        cmp = stats.paired_difference(pairs, num_classes, resamples=resamples, seed=seed)
        rec: dict[str, Any] = {"dataset": d, "pairs": cmp.seeds, "samples": cmp.samples}
        for m in ("war", "uar"):
            rec[f"{m}_a"] = 100 * float(paired[f"{m}_a"].mean())
            rec[f"{m}_b"] = 100 * float(paired[f"{m}_b"].mean())
            rec[f"diff_{m}"] = 100 * cmp.diff[m]
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = 100 * cmp.interval[m].low, 100 * cmp.interval[m].high
            rec[f"verdict_{m}"] = cmp.verdict(m, method_a, method_b)
        out.append(rec)
    if not out:
        raise UserError(f"{method_a} and {method_b} have no run on the same dataset, fold and seed")
    return out
