"""Checking a dataset folder: counts per split and class, and every unreadable file.

What ``fer-bench data check`` prints; a layout error (missing label file, wrong columns)
raises :class:`~fer_bench.errors.DataFormatError` naming the file and line.
"""
from __future__ import annotations

from typing import Any

from fer_bench.errors import UnreadableSample


def check_dataset(name: str, root: str | None, fold: int | None = None, decode: bool = True,
                  **data_args: Any) -> dict[str, Any]:
    """Counts per split and class, and every problem file, of a dataset folder.

    Raises :class:`DataFormatError` when the layout itself is wrong (missing label file,
    wrong columns, label out of range): nothing can be counted then.
    """
    from fer_bench.data import DATASETS

    dm = DATASETS.get(name)(root, fold=fold, **data_args)
    dm.setup()
    counts: dict[str, dict[str, int]] = {}
    problems: list[dict[str, str]] = []
    seen_bases: set[int] = set()
    for split, ds in dm.splits.items():
        labels = ds.labels
        counts[split] = {c: int((labels == k).sum()) for k, c in enumerate(dm.classes)}
        if not decode or id(ds.base) in seen_bases:
            continue
        seen_bases.add(id(ds.base))
        for pos in range(len(ds.base)):
            try:
                ds.base[pos]
            except UnreadableSample as e:
                kind = "missing" if "missing" in e.reason else "zero-byte" if "0 bytes" in e.reason else "unreadable"
                problems.append({"split": split, "file": e.path, "problem": kind, "detail": e.reason})
    return {"dataset": name, "root": root, "fold": fold, "counts": counts, "problems": problems}
