"""The canonical class order that every dataset maps onto and every method predicts in.

A module of names only (no torch, no dataset code), so that methods, datasets, metrics and
the command line can share it without importing each other.  Each dataset parser maps its
own label order onto :data:`CANONICAL_CLASSES` at the parsing edge; ``contempt`` is the
eighth class of the datasets that have it (CK+, AffectNet-8, FERPlus).
"""
from __future__ import annotations

CANONICAL_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CANONICAL_CLASSES_8: tuple[str, ...] = CANONICAL_CLASSES + ("contempt",)


def default_class_names(num_classes: int) -> list[str]:
    """The first ``num_classes`` canonical names, padded with ``classK`` beyond eight."""
    known = list(CANONICAL_CLASSES_8[:num_classes])
    return known + [f"class{k}" for k in range(len(known), num_classes)]
