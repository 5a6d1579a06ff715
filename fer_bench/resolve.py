"""A run's settings resolved against its method's metafile, once: what the run actually does.

A :class:`~fer_bench.settings.TrainConfig` says only what the user (or a suite cell) gave; the
rest comes from the method's recipe *for that dataset* (:meth:`Recipe.for_dataset
<fer_bench.methods.metafile.Recipe.for_dataset>`): input size, channels, batch, test-time
augmentation, the method's hyper-parameters (optimiser, schedule, epochs, loss weights) and
the DataModule's recipe arguments (resize, augmentation, normalisation, sampler, train and test
frames, short clips).  A config that sets its own input size keeps the recipe's ratio of resize
to crop.  :func:`resolve` computes all of it from the config alone (no data is read), and both
the training run (:func:`fer_bench.train.build`) and the leaderboard row planned for it use the
result, so that what a row claims is what ran.

The comparison with the recipe is part of the result: ``deviations`` (every relevant field
whose value differs: ``epochs 1≠100``) and ``reconstructed`` (the relevant fields that are
fer_bench's reading rather than the paper's statement).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_bench.settings import TrainConfig
from fer_bench.validation import constructor_defaults, constructor_params

__all__ = ["ResolvedRun", "resolve"]

#: what a dataset without the DataModule argument does instead (no sampler argument: shuffled batches)
NOT_APPLICABLE = {"sampler": "uniform"}


@dataclass(frozen=True)
class ResolvedRun:
    """Everything a run takes from its config and its method's recipe for its dataset."""

    method: str
    dataset: str
    input_size: int
    in_chans: int
    batch_size: int
    tta: str
    hparams: dict[str, Any]  # the method's constructor keywords (besides classes, sizes)
    data_args: dict[str, Any]  # the DataModule's recipe and protocol keywords (besides root, batch, seed, ...)
    actual: dict[str, Any]  # what the run does, in the recipe's terms
    deviations: tuple[str, ...] = ()
    reconstructed: tuple[str, ...] = ()
    weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_epochs(self) -> int:
        return int(self.hparams["max_epochs"])


def _weights_name(weights: str) -> str:
    from fer_bench.weights import WEIGHTS

    return weights if weights in WEIGHTS else Path(weights).name


def resolve(cfg: TrainConfig) -> ResolvedRun:
    """The run of ``cfg`` as it will happen: config first, then the recipe for the dataset, then
    the method's and the dataset's code defaults."""
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS
    from fer_bench.methods.metafile import DATA_FIELDS, deviations

    method_cls, data_cls = METHODS.get(cfg.method), DATASETS.get(cfg.dataset)
    recipe = method_cls.recipe()
    recipe = recipe.for_dataset(cfg.dataset) if recipe is not None else None
    if recipe is not None and hasattr(method_cls, "adapt_recipe"):
        # a method whose network a hyper-parameter names (the `backbone` baseline) puts that network's own
        # input size and normalisation into the recipe the run follows and is compared with
        from fer_bench.data.transforms import NORMALIZATIONS

        recipe = method_cls.adapt_recipe(recipe, cfg.method_args, cfg.data_args, NORMALIZATIONS)

    def from_recipe(name: str, default: Any) -> Any:
        v = recipe.value(name) if recipe is not None else None
        return default if v is None else v

    input_size = int(cfg.input_size or from_recipe("input_size", method_cls.default_input_size))
    in_chans = int(cfg.in_chans or from_recipe("in_chans", method_cls.default_in_chans))
    batch_size = int(cfg.batch_size or from_recipe("batch_size", 32))
    tta = cfg.tta or from_recipe("tta", "none")
    hparams = {**(recipe.hparams() if recipe is not None else {}), **method_cls.default_hparams, **cfg.method_args}
    if cfg.max_epochs is not None:
        hparams["max_epochs"] = cfg.max_epochs
    hparams.setdefault("max_epochs", constructor_defaults(method_cls).get("max_epochs", 10))

    accepted = constructor_params(data_cls)
    data_args: dict[str, Any] = {}
    if recipe is not None:
        data_args.update({k: recipe.value(k) for k in DATA_FIELDS if k in recipe.fields and k in accepted})
    if cfg.input_size and data_args.get("resize") and recipe.value("input_size"):
        # an input size of one's own keeps the recipe's resize-to-crop ratio (256 -> 224 becomes 55 -> 48)
        data_args["resize"] = max(input_size, round(int(data_args["resize"]) * input_size / int(recipe.value("input_size"))))
    if "tta" in accepted:
        data_args["tta"] = tta  # the test images keep the recipe's resize when the model crops them itself
    data_args.update(cfg.data_args)  # -d / suite data_args win

    applied = {**constructor_defaults(data_cls), **data_args}
    actual: dict[str, Any] = {
        "init": _weights_name(cfg.weights) if cfg.weights else "scratch",
        "input_size": input_size, "in_chans": in_chans,
        **{k: hparams.get(v) for k, v in (("optimizer", "optimizer"), ("lr", "lr"), ("momentum", "momentum"),
                                          ("weight_decay", "weight_decay"), ("scheduler", "scheduler"),
                                          ("step_size", "step_size"), ("gamma", "gamma"), ("step_start", "step_start"),
                                          ("epochs", "max_epochs"))},
        "batch_size": batch_size, "loss_weights": hparams, "tta": tta,
    }
    for name in DATA_FIELDS:  # what the DataModule applies; "n/a" where the dataset has no such argument
        if recipe is not None and name in recipe.fields:
            actual[name] = applied.get(name) if name in accepted else NOT_APPLICABLE.get(name, "n/a")
    if data_cls.info.modality == "dynamic":
        actual["frames"] = applied.get("frames", 16)
        if "frames" in constructor_params(method_cls) and "frames" not in cfg.method_args:
            hparams["frames"] = actual["frames"]  # a network built for its clip length (resnet18_lstm's classifier)
    actual = {k: v for k, v in actual.items() if v is not None or k in ("loss_weights", "resize")}
    return ResolvedRun(
        method=cfg.method, dataset=cfg.dataset, input_size=input_size, in_chans=in_chans, batch_size=batch_size,
        tta=tta, hparams=hparams, data_args=data_args, actual=actual,
        deviations=tuple(deviations(recipe, actual)) if recipe is not None else (),
        reconstructed=tuple(recipe.reconstructed()) if recipe is not None else (),
        weights=cfg.weights,
    )
