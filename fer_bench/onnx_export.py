"""A bundle's network as ONNX (``fer-bench export --onnx``), with the bundle's metadata inside.

The graph is the network alone (:meth:`FERMethod.forward`: logits in the bundle's class order), for
a batch of any size: ``[B, C, H, W]`` for a static method, ``[B, T, C, H, W]`` for a dynamic one.
Preprocessing and test-time augmentation are described, not built in: the model's
``metadata_props`` hold the bundle's meta as JSON under ``fer_bench_bundle`` (input size,
channels, normalisation, face crop, class order, frames).  Exported with torch's TorchScript-based
exporter (``dynamo=False``: no onnxscript dependency), opset :data:`OPSET`; checked against
PyTorch with onnxruntime (:func:`onnx_logits`; ``tests/test_onnx.py``).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from fer_bench.bundle import Bundle
from fer_bench.errors import UserError

OPSET = 20
META_KEY = "fer_bench_bundle"


class NotExportable(UserError):
    """A method whose network the ONNX exporter cannot trace (one line: which and why)."""


def example_input(bundle: Bundle, batch: int = 2, seed: int = 0):
    """A random input of the bundle's shape (what the exporter traces and the parity test feeds)."""
    import torch

    p = bundle.meta["preprocessing"]
    side, chans = int(p["input_size"]), int(p["in_chans"])
    shape = (batch, int(p["frames"]), chans, side, side) if bundle.modality == "dynamic" else (batch, chans, side, side)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def export_onnx(bundle: Bundle, out: str | os.PathLike) -> Path:
    """Write ``out`` (atomically); :class:`NotExportable` when the exporter fails on this method."""
    import onnx
    import torch

    model = bundle.model("cpu")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes it treats as constants
            torch.onnx.export(model, (example_input(bundle, 1),), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as e:  # noqa: BLE001  (whatever the exporter raises: one line naming the method)
        tmp.unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NotExportable(f"method {bundle.meta['method']} cannot be exported to ONNX: {first}") from None
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(bundle.meta)
    onnx.save(graph, str(tmp))
    os.replace(tmp, out)
    return out


def onnx_logits(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """The exported model's logits for ``x`` under onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


def read_onnx_meta(path: str | os.PathLike) -> dict:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props[META_KEY])
