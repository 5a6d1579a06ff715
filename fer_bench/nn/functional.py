"""Targets as the datasets give them: class ids ``[N]`` or soft targets ``[N, C]``.

FERPlus in probability mode gives a distribution over the classes per sample; every other
dataset gives a class id.  Losses and metrics that need one or the other go through these
two functions, so that the rule (the argmax of a soft target is its class) is written once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hard_labels(target: torch.Tensor) -> torch.Tensor:
    """Class ids ``[N]`` from ids ``[N]`` or soft targets ``[N, C]`` (their argmax)."""
    return target.argmax(dim=1) if target.ndim == 2 else target.long()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy for class ids ``[N]`` or soft targets ``[N, C]`` (probabilities)."""
    if target.ndim == 2:
        return F.cross_entropy(logits, target.to(logits.dtype), label_smoothing=label_smoothing)
    return F.cross_entropy(logits, target.long(), label_smoothing=label_smoothing)
