"""``fer-bench leaderboard compare``: is method A's difference from method B real, or seed noise?

Rows of the two methods are paired by dataset, fold and seed; each pair's prediction files
(kept by every job, :mod:`fer_bench.evaluation`) are aligned on the test samples, and
:func:`fer_bench.stats.paired_difference` gives A − B in WAR and UAR with a 95 % interval
(paired bootstrap over the samples within each seed, then over the seeds) and a verdict.

A row of a suite's ``external:`` entries (``kind`` ``external``) is one fixed model with no seed
of its own: it is paired, on the same dataset and fold, with *each* seed of the other method, so
the statistic is its score minus the other method's mean over seeds, and the bootstrap draws the
other method's seeds and the test samples.  The interval therefore holds the other method's seed
spread and the test set's sampling error, but not the external model's own training noise, which
nothing here measured: the verdict is about that released model, not about its method (each
record's ``note`` says so).  When the other method's runs were tested on a subset of the test
split (``limit_per_class``), the external predictions (which cover all of it) are restricted to
those samples.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_bench import stats
from fer_bench.errors import DataFormatError, UserError
from fer_bench.evaluation import load_predictions


def _runs(df: pd.DataFrame, method: str) -> pd.DataFrame:
    runs = df[(df["method"] == method) & (df["status"] == "ok")]
    if runs.empty:
        known = ", ".join(sorted(df.loc[df["status"] == "ok", "method"].unique())) or "none"
        raise UserError(f"no successful run of {method!r} in this version: expected one of {known}")
    return runs


def _load(path: Any, method: str) -> dict[str, np.ndarray]:
    if not isinstance(path, str) or not path or not Path(path).exists():
        raise UserError(f"{method}: predictions file {path!r}: expected a file, found none (the run folder holds "
                        "them; compare on the machine that ran the suite, or copy its runs/ folder)")
    expected = "an npz of predictions with index, label, pred and probs"
    try:
        preds = load_predictions(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # truncated, not an npz, pickled arrays
        raise DataFormatError(path, expected, found=f"{type(e).__name__}: {e}") from None
    missing = [k for k in ("index", "label", "pred", "probs") if k not in preds]
    if missing:
        raise DataFormatError(path, expected, found=f"no {', '.join(missing)}")
    return preds


def _external(rows: pd.DataFrame) -> bool:
    return "kind" in rows and bool((rows["kind"] == "external").any())


def _aligned(pa: dict[str, np.ndarray], pb: dict[str, np.ndarray], ext_a: bool, ext_b: bool):
    """``(labels, preds_a, preds_b)`` on the same test samples, or ``None``.  Equal sample lists
    as they are; an external side restricted to the other side's samples when it holds them all."""
    if np.array_equal(pa["index"], pb["index"]) and np.array_equal(pa["label"], pb["label"]):
        return pa["label"], pa["pred"], pb["pred"]
    if ext_a == ext_b:
        return None
    full, sub = (pa, pb) if ext_a else (pb, pa)
    where = {int(i): k for k, i in enumerate(full["index"])}
    if not all(int(i) in where for i in sub["index"]):
        return None
    take = np.array([where[int(i)] for i in sub["index"]], dtype=np.int64)
    if not np.array_equal(full["label"][take], sub["label"]):
        return None
    preds_full = full["pred"][take]
    return (sub["label"], preds_full, sub["pred"]) if ext_a else (sub["label"], sub["pred"], preds_full)


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
        ra = a[a["dataset"] == d].assign(fold=lambda x: x["fold"].fillna(-1))
        rb = b[b["dataset"] == d].assign(fold=lambda x: x["fold"].fillna(-1))
        ext_a, ext_b = _external(ra), _external(rb)
        key = ["fold"] if ext_a or ext_b else ["fold", "seed"]  # an external model meets every seed of the other
        paired = ra.merge(rb, on=key, suffixes=("_a", "_b"))
        if paired.empty:
            continue
        pairs, num_classes = [], 0
        for _, r in paired.iterrows():
            pa, pb = _load(r["predictions_a"], method_a), _load(r["predictions_b"], method_b)
            got = _aligned(pa, pb, ext_a, ext_b)
            if got is None:
                seed_of = r["seed"] if "seed" in r else r["seed_b"] if ext_a else r["seed_a"]
                raise UserError(f"{d} fold {r['fold']} seed {seed_of}: the two runs were tested on different samples")
            num_classes = max(num_classes, pa["probs"].shape[1])
            pairs.append(got)
        cmp = stats.paired_difference(pairs, num_classes, resamples=resamples, seed=seed)
        rec: dict[str, Any] = {"dataset": d, "pairs": cmp.seeds, "samples": cmp.samples}
        means = {"war_a": paired["war_a"].mean(), "war_b": paired["war_b"].mean(),
                 "uar_a": paired["uar_a"].mean(), "uar_b": paired["uar_b"].mean()}
        if ext_a or ext_b:
            ext, other = (method_a, method_b) if ext_a else (method_b, method_a)
            rec["note"] = (f"{ext} is one external model: paired with each of the {cmp.seeds} run(s) of {other}; the "
                           f"interval holds {other}'s seed spread and the test sampling, not {ext}'s training noise"
                           if not (ext_a and ext_b) else "both are external models: the test sampling only")
            # from the paired samples: an external side may have been restricted to the other's
            for side, k in (("a", 1), ("b", 2)):
                w, u = np.mean([stats.war_uar(p[0], p[k], num_classes) for p in pairs], axis=0)
                means[f"war_{side}"], means[f"uar_{side}"] = w, u
        for m in ("war", "uar"):
            rec[f"{m}_a"], rec[f"{m}_b"] = 100 * float(means[f"{m}_a"]), 100 * float(means[f"{m}_b"])
            rec[f"diff_{m}"] = 100 * cmp.diff[m]
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = 100 * cmp.interval[m].low, 100 * cmp.interval[m].high
            rec[f"verdict_{m}"] = cmp.verdict(m, method_a, method_b)
        out.append(rec)
    if not out:
        raise UserError(f"{method_a} and {method_b} have no run on the same dataset, fold and seed")
    return out
