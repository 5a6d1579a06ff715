"""Versioned leaderboards: immutable ``leaderboards/<suite>/vNNN.csv`` plus a README summary.

Writing is exclusive and atomic: the CSV is written to a temporary file in the same folder
and published with ``os.link`` under the next free ``vNNN`` name.  ``link`` fails if the name
exists, so two suite runs finishing at once never share or overwrite a version, and a crash
never leaves a partial ``vNNN.csv`` (at most a stray temporary file).

The paper numbers each cell is compared with, and the marks that say why a difference is not a
reproduction, come from :mod:`fer_bench.bench.papers` (re-exported here).
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_bench.bench.papers import (  # noqa: F401  (the comparison with the papers, re-exported)
    DEVIATES,
    EXTERNAL,
    LEGEND,
    NOT_STATED,
    RECONSTRUCTED,
    Papers,
    _fmt,
    _text,
    cell_marks,
    diff_cell,
    is_external,
    legend,
    paper_cell,
    paper_entry,
    paper_rows,
    paper_value,
    read_papers,
    write_papers_csv,
)
from fer_bench.bench.row import Row
from fer_bench.errors import DataFormatError, UserError
from fer_bench.files import atomic_write_text

VERSION_RE = re.compile(r"^v(\d{3,})\.csv$")


class NoLeaderboard(UserError, FileNotFoundError):
    """A suite without leaderboard versions, or a version that does not exist (a FileNotFoundError too)."""


def versions(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    found = sorted((int(m.group(1)), p.name) for p in folder.iterdir() if (m := VERSION_RE.match(p.name)))
    return [name[:-4] for _, name in found]


def ordered_columns(df: pd.DataFrame) -> list[str]:
    """The :class:`~fer_bench.bench.row.Row` columns, then any other (a row of an older version)."""
    known = Row.columns(sorted(c[len("recall_"):] for c in df.columns if c.startswith("recall_")))
    return [c for c in known if c in df.columns] + [c for c in df.columns if c not in known]


def write_version(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """Publish ``rows`` as the next free ``vNNN.csv`` in ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    for c in Row.columns():
        if c not in df.columns:
            df[c] = None
    df = df[ordered_columns(df)]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pending-", suffix=".csv")
    try:
        with os.fdopen(fd, "w") as f:
            df.to_csv(f, index=False)
            f.flush()
            os.fsync(f.fileno())
        while True:
            existing = versions(folder)
            n = int(existing[-1][1:]) + 1 if existing else 1
            target = folder / f"v{n:03d}.csv"
            try:
                os.link(tmp, target)  # fails if target exists: exclusive
                return target
            except FileExistsError:
                continue
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_version(folder: Path, version: str | None = None) -> pd.DataFrame:
    vs = versions(folder)
    if not vs:
        suites = [p.name for p in sorted(folder.parent.iterdir()) if p.is_dir() and versions(p)] \
            if folder.parent.is_dir() else []
        raise NoLeaderboard(f"{folder}: no leaderboard versions (expected vNNN.csv files written by fer-bench bench "
                            f"for suite {folder.name}; suites with versions here: {', '.join(suites) or 'none'})")
    v = version or vs[-1]
    if v not in vs:
        raise NoLeaderboard(f"{folder / (v + '.csv')}: no such leaderboard version (expected one of {', '.join(vs)})")
    check_version_file(folder / f"{v}.csv")
    df = pd.read_csv(folder / f"{v}.csv")
    df.attrs["version"] = v
    return df


def check_version_file(path: Path) -> None:
    """A :class:`DataFormatError` naming the first line of a version file that is no leaderboard row:
    a header without method, dataset, war and uar, a row whose field count is not the header's, or a
    WAR or UAR that is neither a number nor empty (pandas would read such a row as empty cells)."""
    import csv

    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [c for c in ("method", "dataset", "war", "uar") if c not in header]
        if missing:
            raise DataFormatError(path, "a leaderboard header (suite,method,dataset,...,war,uar,...)", line=1,
                                  found=f"no column {', '.join(missing)}")
        scores = [header.index("war"), header.index("uar")]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataFormatError(path, f"{len(header)} comma-separated fields, as its header has",
                                      line=reader.line_num, found=str(len(row)))
            for i in scores:
                try:
                    float(row[i] or "nan")
                except ValueError:
                    raise DataFormatError(path, f"a number or nothing as {header[i]}", line=reader.line_num,
                                          found=repr(row[i][:40])) from None


def protocol_tag(df: pd.DataFrame) -> str:
    parts = []
    row = df.iloc[0]
    for col, fmt in (("classes", "{}cls"), ("label_mode", "{}"), ("sampler", "{}"), ("input_size", "{}px"),
                     ("pretrained", "init:{}"), ("tta", "tta:{}")):
        v = row.get(col)
        if v is not None and not (isinstance(v, float) and math.isnan(v)) and v not in ("", "none"):
            parts.append(fmt.format(int(v) if isinstance(v, float) and v.is_integer() else v))
    folds = sorted({int(f) for f in df["fold"].dropna()}) if "fold" in df else []
    if folds:
        parts.append(f"{len(folds)} fold{'s' if len(folds) > 1 else ''}")
    return " ".join(parts)


def trained_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cells: trained jobs and a suite's external entries (``kind == "external"``),
    without the cross-dataset evaluations (``kind == "cross"``)."""
    return df[df["kind"] != "cross"] if "kind" in df else df


def transfer_matrix(df: pd.DataFrame, metric: str = "war") -> pd.DataFrame:
    """Mean ``metric`` (%) per method, train dataset (rows) and test dataset (columns): the
    diagonal from the trained rows, the rest from the cross-dataset rows; empty without any."""
    if "kind" not in df or not (df["kind"] == "cross").any():
        return pd.DataFrame()
    ok = df[(df["status"] == "ok") & (df["kind"] != "external")]  # an external entry is evaluated on one dataset
    own = trained_rows(ok).assign(eval_dataset=lambda x: x["dataset"])
    both = pd.concat([own, ok[ok["kind"] == "cross"]])
    cells = both.groupby(["method", "dataset", "eval_dataset"])[metric].mean().mul(100).reset_index()
    return cells.pivot_table(index=["method", "dataset"], columns="eval_dataset", values=metric)


def combined_halfwidth(g: pd.DataFrame, metric: str) -> float | None:
    """Half-width (points) of a 95 % interval for a cell's mean that holds both the seed spread
    and the sampling error of the test set: ``1.96 · sqrt(s²/n + mean(σ_b²))``, with ``s`` the
    std of the ``n`` runs and ``σ_b`` each run's bootstrap standard error, read off its 95 %
    bootstrap interval as ``(high − low) / (2 · 1.96)``.  The sampling term is not divided by
    ``n``: the seeds of a cell share one test set, so its sampling error does not average out.
    ``None`` when the rows carry no bootstrap interval."""
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    if lo not in g or g[lo].isna().all():
        return None
    vals = 100 * g[metric].astype(float)
    seed_var = float(vals.var(ddof=1)) / len(vals) if len(vals) > 1 else 0.0
    boot_se = 100 * (g[hi].astype(float) - g[lo].astype(float)) / (2 * 1.96)
    return 1.96 * float(np.sqrt(seed_var + float((boot_se ** 2).mean())))


def summarise(df: pd.DataFrame, papers: Papers | None = None) -> pd.DataFrame:
    """Mean ± std over seeds and folds of WAR and UAR per method × dataset (ok runs only),
    in percent, with the paper's number (from ``papers``, see :func:`read_papers`: the one for
    the cell's class count), the difference, and the marks of :func:`cell_marks` (``marks``,
    ``notes``, ``reproduction``).  With ``--test-every-epoch`` rows, also the best-test-epoch
    means and ``test_gap_war`` / ``test_gap_uar``: how much choosing the checkpoint on test
    would have added.

    A cell of a suite's external entries (:func:`is_external`) has ``seeds`` 0, no std over seeds
    (one fixed model; over folds when it has several), a ``protocol`` that starts with
    ``external`` and the ``ext`` mark (:func:`cell_marks`)."""
    papers = papers or {}
    df = trained_rows(df)
    ok = df[df["status"] == "ok"] if "status" in df else df
    out = []
    for (method, dataset), g in ok.groupby(["method", "dataset"], sort=True):
        external = is_external(g)
        rec: dict[str, Any] = {"method": method, "dataset": dataset, "runs": len(g),
                               "seeds": 0 if external else len(set(g["seed"])),
                               "protocol": f"external {protocol_tag(g)}".strip() if external else protocol_tag(g)}
        classes = g["classes"].iloc[0] if "classes" in g else None
        for m in ("war", "uar"):
            vals = 100 * g[m].astype(float)
            rec[m] = vals.mean()
            rec[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else (math.nan if external else 0.0)
            rec[f"{m}_ci"] = combined_halfwidth(g, m)
            entry = paper_entry(papers, method, dataset, m, classes)
            rec[f"paper_{m}"] = None if entry is None else entry["value"]
            rec[f"paper_{m}_by"] = "" if entry is None or entry["kind"] != "anchor" else entry["by"] or "anchor"
            rec[f"diff_{m}"] = None if entry is None else rec[m] - entry["value"]
            best = f"best_test_{m}"
            if best in g and g[best].notna().all():
                rec[best] = 100 * g[best].astype(float).mean()
                rec[f"test_gap_{m}"] = rec[best] - rec[m]
        rec.update(cell_marks(g))
        out.append(rec)
    failed = df[df["status"] != "ok"] if "status" in df else df.iloc[0:0]
    for (method, dataset), g in failed.groupby(["method", "dataset"], sort=True):
        if not any(r["method"] == method and r["dataset"] == dataset for r in out):
            out.append({"method": method, "dataset": dataset, "runs": 0, "seeds": 0, "protocol": "",
                        "status": f"{len(g)} failed: {str(g['error'].iloc[0])[:80]}"})
    return pd.DataFrame(out)


def _mean_cell(r, metric: str) -> str:
    """``mean ± std [low, high]``: the std over runs, and the 95 % interval of :func:`combined_halfwidth`."""
    cell = _fmt(r[metric], r[f"{metric}_std"])
    half = r.get(f"{metric}_ci")
    if half is not None and not (isinstance(half, float) and math.isnan(half)):
        cell += f" [{max(0.0, r[metric] - half):.2f}, {min(100.0, r[metric] + half):.2f}]"
    return cell


def markdown_table(summary: pd.DataFrame) -> str:
    """The README table.  A difference to a paper's number is plain only for a reproduction
    (the paper's recipe and protocol, published and matched); otherwise it carries the marks of
    :func:`cell_marks`, and the notes column says why."""
    gap = "test_gap_war" in summary and summary["test_gap_war"].notna().any()
    head = ("| method | dataset | WAR % | paper WAR | Δ WAR | UAR % | paper UAR | Δ UAR | runs | protocol | notes |"
            + (" test-selected WAR (gap) |" if gap else "") + "\n"
            "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if gap else "") + "\n")
    lines = []
    for _, r in summary.iterrows():
        if r.get("runs", 0) == 0:
            lines.append(f"| {r['method']} | {r['dataset']} | {r.get('status', 'failed')} | | | | | | 0 | | |"
                         + (" |" if gap else ""))
            continue
        line = (f"| {r['method']} | {r['dataset']} | {_mean_cell(r, 'war')} | {paper_cell(r, 'war')} | "
                f"{diff_cell(r, 'war')} | {_mean_cell(r, 'uar')} | {paper_cell(r, 'uar')} | "
                f"{diff_cell(r, 'uar')} | {r['runs']} | {r['protocol']} | {_text(r.get('notes'))} |")
        if gap:
            best = r.get("best_test_war")
            line += f" {_fmt(best)} (+{r['test_gap_war']:.2f}) |" if _text(best) else " |"
        lines.append(line)
    return head + "\n".join(lines) + "\n"


def write_readme(folder: Path, suite: str) -> Path:
    df = read_version(folder)
    v = df.attrs["version"]
    summary = summarise(df, read_papers(folder.parent))
    row = df.iloc[0]
    text = (
        f"# Leaderboard: {suite}\n\n"
        f"Latest version: `{v}.csv` ({len(df)} runs; versions: {', '.join(versions(folder))}).\n"
        f"Generated by `fer-bench bench`; each row of the CSV is one cell × fold × seed. The table shows\n"
        f"mean ± std over seeds and folds (the average of per-run numbers, not pooled predictions) and,\n"
        f"in brackets, a 95 % interval for that mean (clipped to [0, 100]) holding both the seed spread and the test set's\n"
        f"sampling error: mean ± 1.96·sqrt(s²/n + mean σ_b²), s the std of the n runs, σ_b each run's\n"
        f"stratified-bootstrap standard error (1,000 resamples of its test predictions),\n"
        f"checkpoints chosen on validation ({row.get('selection', 'val')}), the test split evaluated once.\n"
        f"Paper columns come from `leaderboards/papers.csv` (the methods' metafiles); empty where the\n"
        f"paper reports no number.\n\n" + legend() + "\n"
        f"Code: fer_bench {row.get('fer_bench_version', '')}, git {str(row.get('git_commit', ''))[:10]}"
        f"{' (dirty)' if str(row.get('git_dirty')) == 'True' else ''}, torch {row.get('torch_version', '')}, "
        f"lightning {row.get('lightning_version', '')}; {row.get('devices', '')} device(s) × "
        f"{row.get('nodes', '')} node(s), {row.get('accelerator', '')}.\n\n"
        + markdown_table(summary)
    )
    matrix = transfer_matrix(df)
    if not matrix.empty:
        text += ("\n## Cross-dataset transfer (WAR %, train × test)\n\nRows: the dataset a method was trained on; "
                 "columns: the test split it was evaluated on (the diagonal is in-domain). Through the canonical "
                 "classes: a class one side lacks is left out of both, as each cross row's `excluded_classes` says. "
                 "Heatmap: `transfer.png`.\n\n" + transfer_markdown(matrix))
    path = folder / "README.md"
    atomic_write_text(path, text)
    return path


def transfer_markdown(matrix: pd.DataFrame) -> str:
    cols = list(matrix.columns)
    lines = ["| method | train \\ test | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (method, dataset), r in matrix.iterrows():
        lines.append(f"| {method} | {dataset} | " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot_transfer(folder: Path, out: Path, version: str | None = None) -> Path:
    """Heatmap of the train × test WAR matrix, one row per method and train dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = transfer_matrix(read_version(folder, version))
    fig, ax = plt.subplots(figsize=(3.0 + 1.1 * m.shape[1], 2.2 + 0.45 * m.shape[0]))
    ax.imshow(m.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(m.shape[1]), list(m.columns), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), [f"{a} / {b}" for a, b in m.index], fontsize=7)
    ax.set_xlabel("test dataset")
    ax.set_ylabel("method / train dataset")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.iat[i, j]
            if not (isinstance(v, float) and math.isnan(v)):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    ax.set_title(f"{folder.name}: cross-dataset WAR (%)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def diff(folder: Path, va: str, vb: str) -> pd.DataFrame:
    """Per cell: change of mean WAR/UAR from va to vb and whether it exceeds the seed spread."""
    papers = read_papers(folder.parent)
    a, b = summarise(read_version(folder, va), papers), summarise(read_version(folder, vb), papers)
    merged = a.merge(b, on=["method", "dataset"], how="outer", suffixes=("_a", "_b"))
    rows = []
    for _, r in merged.iterrows():
        rec = {"method": r["method"], "dataset": r["dataset"]}
        for m in ("war", "uar"):
            xa, xb = r.get(f"{m}_a"), r.get(f"{m}_b")
            spread = max((0.0 if pd.isna(v) else float(v)) for v in (r.get(f"{m}_std_a"), r.get(f"{m}_std_b")))
            rec[f"{m}_{va}"], rec[f"{m}_{vb}"] = xa, xb
            if pd.isna(xa) or pd.isna(xb):
                rec[f"d_{m}"], rec[f"{m}_beyond_spread"] = None, None
            else:
                rec[f"d_{m}"] = xb - xa
                rec[f"{m}_beyond_spread"] = bool(abs(xb - xa) > spread)
        rows.append(rec)
    return pd.DataFrame(rows)


def plot(folder: Path, out: Path, version: str | None = None) -> Path:
    """Bar chart of WAR and UAR per method × dataset with the paper's numbers as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    df = read_version(folder, version)
    s = summarise(df, read_papers(folder.parent))
    s = s[s["runs"] > 0]
    labels = [f"{m}\n{d}" for m, d in zip(s["method"], s["dataset"])]
    x = np.arange(len(s))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(s)), 4.5))
    for k, (m, off, colour) in enumerate((("war", -0.2, "tab:blue"), ("uar", 0.2, "tab:orange"))):
        ax.bar(x + off, s[m], width=0.4, yerr=s[f"{m}_std"], label=m.upper(), color=colour, capsize=2)
        paper = s[f"paper_{m}"].astype(float)
        ax.scatter(x + off, paper, marker="D", color="black", zorder=3, label="paper" if k == 0 else None)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{folder.name} {df.attrs['version']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
