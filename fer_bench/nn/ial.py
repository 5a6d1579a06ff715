"""Intensity-aware loss (IAL) of Li, Niu, Zhu & Zhao, "Intensity-Aware Loss for Dynamic
Facial Expression Recognition in the Wild", AAAI 2023 (arXiv 2208.10335).

For logits ``z``, label ``y`` and the most confusing class ``j = argmax_{j != y} z_j``::

    L_IAL = -log( e^{z_y} / (e^{z_y} + e^{z_j}) ) = softplus(z_j - z_y)

i.e. a two-way cross entropy between the target and the highest non-target logit, which
pushes low-intensity clips (whose target logit is close to a competitor) apart.  The
official training script (``main.py``) computes it as a cross entropy over logits in which
every class other than ``y`` and ``j`` is pushed down by 9999; the choice of ``j`` is not
differentiated (an argmax).  It weights it 0.1 in the total loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.errors import verify_choice
from fer_bench.nn.functional import hard_labels

__all__ = ["hardest_negative", "intensity_aware_loss", "IntensityAwareLoss"]


def _class_ids(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {tuple(logits.shape)}")
    if logits.shape[1] < 2:
        raise ValueError("the intensity-aware loss needs at least 2 classes")
    target = hard_labels(target)  # soft targets (e.g. FERPlus probabilities): the most probable class
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    return target


def hardest_negative(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``argmax_{j != y} z_j`` per row: the highest logit among the non-target classes."""
    y = _class_ids(logits, target)
    masked = logits.detach().masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return masked.argmax(dim=1)


def intensity_aware_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``-log(e^{z_y} / (e^{z_y} + e^{z_j}))`` with ``j`` the highest non-target logit.

    ``target``: class ids ``[N]`` or soft targets ``[N, C]`` (their argmax is used).
    ``reduction``: ``"mean"`` (as the official code), ``"sum"`` or ``"none"``.
    """
    y = _class_ids(logits, target)
    j = hardest_negative(logits, y)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_j = logits.gather(1, j[:, None]).squeeze(1)
    loss = F.softplus(z_j - z_y)
    verify_choice(reduction, "reduction", ("mean", "sum", "none"))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class IntensityAwareLoss(nn.Module):
    """Module form of :func:`intensity_aware_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return intensity_aware_loss(logits, target, self.reduction)
