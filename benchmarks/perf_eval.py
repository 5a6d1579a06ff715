"""Evaluation figure of ``benchmarks/perf.py``.

evaluation
    test-set samples/s of the ``trainer.test`` of a pipeline case's run (``perf_pipeline``)
    divided by model-only forward samples/s (``inference_mode``) on the same test batches in
    memory.  The first test batch is skipped on both sides when there are more than two.
"""
from __future__ import annotations

import time

import torch
from perf_common import bare_context, steady_rate, sync, to_device


def test_rate(marks: list[tuple[float, int]]) -> float:
    """samples/s of the run's ``trainer.test`` from its batch timestamps (NaN with too few batches)."""
    tw = 1 if len(marks) > 2 else 0
    return steady_rate(marks, tw, len(marks) - tw) if len(marks) > tw else float("nan")


def bare_forward_rate(model, xs: list[torch.Tensor], cfg) -> float:
    """samples/s of the model's forward alone over the test batches ``xs``, on the run's device and precision."""
    device, autocast = bare_context(cfg)
    model.to(device).eval()
    xs = [to_device(x, device, cfg.channels_last) for x in xs]
    marks = []
    with torch.inference_mode(), autocast():
        for x in xs:
            model(x)
            sync()
            marks.append((time.perf_counter(), len(x)))
    w = 1 if len(marks) > 2 else 0
    return steady_rate(marks, w, len(marks) - w)
