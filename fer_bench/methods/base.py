"""Base LightningModule of every method; what its paper says lives in its metafile.

A method subclass reads like its paper: it builds its network in ``__init__``, returns class
logits from ``forward`` and, when the paper's loss needs more than logits (embeddings,
auxiliary heads), returns them from :meth:`FERMethod.training_outputs` and combines them in
:meth:`FERMethod.compute_loss`.  Everything else — metrics, the train/val/test steps,
optimiser and scheduler from hyper-parameters, ``predict_step`` — is shared here once.

The paper's citation, its reported numbers with their protocols, the training recipe and the
fidelity notes are data: ``metafiles/<method>.yaml`` beside the method's module
(:mod:`fer_bench.methods.metafile`), read by :meth:`FERMethod.metafile`.

Selection honesty: validation metrics are logged as ``val/war`` and ``val/uar`` and are the
only ones a checkpoint callback may monitor; the test split is evaluated once, at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from fer_bench.classes import default_class_names
from fer_bench.errors import verify_choice
from fer_bench.metrics import FERMetrics, FERScores
from fer_bench.nn.complexity import count_params  # noqa: F401  (re-exported by fer_bench.methods)
from fer_bench.nn.functional import soft_cross_entropy
from fer_bench.nn.tta import mean_softmax_log
from fer_bench.weights import load_into

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
SCHEDULERS: tuple[str, ...] = ("cosine", "step", "exponential", "none")


class FERMethod(L.LightningModule):
    """Base of every method: owns its metrics, steps and optimiser; its metafile holds the paper's side.

    Hyper-parameters (all saved in the checkpoint): ``num_classes``, ``in_chans``,
    ``input_size``, ``classes``, ``optimizer`` (``sgd``/``adam``/``adamw``), ``lr``,
    ``weight_decay``, ``momentum``, ``scheduler`` (``cosine``; ``step``: the lr times ``gamma``
    every ``step_size`` epochs, counted from ``step_start``; ``exponential``: times ``gamma``
    every epoch; ``none``), ``grad_clip`` (each gradient element clamped to ±value; 0: off),
    ``max_epochs``, ``label_smoothing``, plus the subclass's own.
    """

    modality: ClassVar[str] = "static"
    #: the metafile (:mod:`fer_bench.methods.metafile`); default ``metafiles/<name>.yaml`` beside the module
    metafile_path: ClassVar[str | None] = None
    default_input_size: ClassVar[int] = 48
    default_in_chans: ClassVar[int] = 1
    default_hparams: ClassVar[dict[str, Any]] = {}  # registered methods take theirs from their recipe
    # allowed values of string hyper-parameters, checked before a run (fer_bench.validation.validate)
    hparam_choices: ClassVar[dict[str, tuple[str, ...]]] = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS}
    # bounds of numeric hyper-parameters, checked before a run like the choices: name -> ((op, bound), ...),
    # op ">" / "<" exclusive, ">=" / "<=" inclusive ("-m lr: expected a number > 0, got -1")
    hparam_ranges: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "lr": ((">", 0),), "weight_decay": ((">=", 0),), "momentum": ((">=", 0), ("<=", 1)),
        "gamma": ((">", 0),), "step_size": ((">=", 1),), "step_start": ((">=", 0),), "grad_clip": ((">=", 0),),
        "label_smoothing": ((">=", 0), ("<=", 1))}

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int | None = None,
        input_size: int | None = None,
        classes: list[str] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: str = "cosine",
        step_size: int = 10,
        gamma: float = 0.1,
        step_start: int = 0,
        grad_clip: float = 0.0,
        max_epochs: int = 10,
        label_smoothing: float = 0.0,
        **method_kwargs: Any,
    ) -> None:
        super().__init__()
        in_chans = in_chans or self.default_in_chans
        input_size = input_size or self.default_input_size
        classes = default_class_names(num_classes) if classes is None else list(classes)
        if len(classes) != num_classes:
            raise ValueError(f"{len(classes)} class names for num_classes={num_classes}")
        self.save_hyperparameters(
            dict(num_classes=num_classes, in_chans=in_chans, input_size=input_size, classes=classes,
                 optimizer=optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum,
                 scheduler=scheduler, step_size=step_size, gamma=gamma, step_start=step_start,
                 grad_clip=grad_clip, max_epochs=max_epochs,
                 label_smoothing=label_smoothing, **method_kwargs)
        )
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.classes = classes
        self.val_metrics = FERMetrics(classes)
        self.test_metrics = FERMetrics(classes, keep_probs=True)
        self.test_scores: FERScores | None = None
        self.test_predictions: dict[str, torch.Tensor] | None = None
        self.test_tta = "none"  # test-time augmentation, set by the run (fer_bench.settings.TTA_MODES)

    @classmethod
    def metafile(cls):
        """The method's :class:`~fer_bench.methods.metafile.Metafile` (paper, reported numbers with
        their protocols, recipe, fidelity); ``None`` for an unregistered subclass."""
        from fer_bench.methods.metafile import load_metafile

        name = cls.__dict__.get("registry_name")
        if not name:
            return None
        if cls.metafile_path:  # a path the class names (relative to its module's folder)
            path = Path(sys.modules[cls.__module__].__file__).parent / cls.metafile_path
        else:  # beside the module: metafiles/<name>.yaml (the built-in layout) or <name>.yaml
            here = Path(sys.modules[cls.__module__].__file__).parent
            path = next((p for p in (here / "metafiles" / f"{name}.yaml", here / f"{name}.yaml") if p.is_file()),
                        here / "metafiles" / f"{name}.yaml")
        return load_metafile(name, path)

    @classmethod
    def recipe(cls):
        """The method's training recipe (:class:`~fer_bench.methods.metafile.Recipe`), ``None``
        for an unregistered subclass."""
        meta = cls.metafile()
        return meta.recipe if meta is not None else None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The method's default hyper-parameters: its recipe's optimiser, schedule, epochs and
        loss weights (the single source), then ``default_hparams`` of an unregistered subclass."""
        recipe = cls.recipe()
        return {**(recipe.hparams() if recipe else {}), **cls.default_hparams}

    @classmethod
    def from_defaults(cls, **overrides: Any) -> FERMethod:
        """Build with the recipe's defaults, then the caller's overrides."""
        return cls(**{**cls.defaults(), **overrides})

    # -- what a method defines ----------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_outputs(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the loss needs; by default the logits alone."""
        return {"logits": self(x)}

    def compute_loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, named parts to log).  Default: cross entropy (soft targets allowed)."""
        loss = soft_cross_entropy(out["logits"], y, self.hparams.label_smoothing)
        return loss, {"ce": loss.detach()}

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups; override to give e.g. class centres their own lr."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    # -- shared steps --------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        x, y = batch[0], batch[1]
        if x is None:  # every sample of the batch was unreadable (counted by SkippedFiles)
            return None
        out = self.training_outputs(x, y)
        loss, parts = self.compute_loss(out, y)
        bs = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs, on_step=True, on_epoch=True)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, idx = batch[0], batch[1], batch[2]
        if x is None:
            return
        logits = self(x)
        self.val_metrics.update(logits, y, idx)

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.val_metrics.reset()
        # already identical on every rank (FERMetrics gathers): no further reduction
        self.log("val/war", scores.war, prog_bar=True, sync_dist=False)
        self.log("val/uar", scores.uar, prog_bar=True, sync_dist=False)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y, idx = batch[0], batch[1], batch[2]
        if x is None:
            return
        self.test_metrics.update(self.test_forward(x), y, idx)

    def test_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Test-split scores under :attr:`test_tta` (:mod:`fer_bench.nn.tta`): ``none`` the logits;
        ``hflip`` / ``tencrop`` the log of the mean softmax over the views (the ten crops are of
        the model's input size, from the larger test image the DataModule then gives)."""
        return mean_softmax_log(self, x, self.test_tta, self.input_size)

    def on_test_epoch_end(self) -> None:
        self.test_scores = self.test_metrics.compute()
        self.test_predictions = self.test_metrics.predictions()  # per sample, each once (also under DDP)
        self.test_metrics.reset()
        self.log("test/war", self.test_scores.war, sync_dist=False)
        self.log("test/uar", self.test_scores.uar, sync_dist=False)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, idx = batch[0], batch[2]
        if x is None:
            return None
        return {"index": idx, "probs": torch.softmax(self(x).float(), dim=1)}

    def configure_optimizers(self):
        hp = self.hparams
        groups = self.param_groups()
        name = verify_choice(hp.optimizer.lower(), "optimizer", OPTIMIZERS)
        if name == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        elif name == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = verify_choice(hp.scheduler.lower(), "scheduler", SCHEDULERS)
        if sched == "none":
            return opt
        if sched == "cosine":
            s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, hp.max_epochs))
        elif sched == "exponential":
            s = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=hp.gamma)
        elif int(hp.get("step_start", 0)) > 0:
            s = torch.optim.lr_scheduler.LambdaLR(opt, delayed_step(int(hp.step_start), int(hp.step_size), hp.gamma))
        else:
            s = torch.optim.lr_scheduler.StepLR(opt, step_size=hp.step_size, gamma=hp.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": s, "interval": "epoch"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """``grad_clip`` > 0: every gradient element clamped to ±grad_clip (value clipping, as
        WuJie1010's ``utils.clip_gradient``); otherwise the Trainer's own setting (none)."""
        clip = float(self.hparams.get("grad_clip", 0.0) or 0.0)
        if clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="value")
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record which registered method this is, so ``fer-bench eval`` can rebuild it."""
        checkpoint["fer_bench_method"] = getattr(type(self), "registry_name", type(self).__name__)

    # -- weights ---------------------------------------------------------------------------
    def load_weights(self, path: str) -> dict[str, list[str]]:
        """Load a local state dict, Lightning checkpoint or backbone state dict into this method
        (:func:`fer_bench.weights.load_into`: keys matched, an RGB stem summed into a grey one,
        nothing downloaded) and return its report of loaded, adapted, skipped, missing and
        unexpected keys.  A method whose files have a format of their own overrides it
        (:class:`~fer_bench.methods.backbone.Backbone`: timm's)."""
        return load_into(self, path)


class delayed_step:
    """The lr factor of a step schedule that starts late: 1 up to epoch ``start``, then
    ``gamma ** ((epoch - start) // step)`` (WuJie1010/Facial-Expression-Recognition.Pytorch
    ``mainpro_FER.py``: ``learning_rate_decay_start``, ``_every``, ``_rate``).  A class, not a
    closure, so that the scheduler's state can be saved."""

    def __init__(self, start: int, step: int, gamma: float) -> None:
        self.start, self.step, self.gamma = start, max(1, step), float(gamma)

    def __call__(self, epoch: int) -> float:
        return self.gamma ** ((epoch - self.start) // self.step) if epoch > self.start else 1.0
