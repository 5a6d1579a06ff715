"""Test-time augmentation: the views of a test input, and their mean softmax.

* ``hflip``: the input and its horizontal mirror.
* ``tencrop``: the four corner crops and the centre crop of side ``size`` (the model's input
  size) of an input that is larger (the recipe's ``resize``), and the mirror of each — the
  ten-crop test of the FER2013 / CK+ literature (e.g. WuJie1010/Facial-Expression-Recognition
  .Pytorch ``mainpro_FER.py``, ``transforms.TenCrop(44)`` on 48x48 faces; torchvision's
  ``TenCrop`` makes the same ten views).

The scores of a sample are the log of the mean softmax over its views, so that a row's
probabilities (calibration, predictions) stay probabilities.  Images are ``[B, C, H, W]``,
clips ``[B, T, C, H, W]``: the last two axes are height and width.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from fer_bench.errors import UserError, verify_choice

TTA_MODES: tuple[str, ...] = ("none", "hflip", "tencrop")


def five_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Top-left, top-right, bottom-left, bottom-right and centre crops of side ``size``; the centre
    crop's top-left corner is ``round((H - size) / 2)`` as in torchvision's ``center_crop``."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise UserError(f"tta tencrop: crops of {size} px need a larger test image, got {h}x{w} "
                        "(the recipe's resize must exceed the input size)")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    return [x[..., i:i + size, j:j + size] for i, j in corners]


def views(x: torch.Tensor, mode: str, size: int | None = None) -> list[torch.Tensor]:
    """The test views of ``x`` under ``mode``; ``size`` is the crop side of ``tencrop``."""
    verify_choice(mode, "tta", TTA_MODES)
    if mode == "none":
        return [x]
    if mode == "hflip":
        return [x, x.flip(-1)]
    crops = five_crops(x, int(size if size is not None else x.shape[-1]))
    return crops + [c.flip(-1) for c in crops]


def mean_softmax_log(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str,
                     size: int | None = None) -> torch.Tensor:
    """``log(mean_v softmax(forward(v)))`` over the views of ``x``; ``forward(x)`` for ``none``."""
    vs = views(x, mode, size)
    if len(vs) == 1:
        return forward(x)
    probs = sum(torch.softmax(forward(v.contiguous()).float(), dim=1) for v in vs) / len(vs)
    return probs.log()
