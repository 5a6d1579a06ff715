"""The regression check: is a suite run's mean WAR/UAR per cell still within the baseline's noise?

``make regress`` (CI) re-runs the smoke suite with fixed seeds and compares each cell with the
committed ``leaderboards/smoke/baseline.csv`` through :func:`regress_compare`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_bench.errors import DataFormatError

#: what a baseline needs: the cells, whether each run succeeded, and its scores
BASELINE_COLUMNS = ("method", "dataset", "status", "war", "uar")


def read_baseline(path: str | Path, columns: tuple[str, ...] = BASELINE_COLUMNS) -> pd.DataFrame:
    """The baseline leaderboard at ``path``, or one :class:`DataFormatError` line: no such file, a
    line that is no leaderboard row (:func:`~fer_bench.bench.leaderboard.check_version_file`), or a
    header without one of ``columns`` (what the comparison needs; ``--write-baseline --only`` keeps the
    other cells' rows and needs only ``method`` and ``dataset``).  Read before the suite runs."""
    from fer_bench.bench.leaderboard import check_version_file

    path = Path(path)
    expected = f"a leaderboard csv with columns {', '.join(columns)} (or write one with --write-baseline)"
    if not path.is_file():
        raise DataFormatError(path, expected, found="no such file" if not path.exists() else "a folder")
    check_version_file(path)
    try:
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DataFormatError(path, expected, found=" ".join(str(e).split())) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(path, expected, line=1, found=f"no column {', '.join(missing)}")
    return df


def regress_compare(current: pd.DataFrame, baseline: pd.DataFrame, z: float = 3.0,
                    min_tol: float = 0.03) -> list[str]:
    """Cells whose mean WAR or UAR dropped below the baseline's by more than the tolerance.

    The tolerance comes from the seed spread recorded in the baseline.  For a cell with
    ``n_b`` baseline seeds and ``n_c`` current seeds, the standard error of the difference of
    the two means is ``s * sqrt(1/n_b + 1/n_c)``; a drop beyond ``z`` (3) of those is flagged
    (a one-sided false alarm of about 0.1 % per cell and metric when the spread is normal).
    ``s`` is the larger of the cell's own std over seeds and the std pooled over every
    baseline cell (the root of the mean variance), so that a cell whose few seeds happened to
    agree does not get a tolerance of zero; ``min_tol`` (3 points) is the floor.  All values
    are fractions.  A baseline cell missing from the current run, or failed, is a regression too.
    """
    problems = []
    if "kind" in current:  # cross-dataset rows are not cells of their own
        current = current[current["kind"] != "cross"]
    base_ok = baseline[baseline["status"] == "ok"]
    cur_ok = current[current["status"] == "ok"]
    groups = base_ok.groupby(["method", "dataset"])
    pooled = {}
    for metric in ("war", "uar"):
        var = groups[metric].var(ddof=1).dropna()
        pooled[metric] = float(var.mean() ** 0.5) if len(var) else 0.0
    for (m, d), g in groups:
        c = cur_ok[(cur_ok["method"] == m) & (cur_ok["dataset"] == d)]
        if c.empty:
            problems.append(f"{m}/{d}: no successful run (baseline has {len(g)})")
            continue
        for metric in ("war", "uar"):
            base_mean, cur_mean = g[metric].mean(), c[metric].mean()
            own = g[metric].std(ddof=1) if len(g) > 1 else 0.0
            spread = max(0.0 if pd.isna(own) else float(own), pooled[metric])
            tol = max(z * spread * (1 / len(g) + 1 / len(c)) ** 0.5, min_tol)
            if cur_mean < base_mean - tol:
                problems.append(f"{m}/{d}: {metric.upper()} {100 * cur_mean:.2f} < baseline {100 * base_mean:.2f}"
                                f" − tolerance {100 * tol:.2f}")
    return problems


def select_cells(df: pd.DataFrame, patterns: list[str] | None) -> pd.DataFrame:
    """The rows of ``df`` whose ``method/dataset`` matches one of the glob ``patterns`` (all if none)."""
    if not patterns:
        return df
    import fnmatch

    keep = [any(fnmatch.fnmatch(f"{m}/{d}", p) for p in patterns) for m, d in zip(df["method"], df["dataset"])]
    return df[keep]
