"""ONNX export: every method that exports gives onnxruntime logits equal to PyTorch's; the ones
that cannot are listed in README (and say so in one line)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fer_bench.bundle import Bundle
from fer_bench.methods import METHODS
from fer_bench.onnx_export import NotExportable, example_input, export_onnx, onnx_logits, read_onnx_meta

from conftest import REPO

# |onnx - torch| <= ATOL + RTOL * |torch| for every logit (float32 kernels differ in summation order)
ATOL, RTOL = 1e-4, 1e-4


def _not_exportable_in_readme() -> set[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("Methods that cannot be exported to ONNX"):]
    return set(re.findall(r"`(\w+)`", section.split("\n\n")[0]))


def _bundle(name: str) -> Bundle:
    model = METHODS.get(name).from_defaults()
    frames = int(model.hparams.get("frames") or 16)
    meta = {"method": name, "hparams": dict(model.hparams), "modality": model.modality,
            "classes": [f"c{i}" for i in range(model.hparams["num_classes"])],
            "preprocessing": {"input_size": model.input_size, "in_chans": model.in_chans, "normalization": "none",
                              "resize": None, "crop": True, "tta": "none", "frames": frames}}
    return Bundle(path="(memory)", meta=meta, state_dict=model.state_dict())


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_onnx_logits_match_pytorch_or_the_method_is_listed_as_not_exportable(name, tmp_path):
    bundle = _bundle(name)
    try:
        path = export_onnx(bundle, tmp_path / f"{name}.onnx")
    except NotExportable as e:
        assert str(e).startswith(f"method {name} cannot be exported to ONNX: ") and "\n" not in str(e)
        assert name in _not_exportable_in_readme(), f"{name} does not export ({e}); list it in README"
        return
    assert name not in _not_exportable_in_readme(), f"{name} exports: take it off README's list"
    x = example_input(bundle, batch=3, seed=1)  # another batch size than the traced one
    with torch.no_grad():
        ref = bundle.model().forward(x).numpy()
    got = onnx_logits(path, x.numpy())
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=ATOL, rtol=RTOL)
    assert read_onnx_meta(path)["method"] == name
