"""FER evaluation metrics: WAR, UAR, per-class recall and confusion matrix.

Definitions (as used by the FER literature, e.g. DFEW/FERV39K papers):

* **WAR** (weighted average recall) = plain accuracy over all evaluated samples.
* **UAR** (unweighted average recall) = mean of per-class recalls over the dataset's
  FIXED class list.  A class that has test samples but is never predicted counts with
  recall 0 (libraries that infer the label set from the predictions silently drop it).
  A class with no test samples has no recall: it is excluded from the mean and a warning
  is issued.

Exactness under DDP: a ``DistributedSampler`` pads an evaluation set whose size does not
divide by the world size with duplicated samples.  :class:`FERMetrics` therefore keeps the
dataset index of every evaluated sample (a ``cat`` state gathered across ranks) and drops
repeated indices before computing anything, so each sample counts exactly once.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchmetrics.utilities import dim_zero_cat

from fer_bench.nn.functional import hard_labels


class MissingClassWarning(UserWarning):
    """A class of the fixed label list has no evaluated samples; it is left out of UAR."""


@dataclass
class FERScores:
    """Scores of one evaluation; ``per_class_recall`` holds ``None`` for an absent class."""

    war: float
    uar: float
    per_class_recall: dict[str, float | None]
    confusion: list[list[int]]
    classes: list[str]
    n: int
    absent_classes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "war": self.war,
            "uar": self.uar,
            "per_class_recall": self.per_class_recall,
            "confusion": self.confusion,
            "classes": self.classes,
            "n_evaluated": self.n,
            "absent_classes": self.absent_classes,
        }


def scores_from_confusion(confusion: torch.Tensor, classes: list[str], *, warn: bool = True) -> FERScores:
    """WAR/UAR/recall from a confusion matrix (rows = true class, columns = prediction)."""
    confusion = confusion.to(torch.float64)
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    n = int(support.sum().item())
    present = support > 0
    recall = torch.where(present, correct / support.clamp(min=1), torch.full_like(support, float("nan")))
    absent = [c for c, p in zip(classes, present.tolist()) if not p]
    if absent and warn:
        warnings.warn(
            f"classes with no evaluated samples are excluded from UAR: {', '.join(absent)}",
            MissingClassWarning,
            stacklevel=2,
        )
    war = float(correct.sum().item() / n) if n else float("nan")
    uar = float(recall[present].mean().item()) if bool(present.any()) else float("nan")
    return FERScores(
        war=war,
        uar=uar,
        per_class_recall={c: (float(r) if p else None) for c, r, p in zip(classes, recall.tolist(), present.tolist())},
        confusion=confusion.to(torch.int64).tolist(),
        classes=list(classes),
        n=n,
        absent_classes=absent,
    )


def dedup_by_index(index: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Keep the first occurrence of each dataset index (drops DistributedSampler padding)."""
    order = torch.argsort(index, stable=True)
    sorted_idx = index[order]
    keep = torch.ones_like(sorted_idx, dtype=torch.bool)
    keep[1:] = sorted_idx[1:] != sorted_idx[:-1]
    sel = order[keep]
    return (index[sel],) + tuple(t[sel] for t in tensors)


class FERMetrics(Metric):
    """Accumulates (index, prediction, target) per sample; computes :class:`FERScores`.

    ``update(logits_or_preds, target, index)``: ``logits_or_preds`` is ``[N, C]`` logits /
    probabilities or ``[N]`` class ids; ``target`` is ``[N]`` class ids or ``[N, C]`` soft
    targets (their argmax is the class); ``index`` is the dataset index of each sample.
    """

    full_state_update = False

    def __init__(self, classes: list[str], keep_probs: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.keep_probs = bool(keep_probs)  # the test split keeps its class probabilities too
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self._predictions: dict[str, torch.Tensor] | None = None

    def update(self, preds: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> None:
        if self.keep_probs:
            if preds.ndim != 2:
                raise ValueError("keep_probs needs [N, C] scores, got class ids")
            self.probs.append(torch.softmax(preds.detach().float(), dim=1))
        if preds.ndim == 2:
            preds = preds.argmax(dim=1)
        target = hard_labels(target)
        self.index.append(index.detach().long().reshape(-1))
        self.preds.append(preds.detach().long().reshape(-1))
        self.target.append(target.detach().long().reshape(-1))

    def predictions(self) -> dict[str, torch.Tensor]:
        """Per sample, over all ranks, each once, sorted by dataset index: ``index``, ``label``,
        ``pred`` and (with ``keep_probs``) ``probs`` ``[N, C]``.  Taken by :meth:`compute`
        while the states are gathered across ranks; call it after ``compute()``."""
        if self._predictions is None:
            raise RuntimeError("predictions() is read after compute()")
        return self._predictions

    def _collect(self) -> dict[str, torch.Tensor]:
        """(index, label, pred[, probs]) over all ranks, each sample once (DistributedSampler
        padding dropped), sorted by index, on the CPU."""
        if isinstance(self.index, list) and not self.index:
            empty = torch.empty(0, dtype=torch.long)
            return {"index": empty, "label": empty, "pred": empty,
                    "probs": torch.empty(0, self.num_classes)}
        index, preds, target = (dim_zero_cat(s) for s in (self.index, self.preds, self.target))
        tensors = [preds, target] + ([dim_zero_cat(self.probs)] if self.keep_probs else [])
        index, *rest = dedup_by_index(index, *tensors)
        out = {"index": index.cpu(), "pred": rest[0].cpu(), "label": rest[1].cpu()}
        if self.keep_probs:
            out["probs"] = rest[2].cpu()
        return out

    def compute(self) -> FERScores:  # type: ignore[override]
        self._predictions = p = self._collect()  # the states are gathered over the ranks here
        confusion = multiclass_confusion_matrix(p["pred"], p["label"], num_classes=self.num_classes)
        return scores_from_confusion(confusion, self.classes)
