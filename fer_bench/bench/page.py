"""The leaderboard page: ``leaderboards/<suite>/index.html``, one self-contained file.

No server and nothing fetched: the styles, the sorting script and the images (reliability
diagrams, as ``data:`` URIs) are inside the file.  It shows the summary table (mean ± std and
the 95 % interval of :func:`fer_bench.bench.leaderboard.combined_halfwidth`, the paper's
number (a baseline's anchor with its source), the difference with its marks and the notes that
say why, and, when the suite ran with ``test_every_epoch``, the best-test-epoch score and its
gap to the validation-selected one), the legend, a per-class recall heatmap per dataset
(methods × classes), the cross-dataset transfer matrix, the reliability diagram of each
cell's first run, and every row of the version's CSV (one per job), so nothing in the CSV is
missing from the page.  A suite's external entries (predictions made elsewhere) are cells of the
summary like the trained ones, their protocol ``external ...`` and their mark ``ext`` in the legend.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fer_bench.bench import leaderboard as lb
from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.evaluation import RELIABILITY_FILE
from fer_bench.files import atomic_write_text

PAGE = "index.html"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.6em 0 1.6em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f2f2f2;cursor:pointer;position:sticky;top:0}
td.t,th.t{text-align:left}
.note{color:#555;font-size:12px;max-width:70em}
.mark{color:#b00;font-weight:bold}
figure{display:inline-block;margin:0 10px 10px 0;font-size:11px;text-align:center}
figure img{width:260px;border:1px solid #ddd}
details{margin-bottom:1.5em}
"""
_SORT = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _esc(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _cell(v: Any, text: str | None = None, cls: str = "") -> str:
    sort = "" if v is None or (isinstance(v, float) and math.isnan(v)) else f' data-v="{html.escape(str(v))}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{sort}>{text if text is not None else _esc(v)}</td>"


def _colour(pct: float | None) -> str:
    if pct is None or (isinstance(pct, float) and math.isnan(pct)):
        return "#fff"
    x = max(0.0, min(1.0, pct / 100))
    return f"rgb({int(255 - 200 * x)},{int(255 - 110 * x)},{int(255 - 40 * x)})"


def _summary_table(summary: pd.DataFrame) -> str:
    gap = "test_gap_war" in summary and summary["test_gap_war"].notna().any()
    head = ["method", "dataset", "WAR %", "WAR 95 %", "paper WAR", "Δ WAR", "UAR %", "UAR 95 %", "paper UAR",
            "Δ UAR", "runs", "protocol", "notes"] + (["test-selected WAR", "gap WAR", "gap UAR"] if gap else [])
    rows = []
    for _, r in summary.iterrows():
        if r.get("runs", 0) == 0:
            rows.append(f"<tr><td class='t'>{_esc(r['method'])}</td><td class='t'>{_esc(r['dataset'])}</td>"
                        f"<td colspan='{len(head) - 2}' class='t'>{_esc(r.get('status'))}</td></tr>")
            continue
        cells = [_cell(r["method"], cls="t"), _cell(r["dataset"], cls="t")]
        for m in ("war", "uar"):
            half = r.get(f"{m}_ci")
            ci = "" if half is None or (isinstance(half, float) and math.isnan(half)) else \
                f"[{max(0.0, r[m] - half):.2f}, {min(100.0, r[m] + half):.2f}]"
            cells.append(_cell(r[m], lb._fmt(r[m], r[f"{m}_std"])))  # an external cell has no std over seeds
            cells.append(_cell(half, ci))
            cells.append(_cell(r.get(f"paper_{m}"), html.escape(lb.paper_cell(r, m))))
            diff = lb.diff_cell(r, m)
            num, _, mark = diff.partition(" ")
            cells.append(_cell(r.get(f"diff_{m}"), f"{html.escape(num)} <span class='mark'>{html.escape(mark)}</span>"))
        cells += [_cell(r["runs"]), _cell(r["protocol"], cls="t"), _cell(lb._text(r.get("notes")), cls="t")]
        if gap:
            cells += [_cell(r.get("best_test_war"), lb._fmt(r.get("best_test_war"))),
                      _cell(r.get("test_gap_war"), lb._fmt(r.get("test_gap_war"))),
                      _cell(r.get("test_gap_uar"), lb._fmt(r.get("test_gap_uar")))]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table class='sortable'><thead><tr>" + "".join(f"<th class='t'>{h}</th>" if i in (0, 1, 11, 12)
                                                              else f"<th>{h}</th>" for i, h in enumerate(head))
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _recall_heatmaps(df: pd.DataFrame) -> str:
    ok = lb.trained_rows(df)
    ok = ok[ok["status"] == "ok"] if "status" in ok else ok
    recall_cols = [c for c in ok.columns if c.startswith("recall_")]
    out = []
    for dataset, g in ok.groupby("dataset", sort=True):
        order = {c: k for k, c in enumerate(CANONICAL_CLASSES_8)}
        cols = sorted((c for c in recall_cols if g[c].notna().any()),
                      key=lambda c: (order.get(c[len("recall_"):], len(order)), c))
        means = g.groupby("method")[cols].mean().mul(100)
        head = "".join(f"<th>{html.escape(c[len('recall_'):])}</th>" for c in cols)
        body = "".join(
            f"<tr><td class='t'>{html.escape(m)}</td>"
            + "".join(f"<td style='background:{_colour(v)}'>{'' if pd.isna(v) else f'{v:.1f}'}</td>" for v in r)
            + "</tr>" for m, r in means.iterrows())
        out.append(f"<h3>{html.escape(dataset)}</h3><table><thead><tr><th class='t'>method</th>{head}</tr></thead>"
                   f"<tbody>{body}</tbody></table>")
    return "".join(out)


def _transfer(df: pd.DataFrame) -> str:
    m = lb.transfer_matrix(df)
    if m.empty:
        return "<p class='note'>No cross-dataset evaluation in this suite (suite key <code>cross_eval</code>).</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in m.columns)
    body = "".join(
        f"<tr><td class='t'>{html.escape(a)}</td><td class='t'>{html.escape(b)}</td>"
        + "".join(f"<td style='background:{_colour(v)}'>{'' if pd.isna(v) else f'{v:.1f}'}</td>" for v in r)
        + "</tr>" for (a, b), r in m.iterrows())
    return (f"<table><thead><tr><th class='t'>method</th><th class='t'>train \\ test</th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _reliability(df: pd.DataFrame) -> str:
    ok = lb.trained_rows(df)
    if "predictions" not in ok:
        return ""
    figs = []
    for (method, dataset), g in ok[ok["status"] == "ok"].groupby(["method", "dataset"], sort=True):
        pred = g["predictions"].dropna()
        if pred.empty:
            continue
        png = Path(str(pred.iloc[0])).with_name(RELIABILITY_FILE)
        if png.exists():
            data = base64.b64encode(png.read_bytes()).decode()
            ece = g["ece"].iloc[0] if "ece" in g else float("nan")
            figs.append(f"<figure><img alt='reliability {html.escape(method)} {html.escape(dataset)}' "
                        f"src='data:image/png;base64,{data}'><figcaption>{html.escape(method)} / {html.escape(dataset)}"
                        f" (first run, ECE {_esc(ece)})</figcaption></figure>")
    return "".join(figs) or "<p class='note'>No reliability diagram found beside the rows' predictions.</p>"


def _runs_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr data-job='" + html.escape(str(r.get("job", ""))) + "'>" + "".join(_cell(r[c]) for c in cols) + "</tr>"
                   for _, r in df.iterrows())
    return f"<table class='sortable' id='runs'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_page(folder: Path, suite: str, version: str | None = None) -> Path:
    """Write ``<folder>/index.html`` for a leaderboard version (default the latest)."""
    df = lb.read_version(folder, version)
    summary = lb.summarise(df, lb.read_papers(folder.parent))
    v = df.attrs["version"]
    text = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>fer_bench leaderboard: {html.escape(suite)} {v}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Leaderboard: {html.escape(suite)} <small>{v}</small></h1>"
        f"<p class='note'>{len(df)} rows (one per job) from <code>{v}.csv</code>. Mean ± std over seeds and folds; "
        "95 % = an interval for the mean holding seed spread and the test set's sampling error (stratified "
        "bootstrap of each run's predictions). Checkpoints chosen on validation, test split evaluated once. "
        "Click a column to sort.</p><p class='note'>" + html.escape(lb.legend()).replace("\n", "<br>")
        + "Test-selected WAR (when the suite ran with <code>test_every_epoch</code>): the test score of the best "
        "test epoch, what a paper that keeps its best test epoch reports; the gap is how much that overstates.</p>"
        "<h2>Summary</h2>" + _summary_table(summary)
        + "<h2>Per-class recall (%, mean over runs)</h2>" + _recall_heatmaps(df)
        + "<h2>Cross-dataset transfer (WAR %)</h2>" + _transfer(df)
        + "<h2>Reliability diagrams</h2>" + _reliability(df)
        + f"<h2>Every run</h2><details><summary>{len(df)} rows of {v}.csv</summary>" + _runs_table(df) + "</details>"
        + f"<script>{_SORT}</script></body></html>\n"
    )
    path = folder / PAGE
    atomic_write_text(path, text)
    return path
