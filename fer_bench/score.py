"""Scoring predictions made elsewhere on a dataset's test split, under fer_bench's protocol.

``fer-bench score`` (RobustBench's external evaluation): a file of per-sample predictions or
class probabilities, made by any codebase, is matched to the test split of a dataset by the
sample ids of a run's ``predictions.npz`` (:func:`fer_bench.evaluation.sample_ids`: the file or
clip path as the dataset reads it, which may also be given relative to ``--root``; the test
position for data held in memory), and scored by the code that scores a run: WAR, UAR and
per-class recall over the dataset's fixed class list (:class:`fer_bench.metrics.FERMetrics`),
the stratified bootstrap intervals and, with probabilities, ECE and NLL
(:func:`fer_bench.evaluation.summary`).  The true labels come from the dataset, never from the file.

Inputs, refused with one line (:class:`~fer_bench.errors.UserError`) before anything is scored:

- csv with a header: ``id`` and either ``label`` / ``pred`` (a class name of the dataset or its
  index in the dataset's class list) or one probability column per class, named as the
  dataset's classes (rows are normalised; negative values or a zero row are refused);
- npz: a run's own ``predictions.npz`` (``sample_id``, ``pred``, ``probs``, ``classes``; its
  ``index`` and ``label`` are ignored) or ``ids`` with ``preds`` and/or ``probs`` ``[N, C]``; a
  ``classes`` array, when present, names the columns and prediction indices (reordered to the
  dataset's order).  When both predictions and probabilities are given, the predictions are
  scored and the probabilities give ECE and NLL.

Every test sample must have exactly one row: duplicate ids, ids the test split does not hold
and test samples without a row are refused with their count and the first few ids.
"""
from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench import evaluation
from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.errors import DataFormatError, UserError

SOURCE = "external"
ID_KEYS = ("sample_id", "ids")  # a run's predictions.npz, or the short form
PRED_KEYS = ("pred", "preds")
LABEL_COLUMNS = ("label", "pred")
SHOW = 5  # ids named in a refusal


def _first(items, k: int = SHOW) -> str:
    items = list(items)
    more = ", ..." if len(items) > k else ""
    return ", ".join(repr(str(i)) for i in items[:k]) + more


# -- reading ---------------------------------------------------------------------------------
def _class_index(path, value: str, classes: list[str], *, line: int | None = None) -> int:
    """A class name of ``classes`` or an integer index into it."""
    text = str(value).strip()
    try:
        k = int(text)
    except ValueError:
        if text in classes:
            return classes.index(text)
        raise DataFormatError(path, f"a class of the dataset ({', '.join(classes)}) or its index", line=line,
                              found=repr(text)) from None
    if not 0 <= k < len(classes):
        raise DataFormatError(path, f"a class index in 0..{len(classes) - 1} ({', '.join(classes)})", line=line,
                              found=str(k))
    return k


def _check_probs(path, probs: np.ndarray, classes: list[str], what: str = "probabilities") -> np.ndarray:
    """``probs`` ``[N, C]`` as float64 rows summing to 1; wrong width, non-finite or negative
    values and rows summing to 0 are refused (the first offending row named, 1-based)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise UserError(f"{path}: {what} of shape {tuple(probs.shape)}, expected N x {len(classes)} (one column per "
                        f"class: {', '.join(classes)})")
    try:
        probs = probs.astype(np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: {what} are not numbers (dtype {probs.dtype})") from None
    for bad, why in ((~np.isfinite(probs).all(axis=1), "a value that is not finite"),
                     ((probs < 0).any(axis=1), "a negative value (give probabilities, e.g. a softmax, not logits)"),
                     (probs.sum(axis=1) <= 0, "a row summing to 0")):
        if bad.any():
            rows = np.flatnonzero(bad)
            raise UserError(f"{path}: {len(rows)} row(s) of {what} with {why} (first: row {rows[0] + 1})")
    return probs / probs.sum(axis=1, keepdims=True)


def _read_csv(path: Path, classes: list[str]) -> dict[str, Any]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataFormatError(path, "a UTF-8 csv file with a header", found=str(e)) from None
    expected = f"a header with 'id' and 'label' (or 'pred'), or 'id' and one probability column per class " \
               f"({', '.join(classes)})"
    if not rows:
        raise DataFormatError(path, expected, found="an empty file")
    header = [h.strip() for h in rows[0]]
    if "id" not in header:
        raise DataFormatError(path, expected, line=1, found=", ".join(header))
    label_col = next((c for c in LABEL_COLUMNS if c in header), None)
    prob_cols = [c for c in header if c in classes]
    if label_col is None and not prob_cols:
        raise DataFormatError(path, expected, line=1, found=", ".join(header))
    if prob_cols:
        missing = [c for c in classes if c not in header]
        extra = [c for c in header if c in CANONICAL_CLASSES_8 and c not in classes]
        if missing or extra:
            raise UserError(f"{path}: {len(prob_cols) + len(extra)} probability columns for the dataset's "
                            f"{len(classes)} classes ({', '.join(classes)})"
                            + (f"; missing: {', '.join(missing)}" if missing else "")
                            + (f"; not a class of the dataset: {', '.join(extra)}" if extra else ""))
    for name in set(header):
        if header.count(name) > 1 and name in ("id", label_col, *prob_cols):
            raise DataFormatError(path, f"each column once; {name!r} appears {header.count(name)} times", line=1)
    at = {c: header.index(c) for c in header}
    ids, preds, probs = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != len(header):
            raise DataFormatError(path, f"{len(header)} fields as in the header (a truncated file?)", line=line,
                                  found=str(len(row)))
        ids.append(row[at["id"]].strip())
        if label_col is not None:
            preds.append(_class_index(path, row[at[label_col]], classes, line=line))
        if prob_cols:
            try:
                probs.append([float(row[at[c]]) for c in classes])
            except ValueError:
                raise DataFormatError(path, "a number in every probability column", line=line,
                                      found=", ".join(row[at[c]] for c in classes)) from None
    n = len(ids)
    return {"ids": ids, "pred": np.asarray(preds, dtype=np.int64) if label_col is not None else None,
            "probs": np.asarray(probs, dtype=np.float64).reshape(n, len(classes)) if prob_cols else None}


def _read_npz(path: Path, classes: list[str]) -> dict[str, Any]:
    expected = ("a NumPy .npz archive with 'sample_id' (or 'ids') and 'pred' (or 'preds') and/or 'probs', "
                "as a run's predictions.npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataFormatError(path, expected, found=f"an unreadable or truncated file ({e})") from None
    id_key = next((k for k in ID_KEYS if k in arrays), None)
    pred_key = next((k for k in PRED_KEYS if k in arrays), None)
    if id_key is None or (pred_key is None and "probs" not in arrays):
        raise DataFormatError(path, expected, found="arrays " + (", ".join(sorted(arrays)) or "none"))
    ids = arrays[id_key]
    if ids.ndim != 1:
        raise DataFormatError(path, f"a 1-D array {id_key!r}", found=f"shape {ids.shape}")
    n = len(ids)
    # the file's own class list names its columns and indices; reordered to the dataset's
    file_classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else list(classes)
    unknown = [c for c in file_classes if c not in classes]
    if unknown:
        raise UserError(f"{path}: classes {', '.join(map(repr, unknown))} are not classes of the dataset "
                        f"({', '.join(classes)})")
    if len(set(file_classes)) != len(file_classes):
        raise DataFormatError(path, "each class once in 'classes'", found=", ".join(file_classes))
    to_dataset = np.array([classes.index(c) for c in file_classes], dtype=np.int64)
    out: dict[str, Any] = {"ids": [(i.decode() if isinstance(i, bytes) else str(i)).strip() for i in ids.tolist()],
                           "pred": None, "probs": None}
    if pred_key is not None:
        pred = arrays[pred_key]
        if pred.ndim != 1 or len(pred) != n:
            raise DataFormatError(path, f"a 1-D array {pred_key!r} of {n} entries, one per id", found=f"shape {pred.shape}")
        if pred.dtype.kind in "US":
            pred = np.array([_class_index(path, v, file_classes) for v in pred.tolist()], dtype=np.int64)
        elif pred.dtype.kind not in "iu":
            raise DataFormatError(path, f"integer class indices in {pred_key!r}", found=f"dtype {pred.dtype}")
        bad = (pred < 0) | (pred >= len(file_classes))
        if bad.any():
            raise DataFormatError(path, f"class indices in 0..{len(file_classes) - 1} in {pred_key!r}",
                                  found=f"{int(pred[bad][0])} at entry {int(np.flatnonzero(bad)[0])}")
        out["pred"] = to_dataset[pred.astype(np.int64)]
    if "probs" in arrays:
        probs = arrays["probs"]
        if probs.ndim != 2 or len(probs) != n:
            raise UserError(f"{path}: 'probs' of shape {tuple(probs.shape)}, expected {n} x {len(classes)} "
                            f"(one row per id, one column per class: {', '.join(classes)})")
        if out["pred"] is not None and probs.dtype.kind == "f" and probs.size and np.isnan(probs).all():
            return out  # labels only: fer-bench score writes unknown probabilities as NaN
        if probs.shape[1] != len(classes):
            _check_probs(path, probs, classes)  # refuses the width
        if len(file_classes) != len(classes):
            raise UserError(f"{path}: 'classes' names {len(file_classes)} classes ({', '.join(file_classes)}) but 'probs' "
                            f"has {probs.shape[1]} columns")
        out["probs"] = probs[:, [file_classes.index(c) for c in classes]]  # the dataset's column order
    return out


def check_predictions_file(path: str | os.PathLike) -> None:
    """Refuse a ``path`` that is no file (missing, or a folder) in one line."""
    if not Path(path).is_file():
        found = "a folder" if Path(path).is_dir() else "no such file"
        raise UserError(f"{path}: {found} (expected a csv or npz file of predictions)")


def read_predictions(path: str | os.PathLike, classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``{"ids": [str], "pred": int array in the dataset's class order or None, "probs": [N, C]
    rows summing to 1 or None}`` from a csv or npz file; refuses a malformed file."""
    path, classes = Path(path), list(classes)
    check_predictions_file(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    is_npz = path.suffix.lower() == ".npz" or (path.suffix.lower() != ".csv" and magic.startswith(b"PK"))
    got = _read_npz(path, classes) if is_npz else _read_csv(path, classes)
    if got["probs"] is not None:
        got["probs"] = _check_probs(path, got["probs"], classes)
    return got


# -- matching to the test split --------------------------------------------------------------
def align(path, file_ids: list[str], test_ids: list[str], dataset: str, root: str | None = None) -> np.ndarray:
    """Test position of every row of the file; refuses duplicate ids, ids the test split does
    not hold and test samples the file lacks (count and first few, each).  A path id may
    also be given relative to ``root``."""
    seen: dict[str, int] = {}
    dups = []
    for i in file_ids:
        seen[i] = seen.get(i, 0) + 1
        if seen[i] == 2:
            dups.append(i)
    if dups:
        n = sum(seen[i] - 1 for i in dups)
        raise UserError(f"{path}: {n} duplicate id(s) (first: {_first(dups)}); each test sample must appear once")
    where = {t: k for k, t in enumerate(test_ids)}
    # a path id may be written relative to the root, or absolute: compared as absolute paths
    base = os.path.abspath(root) if root is not None else None
    absolute = {os.path.abspath(t): k for t, k in where.items()} if base is not None else {}
    positions = np.empty(len(file_ids), dtype=np.int64)
    unknown = []
    for row, i in enumerate(file_ids):
        k = where.get(i)
        if k is None and base is not None and i:
            k = absolute.get(os.path.normpath(os.path.join(base, i)))
        if k is None:
            unknown.append(i)
        else:
            positions[row] = k
    if unknown:
        raise UserError(f"{path}: {len(unknown)} id(s) not in the test split of {dataset} (first: {_first(unknown)}); "
                        f"ids are the sample ids of a run's predictions.npz (first test ids: {_first(test_ids, 3)})")
    covered = np.zeros(len(test_ids), dtype=bool)
    covered[positions] = True
    if not covered.all():
        missing = [test_ids[k] for k in np.flatnonzero(~covered)]
        raise UserError(f"{path}: {len(missing)} of the {len(test_ids)} test samples of {dataset} have no prediction "
                        f"(first: {_first(missing)})")
    return positions


# -- scoring ---------------------------------------------------------------------------------
def load_test_split(dataset: str, root: str | None, fold: int | None = None, data_args: dict[str, Any] | None = None):
    """The dataset's DataModule set up for its test split, nothing decoded (no workers, no cache)."""
    from fer_bench.data import DATASETS
    from fer_bench.validation import check_kwargs

    data_cls = DATASETS.get(dataset)
    data_args = dict(data_args or {})
    check_kwargs(data_cls, data_args, what=f"dataset {dataset}", flag="-d", reserved=("root", "fold"))
    dm = data_cls(root, **{"fold": fold, "num_workers": 0, "cache_images": "off", **data_args})
    dm.setup("test")
    return dm


def score_predictions(dataset: str, root: str | None, path: str | os.PathLike, fold: int | None = None,
                      data_args: dict[str, Any] | None = None, *, out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Scores of the predictions in ``path`` on the test split of ``dataset``.

    The record holds what a run's ``metrics.json`` holds of its test: ``war``, ``uar``,
    ``per_class_recall`` (``None`` for a class without test samples), ``confusion``, ``classes``,
    ``n_test``, the bootstrap intervals (``war_ci_low`` ... ``bootstrap_resamples``; seeded by the
    dataset's ``seed``, 0 unless ``data_args`` give one, as a run's) and, with probabilities,
    ``ece`` and ``nll``; plus ``source: "external"``.  With ``out``, writes ``out/metrics.json`` and
    ``out/predictions.npz`` in a run's layout (probabilities NaN when only labels were given)."""
    import torch

    from fer_bench.metrics import FERMetrics

    check_predictions_file(path)  # before the dataset is read
    dm = load_test_split(dataset, root, fold, data_args)
    classes = list(dm.classes)
    got = read_predictions(path, classes)
    test = dm.splits["test"]
    test_ids = evaluation.sample_ids(dm, "test", np.arange(len(test)))
    positions = align(path, got["ids"], test_ids, dataset, root)
    order = np.argsort(positions)
    index = positions[order]
    probs = got["probs"][order] if got["probs"] is not None else None
    pred = got["pred"][order] if got["pred"] is not None else probs.argmax(axis=1)
    label = np.asarray(test.labels, dtype=np.int64)[index]

    metric = FERMetrics(classes)  # the run's own scoring: fixed class list, a class never predicted counts 0
    metric.update(torch.as_tensor(pred), torch.as_tensor(label), torch.as_tensor(index))
    scores = metric.compute()
    seed = int((data_args or {}).get("seed", 0))
    preds = {"index": index, "label": label, "pred": pred,
             "probs": probs if probs is not None else np.eye(len(classes))[pred]}
    summary = evaluation.summary(preds, len(classes), seed=seed)
    if probs is None:  # the intervals only: a one-hot stand-in has no calibration to report
        summary.pop("ece", None)
        summary.pop("nll", None)
    result: dict[str, Any] = {
        **scores.as_dict(), "source": SOURCE, "dataset": dataset, "root": root, "fold": fold,
        "data_args": json.loads(json.dumps(data_args or {}, default=str)),
        "protocol": json.loads(json.dumps(dm.protocol_args(), default=str)),
        "input": str(path), "input_kind": "probabilities" if probs is not None else "labels",
        "n_test": len(test), "seed": seed, **summary,
    }
    if out is not None:
        write_outputs(out, result, preds if probs is not None else {**preds, "probs": np.full(
            (len(pred), len(classes)), np.nan, dtype=np.float32)}, [test_ids[k] for k in index], classes)
    return result


def write_outputs(out: str | os.PathLike, result: dict[str, Any], preds: dict[str, Any], ids: list[str],
                  classes: list[str]) -> Path:
    """``out/predictions.npz`` (a run's layout) and ``out/metrics.json`` (pointing at it); the path of the latter."""
    from fer_bench.files import atomic_write_text

    out = Path(out)
    result["predictions"] = str(evaluation.save_predictions(out / evaluation.PREDICTIONS_FILE, preds, ids, classes))
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    return out / "metrics.json"
