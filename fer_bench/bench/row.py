"""A leaderboard row: :class:`Row` *is* the leaderboard's schema (its fields are the CSV's columns,
in order), with how a planned row becomes a finished one.

A trained job's row is planned before the job runs (what it claims: its protocol, resolved against
the method's recipe, :func:`fer_bench.bench.job.planned_row`), then :meth:`Row.finished` with the
run's result (:func:`fer_bench.train.run`) or :meth:`Row.failed`.  A cross-dataset row
(:meth:`Row.cross`) starts from its job's finished row; an external row (predictions made
elsewhere, :mod:`fer_bench.bench.external`) claims no training at all.  Rows are stored as flat
dicts (``rows/<job>.json``, :meth:`Row.as_dict`); the per-class recalls become ``recall_<class>``
columns where the ``recall`` field stands.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

ERROR_CHARS = 500  # a row's error is its first characters; the job folder's error.txt has the traceback
# what a finished row copies from the run's result under the same name: intervals, calibration, cost, predictions
FROM_RESULT = ("best_epoch", "resumed_at_epoch", "n_train", "n_val", "n_test", "params", "accelerator", "precision",
               "tta", "macs", "war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "ece", "nll",
               "bootstrap_resamples", "train_samples_per_s", "test_samples_per_s", "peak_memory_mb", "predictions", "bundle",
               "best_test_epoch", "best_test_war", "best_test_uar")
INTERVALS = ("war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "ece", "nll")


def now() -> str:
    """A row's (and a claim's) timestamp: UTC, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class Row:
    """One leaderboard row; the field order is the CSV's column order."""

    # what was run, and its protocol
    suite: str
    method: str
    dataset: str
    classes: int | None = None
    fold: int | None = None
    label_mode: str | None = None
    sampler: str | None = None
    input_size: int | None = None
    in_chans: int | None = None
    resize: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    normalization: str | None = None
    augmentation: str | None = None
    frames: int | None = None
    short_clips: str | None = None
    face_crop: str | None = None  # how the dataset's faces were cropped, when it offers a choice (crop / align)
    pretrained: str | None = None
    tta: str | None = None
    seed: int | None = None
    # the scores
    war: float | None = None
    uar: float | None = None
    deviations: str = ""
    reconstructed: str = ""
    paper_protocol: str = ""
    recall: dict[str, float | None] = field(default_factory=dict)  # -> recall_<class> columns
    # how the checkpoint was chosen, and what the run cost
    best_epoch: int | None = None
    selection: str | None = None
    best_test_epoch: int | None = None
    best_test_war: float | None = None
    best_test_uar: float | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    dropped_short_clips: int | None = None
    skipped_files: int | None = None
    params: int | None = None
    train_seconds: float | None = None
    devices: int | None = None
    nodes: int | None = None
    precision: str | None = None
    accelerator: str | None = None
    # the code that ran it
    git_commit: str | None = None
    git_dirty: bool | None = None
    torch_version: str | None = None
    lightning_version: str | None = None
    fer_bench_version: str | None = None
    config_hash: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    status: str | None = None  # ok, failed
    error: str = ""
    # which row this is
    kind: str = "train"  # train, cross, external
    eval_dataset: str | None = None
    job: str
    attempts: int | None = None
    resumed_at_epoch: int | None = None
    # cost, intervals and calibration from the per-sample predictions (fer_bench.evaluation)
    macs: float | None = None
    war_ci_low: float | None = None
    war_ci_high: float | None = None
    uar_ci_low: float | None = None
    uar_ci_high: float | None = None
    ece: float | None = None
    nll: float | None = None
    bootstrap_resamples: int | None = None
    train_samples_per_s: float | None = None
    test_samples_per_s: float | None = None
    peak_memory_mb: float | None = None
    predictions: str | None = None
    bundle: str | None = None  # the trained model with how to feed it (fer_bench.bundle), for fer-bench predict
    # a cross-dataset row: the classes outside the shared ones
    excluded_classes: str | None = None
    n_excluded: int | None = None
    # an external row: where its predictions come from
    source: str | None = None
    source_file: str | None = None
    source_sha256: str | None = None
    input_kind: str | None = None  # labels or probabilities

    @classmethod
    def columns(cls, recall_classes: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The leaderboard's columns, ``recall_<class>`` for each of ``recall_classes`` where ``recall`` stands."""
        out: list[str] = []
        for f in fields(cls):
            out.extend(f"recall_{c}" for c in recall_classes) if f.name == "recall" else out.append(f.name)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The flat row a run folder stores and a leaderboard version holds."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "recall":
                out.update({f"recall_{c}": r for c, r in value.items()})
            else:
                out[f.name] = value
        return out

    # -- how a planned row ends ----------------------------------------------------------------
    def finished(self, res: Mapping[str, Any], paper_protocol: str) -> Row:
        """The row of a job that ran: the result of :func:`fer_bench.train.run`; ``paper_protocol`` compared
        with the run's own class count.  Non-finite test metrics are an error (the job then fails)."""
        if not (math.isfinite(res["war"]) and math.isfinite(res["uar"])):
            raise FloatingPointError("non-finite test metrics")
        proto = res.get("protocol") or {}
        return replace(
            self, status="ok", error="", classes=len(res["classes"]), war=res["war"], uar=res["uar"],
            label_mode=proto.get("label_mode", self.label_mode), sampler=proto.get("sampler", self.sampler),
            face_crop=" ".join(str(proto[k]) for k in ("crop", "align") if proto.get(k)) or None,
            dropped_short_clips=sum((proto.get("dropped_short_clips") or {}).values()) or None,
            paper_protocol=paper_protocol, skipped_files=len(res["skipped_files"]),
            train_seconds=round(res["train_seconds"], 2), recall=dict(res["per_class_recall"]),
            **{name: res.get(name) for name in FROM_RESULT}, finished_at=now())

    def failed(self, error: str) -> Row:
        return replace(self, status="failed", error=error.strip()[:ERROR_CHARS], war=None, uar=None, finished_at=now())

    def cross(self, dataset: str, key: str) -> Row:
        """The planned row of this finished job's evaluation on ``dataset``'s test split (its recalls are
        the evaluated set's, so none are copied)."""
        return replace(self, kind="cross", eval_dataset=dataset, job=key, recall={}, started_at=now(), finished_at=None)

    def scored(self, r: Mapping[str, Any], **more: Any) -> Row:
        """A row scored from predictions rather than trained (a cross-dataset evaluation,
        :func:`fer_bench.transfer.evaluate`; an external entry, :func:`fer_bench.score.score_predictions`):
        its scores, intervals and calibration from ``r``, and ``more`` columns."""
        return replace(self, status="ok", error="", war=r["war"], uar=r["uar"], n_test=r["n_test"],
                       classes=len(r["classes"]), predictions=r.get("predictions"), **{k: r.get(k) for k in INTERVALS},
                       recall=dict(r["per_class_recall"]), finished_at=now(), **more)

    def cross_scored(self, r: Mapping[str, Any]) -> Row:
        """A cross row with the result of :func:`fer_bench.transfer.evaluate`: the classes outside the shared ones."""
        excluded = r["excluded_dataset_classes"] + [f"{c} (model)" for c in r["excluded_model_classes"]]
        return self.scored(r, excluded_classes=", ".join(excluded), n_excluded=r["n_excluded"])

    def message(self) -> str:
        return message(self)


def message(row: Row | Mapping[str, Any]) -> str:
    """``WAR x UAR y`` of a finished row (stored or not), or ``FAILED (first line of its error)``."""
    row = row.as_dict() if isinstance(row, Row) else row
    if row.get("status") == "ok":
        return f"WAR {100 * row['war']:.2f} UAR {100 * row['uar']:.2f}"
    error = str(row.get("error") or "")
    return f"FAILED ({error.splitlines()[0][:200] if error else ''})"


def done_line(row: Mapping[str, Any]) -> str:
    """One line for a stored row as it comes in (the ``--parallel`` display)."""
    what = f"{row['method']}/{row['dataset']}" + (f" -> {row['eval_dataset']}" if row.get("kind") == "cross" else "")
    what += f" fold={row.get('fold')} seed={row.get('seed')}"
    return f"done: {what}: {message(row)} (attempts {row.get('attempts', 1)})"
