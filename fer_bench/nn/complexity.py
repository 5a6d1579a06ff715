"""Model complexity: parameter count and multiply-accumulates (MACs) of one forward pass.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode``, which counts the FLOPs of
matrix multiplications and convolutions (``mm``, ``addmm``, ``bmm``, ``convolution``, ...) as
**2 per multiply-accumulate** (one multiply, one add); :func:`count_macs` therefore returns
``FLOPs // 2``.  Element-wise work (BN, activations, pooling, softmax, bias adds) is not
counted, the usual convention of MAC figures in papers (e.g. ResNet-18's "1.8 GFLOPs" at
224x224 are 1.8 G MACs).  The pass runs in ``eval()`` mode under ``torch.no_grad()`` (the
model's training mode is restored afterwards).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_FRAMES = 16  # frames per clip of the dynamic methods (IAL+GCA's 16-segment sampling)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_input: torch.Tensor | tuple[Any, ...]) -> int:
    """MACs of ``model(example_input)``: ``FlopCounterMode`` FLOPs / 2 (2 FLOPs per MAC).

    A tuple ``example_input`` is unpacked into positional arguments.
    """
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def example_input(method: Any) -> torch.Tensor:
    """A batch of one sample as the method takes it: static ``[1, C, H, W]``; dynamic
    ``[1, T, C, H, W]`` (clips as ``ial_gca`` and ``resnet18_lstm`` read them) with
    ``T`` the clip length the method is built for (``method.frames``, as ``resnet18_lstm``'s classifier
    over all steps), else ``method.default_frames``, else 16."""
    c, s = int(method.in_chans), int(method.input_size)
    modality = getattr(method, "modality", "static")
    if modality == "static":
        return torch.zeros(1, c, s, s)
    if modality == "dynamic":
        t = int(getattr(method, "frames", None) or getattr(method, "default_frames", DEFAULT_FRAMES))
        return torch.zeros(1, t, c, s, s)
    raise ValueError(f"modality must be 'static' or 'dynamic', got {modality!r}")


def complexity(method: Any) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of a built method at its own ``in_chans``/``input_size``."""
    x = example_input(method)
    param = next(method.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    return {"params": count_params(method), "macs": count_macs(method, x)}
