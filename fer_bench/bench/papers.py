"""What a leaderboard compares with: the papers' numbers, and the marks that say why a difference
to one is not a reproduction.

``leaderboards/papers.csv`` is generated from the methods' metafiles (:func:`paper_rows`), never
typed twice: a paper method's own numbers (``kind`` ``paper``) and a baseline's anchors, the
numbers a named public source reports for it (``kind`` ``anchor``), each with the class count it
is for, its protocol items and its source.  The leaderboard commands read that file, never the
methods, so that showing a table needs neither torch nor a model.

Marks (:func:`cell_marks`): a difference to a paper's number is a reproduction only when it is
unmarked — every recipe field it depends on published and matched, every protocol item of the
number published and matched.  ``†`` the run deviates from a published field or protocol item,
``‡`` the paper does not state a protocol item, ``§`` a field is fer_bench's reconstruction.
``ext`` (:data:`EXTERNAL`) marks a cell of a suite's ``external:`` entries: predictions made
elsewhere, scored here; nothing of it was trained here, so no difference of it is a reproduction.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from fer_bench.files import atomic_write_text

# -- paper numbers -----------------------------------------------------------------------
PAPER_COLUMNS = ["method", "dataset", "classes", "metric", "value", "kind", "by", "protocol", "source"]


def paper_rows() -> list[dict[str, Any]]:
    """One row per number a method's metafile reports: its value, the class count it is for (if
    stated), ``paper`` (the method's own paper) or ``anchor`` (a baseline's named public source),
    its protocol items (``item=value [status]``) and its source."""
    from fer_bench.methods import METHODS

    rows = []
    for name, cls in METHODS.items():
        meta = cls.metafile()
        for rep in meta.reported:
            proto = "; ".join(f"{k}={item.value} [{item.status}]" for k, item in rep.protocol.items())
            src = meta.citation + (f", doi {meta.doi}" if meta.doi else "") + f": {rep.source}"
            for metric, value in rep.values.items():
                rows.append({"method": name, "dataset": rep.dataset, "classes": rep.classes, "metric": metric,
                             "value": value, "kind": "anchor" if meta.kind == "baseline" else "paper",
                             "by": rep.by, "protocol": proto, "source": src})
    return rows


def write_papers_csv(root: Path) -> Path:
    path = root / "papers.csv"
    df = pd.DataFrame(paper_rows(), columns=PAPER_COLUMNS)
    df["classes"] = df["classes"].astype("Int64")
    atomic_write_text(path, df.to_csv(index=False))
    return path


Papers = dict[tuple[str, str, Any, str], dict[str, Any]]


def read_papers(root: Path) -> Papers:
    """``(method, dataset, classes or None, metric) -> {"value", "kind", "by"}`` from
    ``<root>/papers.csv`` (empty when absent; a file of the older layout without ``classes`` is read too).

    The leaderboard commands read paper numbers from this file, never from the methods, so
    that showing a table needs neither torch nor a model."""
    path = Path(root) / "papers.csv"
    if not path.exists():
        return {}
    df = pd.read_csv(path)
    out: Papers = {}
    for r in df.to_dict("records"):
        classes = r.get("classes")
        classes = None if classes is None or (isinstance(classes, float) and math.isnan(classes)) else int(classes)
        out[(r["method"], r["dataset"], classes, r["metric"])] = {
            "value": float(r["value"]), "kind": _text(r.get("kind")) or "paper", "by": _text(r.get("by"))}
    return out


def paper_entry(papers: Papers, method: str, dataset: str, metric: str, classes: Any = None) -> dict[str, Any] | None:
    """The paper's number for a leaderboard method name (``method`` or ``method[variant]``) on a
    cell with ``classes`` classes: the one stated for that class count, else one stating none."""
    base = method.split("[", 1)[0]
    if classes is not None and not (isinstance(classes, float) and math.isnan(classes)):
        hit = papers.get((base, dataset, int(classes), metric))
        if hit is not None:
            return hit
        if any(k[0] == base and k[1] == dataset and k[3] == metric and k[2] is not None for k in papers):
            return papers.get((base, dataset, None, metric))
    return papers.get((base, dataset, None, metric)) or next(
        (v for k, v in papers.items() if k[:2] == (base, dataset) and k[3] == metric and classes is None), None)


def paper_value(papers: Papers, method: str, dataset: str, metric: str, classes: Any = None) -> float | None:
    hit = paper_entry(papers, method, dataset, metric, classes)
    return None if hit is None else hit["value"]


# -- summaries -----------------------------------------------------------------------------
def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _fmt(v: Any, std: Any = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    s = f"{v:.2f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {std:.2f}"
    return s


def _items(series: pd.Series | None, sep: str = ";") -> list[str]:
    """The distinct ``sep``-separated entries of a column, in order of first appearance."""
    seen: dict[str, None] = {}
    for v in (series if series is not None else []):
        for part in _text(v).split(sep):
            if part.strip():
                seen.setdefault(part.strip(), None)
    return list(seen)


def _field_of(deviation: str) -> str:
    """The recipe field a deviation is about (``loss_weights.ial_weight 0.2≠0.1`` -> ``loss_weights``;
    the format of :func:`fer_bench.methods.metafile.deviations`)."""
    return deviation.split(" ", 1)[0].split(".", 1)[0]


DEVIATES, NOT_STATED, RECONSTRUCTED = "†", "‡", "§"
EXTERNAL = "ext"  # a row of kind "external": predictions made elsewhere (suite key external:)
LEGEND = {
    DEVIATES: "the run deviates from a published field of the paper's recipe or protocol (which: notes)",
    NOT_STATED: "the paper does not state a protocol item of its number, or we only read it off the dataset "
                "(which: notes)",
    RECONSTRUCTED: "a recipe field the number depends on is fer_bench's reconstruction: we reproduce our reading, "
                   "not the paper (which: notes)",
    EXTERNAL: "external: predictions made elsewhere (who made them: notes), scored here on the same test split by "
              "the same code; nothing was trained here, so the row states no recipe, epochs, seeds or training cost "
              "(its protocol column starts with `external`)",
}


def cell_marks(g: pd.DataFrame) -> dict[str, Any]:
    """What keeps a cell's difference to its paper's number from being a reproduction.

    From the rows' ``deviations`` (recipe fields whose value differs), ``reconstructed`` (relevant
    fields that are fer_bench's reading) and ``paper_protocol`` (:func:`fer_bench.methods.metafile.
    paper_protocol`): ``†`` for a deviation from a *published* field or a protocol item that
    differs, ``‡`` for a protocol item not stated, ``§`` for a reconstructed field.  Rows without a
    ``reconstructed`` column (older versions) count every deviation as one from a published field.
    Returns the marks, the notes that say why, and ``reproduction`` (no mark, protocol stated).

    A cell with a row of ``kind`` ``external`` is marked ``ext`` first, its notes naming the
    ``source``; it is never a reproduction."""
    devs = _items(g.get("deviations"))
    has_recon = "reconstructed" in g
    recon = _items(g.get("reconstructed")) if has_recon else []
    published_devs = [d for d in devs if _field_of(d) not in recon]
    proto = _items(g.get("paper_protocol"), sep="|")
    differs = [p[len("differs ("):-1] for part in proto for p in part.split("; ") if p.startswith("differs (")]
    missing = [p[len("not stated ("):-1] for part in proto for p in part.split("; ") if p.startswith("not stated (")]
    marks, notes = "", []
    if published_devs or differs:
        marks += DEVIATES
        notes.append(f"{DEVIATES} deviates: " + "; ".join(published_devs + differs))
    if missing:
        marks += NOT_STATED
        notes.append(f"{NOT_STATED} paper protocol not stated: " + ", ".join(dict.fromkeys(
            x.strip() for m in missing for x in m.split(","))))
    if recon:
        marks += RECONSTRUCTED
        shown = ", ".join(recon[:4]) + (f" + {len(recon) - 4} more" if len(recon) > 4 else "")
        notes.append(f"{RECONSTRUCTED} reconstructed: {shown}")
    other = [d for d in devs if d not in published_devs]
    if other:
        notes.append("deviates from reconstructed fields: " + "; ".join(other))
    if is_external(g):
        marks = EXTERNAL + marks
        notes.insert(0, f"{EXTERNAL}: predictions made elsewhere, scored here ("
                     + ("; ".join(_items(g.get("source"), sep="\n")) or "source not given") + ")")
    return {"marks": marks, "notes": "; ".join(notes), "deviations": "; ".join(devs),
            "reconstructed": "; ".join(recon), "paper_protocol": " | ".join(proto),
            "reproduction": not marks and proto == ["stated"]}


def is_external(g: pd.DataFrame) -> bool:
    """Whether any row of ``g`` is of ``kind`` ``external`` (a suite's ``external:`` entry)."""
    return "kind" in g and bool((g["kind"] == "external").any())


def diff_cell(r, metric: str) -> str:
    """``Δ`` with the cell's marks; plain only for a reproduction."""
    d = r.get(f"diff_{metric}")
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return ""
    if r.get("reproduction"):
        return _fmt(d)
    return f"{_fmt(d)} {_text(r.get('marks'))}".rstrip()


def paper_cell(r, metric: str) -> str:
    """The paper's number; a baseline anchor names its source (``86.54 (DACL)``)."""
    v = _fmt(r.get(f"paper_{metric}"))
    by = _text(r.get(f"paper_{metric}_by"))
    return f"{v} ({by})" if v and by else v


def legend() -> str:
    """One line per mark, and what an unmarked difference means."""
    return ("Δ = ours − paper. Unmarked: every recipe field and protocol item the number depends on is published "
            "and the run matches it: a reproduction.\n"
            + "".join(f"- {mark} = {text}\n" for mark, text in LEGEND.items())
            + "- a baseline's paper column is an anchor: the number the named public source reports for that "
              "baseline (`leaderboards/papers.csv`).\n")
