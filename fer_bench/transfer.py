"""Cross-dataset evaluation: a trained checkpoint on another dataset's test split.

The model and the dataset meet through the canonical class names (:mod:`fer_bench.classes`):
the classes both sides have are kept, in the dataset's order; a class only the dataset has
(its test samples cannot be predicted right) is excluded together with its samples, and a
class only the model has is excluded from the model's scores (the prediction is the argmax
over the shared classes).  The record says which classes were excluded and how many samples,
so a transfer number never hides a changed label set (the CD-FER-Benchmark view of Chen et
al., TPAMI 2021, a train × test matrix).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench import evaluation
from fer_bench.errors import DataFormatError, UserError

CHECKPOINT = "a checkpoint written by fer-bench train or bench (a Lightning .ckpt file)"


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The Lightning checkpoint in ``path``, or a :class:`DataFormatError` naming the file and what it is
    instead (missing, empty, damaged, no torch file, or a torch file that is no Lightning checkpoint)."""
    from fer_bench.weights import read_torch_file

    ckpt = read_torch_file(path, CHECKPOINT, weights_only=False)  # our own checkpoints hold more than tensors
    if not isinstance(ckpt, dict) or not {"state_dict", "pytorch-lightning_version"} <= set(ckpt):
        raise DataFormatError(path, CHECKPOINT, found="a dict without Lightning's state_dict and "
                              "pytorch-lightning_version (a plain state dict?)" if isinstance(ckpt, dict)
                              else f"a {type(ckpt).__name__}")
    return ckpt


def method_of_checkpoint(path: str | os.PathLike) -> str:
    """The registered method a fer_bench checkpoint belongs to (stored in the checkpoint; for an
    older one, read from its run folder's ``config.yaml``)."""
    name = read_checkpoint(path).get("fer_bench_method")
    if name:
        return str(name)
    for parent in Path(path).resolve().parents[:3]:
        cfg = parent / "config.yaml"
        if cfg.exists():
            import yaml

            return str(yaml.safe_load(cfg.read_text())["run"]["method"])
    raise DataFormatError(path, "a fer_bench checkpoint, which records its method",
                          found="a Lightning checkpoint without one (give --method)")


def class_mapping(model_classes: list[str], data_classes: list[str]) -> dict[str, Any]:
    """Shared classes (dataset order), the model's logit column of each, the dataset label ->
    shared index map (-1: excluded), and the classes each side lacks."""
    shared = [c for c in data_classes if c in model_classes]
    if not shared:
        raise UserError(f"the model's classes ({', '.join(model_classes)}) and the dataset's "
                        f"({', '.join(data_classes)}) share none")
    return {
        "shared": shared,
        "columns": [model_classes.index(c) for c in shared],
        "label_map": np.array([shared.index(c) if c in shared else -1 for c in data_classes], dtype=np.int64),
        "excluded_dataset_classes": [c for c in data_classes if c not in shared],
        "excluded_model_classes": [c for c in model_classes if c not in shared],
    }


def evaluate(checkpoint: str | os.PathLike, dataset: str, root: str | None, *, method: str | None = None,
             out: str | os.PathLike | None = None, batch_size: int = 64, fold: int | None = None,
             data_args: dict[str, Any] | None = None, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Scores of ``checkpoint`` on the test split of ``dataset`` through the shared classes.

    Writes ``metrics.json``, ``predictions.npz`` (labels and probabilities over the shared
    classes) and ``confusion.png`` under ``out`` when given."""
    import torch

    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS
    from fer_bench.metrics import scores_from_confusion
    from fer_bench.nn.functional import hard_labels

    if method is None:
        method = method_of_checkpoint(checkpoint)  # reads and checks the file
    else:
        read_checkpoint(checkpoint)
    method_cls = METHODS.get(method)
    try:
        model = method_cls.load_from_checkpoint(str(checkpoint), map_location=device).eval()
    except (KeyError, TypeError, RuntimeError) as e:  # another method's checkpoint: its keys or arguments differ
        if isinstance(e, RuntimeError) and "state_dict" not in str(e):
            raise
        raise DataFormatError(checkpoint, f"a checkpoint of method {method}",
                              found=" ".join(str(e).split())[:160]) from None
    data_cls = DATASETS.get(dataset)
    if data_cls.info.modality != model.modality:
        raise UserError(f"{method} is {model.modality} but {dataset} is {data_cls.info.modality}")
    from fer_bench.resolve import resolve
    from fer_bench.settings import TrainConfig

    # the test-time side of the method's recipe there (resize, normalisation, test frames), unless data_args say
    # otherwise; the checkpoint's own input size and channels; one view per test sample
    # (resolved with the checkpoint's own hyper-parameters: one may name the network whose preprocessing the
    # recipe takes, as backbone's does)
    recipe_args = resolve(TrainConfig(method=method, dataset=dataset, input_size=model.input_size,
                                      method_args=dict(model.hparams))).data_args
    test_side = ("resize", "normalization", "test_frames", "short_clips")
    args = {**{k: v for k, v in recipe_args.items() if k in test_side}, **(data_args or {})}
    dm = data_cls(root, batch_size=batch_size, seed=seed, fold=fold, input_size=model.input_size,
                  in_chans=model.in_chans, **args)
    dm.setup("test")
    mapping = class_mapping(list(model.classes), list(dm.classes))
    cols = torch.as_tensor(mapping["columns"])
    label_map = torch.as_tensor(mapping["label_map"])
    index, labels, probs = [], [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            x, y, idx = batch[0], batch[1], batch[2]
            if x is None:
                continue
            y = label_map[hard_labels(y).cpu()]
            keep = y >= 0
            if not bool(keep.any()):
                continue
            scores = model.test_forward(x[keep].to(device))[:, cols].float().cpu()
            index.append(idx[keep].cpu())
            labels.append(y[keep])
            probs.append(torch.softmax(scores, dim=1))
    if not index:
        raise UserError(f"{dataset}: no test sample of a shared class ({', '.join(mapping['shared'])})")
    index_t, label_t, prob_t = torch.cat(index), torch.cat(labels), torch.cat(probs)
    pred_t = prob_t.argmax(dim=1)
    k = len(mapping["shared"])
    confusion = torch.zeros(k, k, dtype=torch.int64)
    confusion.index_put_((label_t, pred_t), torch.ones_like(label_t), accumulate=True)
    scores = scores_from_confusion(confusion, mapping["shared"])
    n_total = len(dm.splits["test"])
    preds = {"index": index_t, "label": label_t, "pred": pred_t, "probs": prob_t}
    result = {
        **scores.as_dict(), "method": method, "checkpoint": str(checkpoint), "eval_dataset": dataset,
        "excluded_dataset_classes": mapping["excluded_dataset_classes"],
        "excluded_model_classes": mapping["excluded_model_classes"],
        "n_test": int(len(index_t)), "n_excluded": int(n_total - len(index_t)),
        **evaluation.summary(preds, k, seed=seed),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = evaluation.save_predictions(out / evaluation.PREDICTIONS_FILE, preds,
                                           evaluation.sample_ids(dm, "test", index_t.numpy()), mapping["shared"])
        result["predictions"] = str(path)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        evaluation.plot_confusion(result["confusion"], mapping["shared"], out / "confusion.png",
                                  title=f"{method} on {dataset} (cross): WAR {result['war']:.3f}")
    return result
