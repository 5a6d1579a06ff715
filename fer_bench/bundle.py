"""A trained model that says how to feed it: one file per trained job, ``checkpoints/bundle.pt``.

A checkpoint alone does not say how to feed its network: input size, channels, normalisation,
face crop, class order, frames per clip and their placement live in the recipe and the dataset.
A bundle holds the weights and all of that, so that ``fer-bench predict`` (and anyone with
``torch``) can use the model on their own faces:

- ``format``: :data:`FORMAT`;
- ``meta``: a JSON text (so that it reads without fer_bench) holding the method and its
  constructor arguments, the class names in output order, the test-time preprocessing
  (``input_size``, ``in_chans``, ``normalization`` with its mean and std, ``resize`` and
  ``crop``, ``tta``; for a dynamic method ``frames``, ``test_frames`` and ``short_clips``), the face
  crop a photograph needs to look like the training faces (``face_crop``: a 5-point template of
  :mod:`fer_bench.data.align` and a margin), the training dataset and protocol, the run's test
  scores, the fer_bench version and git commit, and the SHA-256 of the weights
  (:func:`weights_sha256`);
- ``state_dict``: the weights of the selected checkpoint (tensors only).

It is read with ``torch.load(..., weights_only=True)``: no arbitrary pickle, so a bundle from
anyone is safe to open; the weights' SHA-256 is checked on every read.  Written at the end of
every ``fer-bench train`` / ``bench`` job beside its selected checkpoint (the leaderboard row's
``bundle`` column points to it), and by ``fer-bench export`` from any run folder or checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_bench.errors import DataFormatError, UserError
from fer_bench.provenance import git_state

FORMAT = "fer_bench.bundle/1"
BUNDLE_FILE = "bundle.pt"
WHAT = "a fer_bench bundle (a torch file with format, meta and state_dict, written by fer-bench train or export)"
# the face a photograph is cropped to before preprocessing, per training dataset: a template of
# fer_bench.data.align and a margin.  RAF-DB's aligned images are similarity-aligned on 5 points; the
# other datasets crop a box around the face with forehead and chin, closest to the loose template.
DEFAULT_FACE_CROP = {"template": "arcface-loose", "margin": 0.0}
#: what predict and export read of a bundle's meta
META_KEYS = ("method", "hparams", "modality", "classes", "preprocessing", "weights_sha256")


def weights_sha256(state_dict: dict[str, Any]) -> str:
    """SHA-256 over the weights in key order: each key, dtype, shape and the tensor's bytes (C order)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A read bundle: its metadata and weights; :meth:`model` and :meth:`transform` use them."""

    path: Path
    meta: dict[str, Any]
    state_dict: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def modality(self) -> str:
        return self.meta["modality"]

    def model(self, device: str = "cpu"):
        """The network with the bundle's weights, in eval mode, its test-time augmentation set."""
        from fer_bench.methods import METHODS

        try:
            method_cls = METHODS.get(self.meta["method"])
        except KeyError as e:
            raise UserError(f"{self.path}: {e} (a plugin's bundle needs its --import)") from None
        try:
            model = method_cls(**self.meta["hparams"])
        except (TypeError, ValueError) as e:  # arguments its method does not take: an edited or foreign meta
            raise DataFormatError(self.path, f"constructor arguments of method {self.meta['method']} in its meta",
                                  found=" ".join(str(e).split())[:160]) from None
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if missing or unexpected:
            raise DataFormatError(self.path, f"the weights of method {self.meta['method']}",
                                  found=f"missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}")
        model.test_tta = self.meta["preprocessing"]["tta"]
        return model.to(device).eval()

    def transform(self):
        """The test-time transform of the training dataset for uint8 ``[C,H,W]`` images or ``[T,C,H,W]`` clips."""
        from fer_bench.data.transforms import build_transform

        p = self.meta["preprocessing"]
        return build_transform(train=False, input_size=p["input_size"], in_chans=p["in_chans"],
                               normalization=p["normalization"], resize=p["resize"], crop=p["crop"])


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def build_meta(run_dir: str | os.PathLike, checkpoint: str | os.PathLike, state_dict: dict[str, Any],
               method: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a run folder's bundle: from its ``config.yaml`` and ``metrics.json`` (train.run's outputs)."""
    import yaml

    import fer_bench
    from fer_bench.data import DATASETS
    from fer_bench.data.base import MODEL_CROPPED_TTA
    from fer_bench.data.transforms import NORMALIZATIONS

    run_dir = Path(run_dir)
    expected = "a run folder of fer-bench train (config.yaml and metrics.json)"
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as e:
        raise DataFormatError(run_dir, expected,
                              found=f"{type(e).__name__}: {str(e).splitlines()[0][:120]}") from None
    if not (isinstance(config, dict) and isinstance(config.get("run"), dict) and isinstance(config.get("protocol"), dict)
            and isinstance(metrics, dict) and "classes" in metrics):
        raise DataFormatError(run_dir, expected, found="a config.yaml without run: and protocol:, or a metrics.json "
                              "without classes")
    run, proto = config["run"], config["protocol"]
    data_cls = DATASETS.get(run["dataset"])
    tta = metrics.get("tta") or proto.get("tta") or "none"
    normalization = proto.get("normalization") or "none"
    preprocessing = {
        "input_size": proto["input_size"], "in_chans": proto["in_chans"], "normalization": normalization,
        "mean_std": NORMALIZATIONS.get(normalization), "resize": proto.get("resize"),
        "crop": tta not in MODEL_CROPPED_TTA, "tta": tta, "value_range": "uint8 RGB -> float [0, 1] before normalising",
    }
    if data_cls.info.modality == "dynamic":
        preprocessing.update(frames=proto.get("frames"), test_frames=proto.get("test_frames"),
                             short_clips=proto.get("short_clips"))
    commit = git_state()[0]
    return _jsonable({
        "method": method, "hparams": hparams, "modality": data_cls.info.modality,
        "classes": metrics["classes"], "preprocessing": preprocessing,
        "face_crop": getattr(data_cls, "face_crop", DEFAULT_FACE_CROP),
        "dataset": run["dataset"], "fold": run.get("fold"), "seed": run.get("seed"), "protocol": proto,
        "scores": {k: metrics.get(k) for k in ("war", "uar", "n_test", "per_class_recall", "best_epoch",
                                               "selection")},
        "checkpoint": str(Path(checkpoint).name), "fer_bench_version": fer_bench.__version__, "git_commit": commit,
        "weights_sha256": weights_sha256(state_dict),
    })


def write_bundle(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 out: str | os.PathLike | None = None) -> Path:
    """Write the bundle of a run folder (its selected checkpoint, or ``checkpoint``) to ``out``
    (default ``RUN/checkpoints/bundle.pt``), atomically; returns its path."""
    import torch

    from fer_bench.transfer import method_of_checkpoint, read_checkpoint

    run_dir = Path(run_dir)
    if checkpoint is None:
        found = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
        if not found:
            raise DataFormatError(run_dir, "a run folder with its selected checkpoint (checkpoints/best-*.ckpt)",
                                  found="none")
        checkpoint = found[-1]
    ckpt = read_checkpoint(checkpoint)
    method = method_of_checkpoint(checkpoint)
    state = {k: v for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}
    meta = build_meta(run_dir, checkpoint, state, method, dict(ckpt.get("hyper_parameters") or {}))
    out = Path(out) if out else Path(checkpoint).parent / BUNDLE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, "meta": json.dumps(meta, indent=1), "state_dict": state}, tmp)
    os.replace(tmp, out)
    return out


def read_bundle(path: str | os.PathLike) -> Bundle:
    """A bundle read with ``weights_only=True`` and its weights' SHA-256 checked; else a one-line error
    naming the file and what it is instead."""
    from fer_bench.weights import read_torch_file

    doc = read_torch_file(path, WHAT, weights_only=True)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not {"meta", "state_dict"} <= set(doc):
        found = f"format {doc.get('format')!r}" if isinstance(doc, dict) else f"a {type(doc).__name__}"
        raise DataFormatError(path, WHAT + f" of format {FORMAT}", found=found)
    try:
        meta = json.loads(doc["meta"])
    except (TypeError, json.JSONDecodeError) as e:
        raise DataFormatError(path, "meta as JSON text", found=str(e)[:120]) from None
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing or not isinstance(doc["state_dict"], dict):
        raise DataFormatError(path, f"a meta with {', '.join(META_KEYS)} and a state_dict of tensors",
                              found=f"no {', '.join(missing)} in its meta" if missing else "a state_dict that is no dict")
    digest = weights_sha256(doc["state_dict"])
    if digest != meta.get("weights_sha256"):
        raise DataFormatError(path, f"weights with SHA-256 {meta.get('weights_sha256')} (its meta)",
                              found=f"{digest}: the weights were changed after the bundle was written")
    return Bundle(path=Path(path), meta=meta, state_dict=doc["state_dict"])
