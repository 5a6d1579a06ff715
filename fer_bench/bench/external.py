"""A suite's ``external:`` entries: predictions made elsewhere, scored as leaderboard rows.

Each entry (:class:`fer_bench.bench.suite.External`) is scored by
:func:`fer_bench.score.score_predictions` on its dataset's test split (``<data root>/<dataset>``,
as the cells read it) when the run is planned, before any job starts, and becomes one row of
``kind`` ``external``: the columns of a trained row that the scoring measured (WAR, UAR,
per-class recall, the bootstrap intervals, ECE and NLL when probabilities were given,
``n_test``, ``classes``, ``label_mode`` and a ``predictions`` file in a run's layout, so that
``fer-bench leaderboard compare`` pairs it) and nothing that did not run here: no seed, epochs,
recipe fields, deviations, pre-training, TTA, parameters or training time.  ``config_hash`` is
``ext-`` and a hash of the file's SHA-256 with the test protocol; ``source``, ``source_file``,
``source_sha256`` and ``input_kind`` say where the predictions came from.

The row is written to the run folder like a job's (``rows/<key>.json``, outputs under
``jobs/<key>/``), so a resumed run does not score it again; a changed file has another SHA-256,
hence another key, and is scored as a new entry.
"""
from __future__ import annotations

import json
from pathlib import Path

import fer_bench
from fer_bench.bench.row import Row, now
from fer_bench.bench.runfolder import RunFolder, safe_name
from fer_bench.bench.suite import External
from fer_bench.evaluation import RELIABILITY_FILE

KIND = "external"


def planned_row(suite: str, e: External, commit: str, dirty: bool | None) -> Row:
    """What an external row claims before it is scored: where the predictions come from, and the
    code that scores them (``git_commit``, ``fer_bench_version``), nothing about a training."""
    return Row(suite=suite, method=e.method, dataset=e.dataset, kind=KIND, eval_dataset=e.dataset, fold=e.fold,
               source=e.source, source_file=e.predictions, source_sha256=e.sha256, git_commit=commit,
               git_dirty=dirty, fer_bench_version=fer_bench.__version__, config_hash=e.config_hash, job=e.key,
               started_at=now())


def score_entry(rf: RunFolder, suite: str, e: External, root: str | None, commit: str, dirty: bool | None,
                echo=print) -> Row:
    """Score one entry into its row (outputs under ``rf.job_dir(e.key)``).  A file that does not
    match the test split is a :class:`~fer_bench.errors.UserError` (one line, nothing written);
    any other failure gives a ``failed`` row, as a failing job does."""
    from fer_bench.errors import UserError
    from fer_bench.score import score_predictions

    row = planned_row(suite, e, commit, dirty)
    out = rf.job_dir(e.key)
    try:
        res = score_predictions(e.dataset, root, e.predictions, fold=e.fold, data_args=e.data_args, out=out)
    except UserError as err:
        raise UserError(f"suite {suite}, external entry {e.method}/{e.dataset}: {err}") from None
    except Exception as err:  # noqa: BLE001  (one failing entry never stops the suite)
        row = row.failed(f"{type(err).__name__}: {err}")
        echo(f"external {e.method}/{e.dataset}: FAILED ({err})")
        return row
    row = row.scored(res, label_mode=(res.get("protocol") or {}).get("label_mode"), input_kind=res["input_kind"],
                     bootstrap_resamples=res.get("bootstrap_resamples"))
    if res["input_kind"] == "probabilities":  # the page shows it beside the trained rows' diagrams
        try:
            import numpy as np

            from fer_bench.evaluation import load_predictions, plot_reliability

            p = load_predictions(res["predictions"])
            plot_reliability(np.asarray(p["probs"]), np.asarray(p["label"]), out / RELIABILITY_FILE,
                             title=f"{e.method} on {e.dataset} (external)")
        except Exception:  # noqa: BLE001  (a figure never fails the row)
            pass
    echo(f"external {e.method}/{e.dataset}{'' if e.fold is None else f' fold={e.fold}'}: {row.message()} "
         f"({res['input_kind']}, {e.source})")
    return row


def _refresh_source(rf: RunFolder, e: External) -> None:
    """A cached row whose entry's ``source`` text was edited since gets the new text (its numbers stay)."""
    path = rf.path / "rows" / f"{safe_name(e.key)}.json"
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if row.get("source") != e.source:
        rf.write_row({**row, "source": e.source})


def plan_external(rf: RunFolder, suite: str, entries: list[External], data_root: str | None, *, commit: str,
                  dirty: bool | None, echo=print) -> tuple[list[str], int]:
    """Score the entries not yet scored in this run folder; returns the keys of the rows the
    leaderboard version gets (entries whose dataset is not under ``data_root`` are skipped with one
    line, as cells are) and how many were scored now."""
    from fer_bench.data import DATASETS

    keys, scored = [], 0
    for e in entries:
        root = None
        if DATASETS.get(e.dataset).requires_root:
            root = str((Path(data_root) / e.dataset).resolve()) if data_root else None
            if root is None or not Path(root).exists():
                echo(f"skip: external entry {e.method}/{e.dataset}: dataset not found at "
                     f"{root or '(no --data-root / FER_DATA given)'}")
                continue
        keys.append(e.key)
        if rf.has_row(e.key):  # scored by an earlier attempt at this run: the same file, the same row
            _refresh_source(rf, e)
            continue
        rf.write_row(score_entry(rf, suite, e, root, commit, dirty, echo))
        scored += 1
    return keys, scored
