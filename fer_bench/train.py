"""One training run: a method on a dataset, selected on validation, tested once.

``run(TrainConfig)`` is what ``fer-bench train`` and the benchmark runner call.  It works
the same on one CPU, several GPUs or several nodes: with ``devices * num_nodes > 1`` the
Lightning ``ddp`` strategy re-launches the current command per rank (or joins the ranks
started by ``torchrun``/SLURM), and only rank 0 writes the outputs.

Outputs in ``out``: ``metrics.json``, ``config.yaml``, ``confusion.png``, the best
checkpoint and ``last.ckpt`` under ``checkpoints/``, and CSV logs (``logs/metrics.csv``).
``last.ckpt`` is rewritten after every validation (weights, optimiser, scheduler, epoch,
the best-so-far selection, the random generators and the training order): a run given it
as ``resume_from`` starts at the next epoch and ends as the uninterrupted run would.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

import fer_bench
from fer_bench import evaluation
from fer_bench.settings import TrainConfig, uses_cuda
from fer_bench.validation import validate

__all__ = ["TrainConfig", "build", "run"]


def wandb_configured() -> bool:
    """True when the user set wandb up (API key, netrc entry or an explicit WANDB_MODE)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def build(cfg: TrainConfig, resolved=None):
    """(datamodule, model) for a config, resolved against the method's recipe for the dataset
    (:func:`fer_bench.resolve.resolve`: input size, channels, batch, hyper-parameters, data arguments)."""
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS
    from fer_bench.resolve import resolve

    validate(cfg)
    r = resolved or resolve(cfg)
    method_cls = METHODS.get(cfg.method)
    data_cls = DATASETS.get(cfg.dataset)
    speed: dict[str, Any] = dict(num_workers=cfg.num_workers, cache_images=cfg.cache_images,
                                 cache_budget_mb=cfg.cache_budget_mb, channels_last=cfg.channels_last,
                                 pin_memory=uses_cuda(cfg.accelerator))
    if cfg.clip_cache and data_cls.info.modality == "dynamic":
        speed["clip_cache"] = cfg.clip_cache
    dm = data_cls(
        cfg.root, batch_size=r.batch_size, seed=cfg.seed, fold=cfg.fold, limit_per_class=cfg.limit_per_class,
        input_size=r.input_size, in_chans=r.in_chans, **speed, **r.data_args,
    )
    model = method_cls(num_classes=dm.num_classes, classes=list(dm.classes), in_chans=r.in_chans,
                       input_size=r.input_size, **r.hparams)
    if cfg.weights:
        from fer_bench.weights import resolve as resolve_weights

        model.load_weights(str(resolve_weights(cfg.weights).path))
    model.test_tta = r.tta
    if cfg.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    return dm, model


class _NoLitLoggerTip(logging.Filter):
    """Drops Lightning's "💡 Tip: ... litlogger" advertisement, logged at every Trainer's start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Silence exactly two notices every run printed, at their source, and nothing else: Lightning's
    litlogger tip (an info record of its ``rank_zero`` logger) and torch's FutureWarning that
    ``isinstance(treespec, LeafSpec)`` is deprecated, raised by Lightning's own ``utilities/_pytree.py``
    (lightning 2.6 with torch 2.14); neither is about the run."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoLitLoggerTip) for f in log.filters):
        log.addFilter(_NoLitLoggerTip())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree")


def _trainer(cfg: TrainConfig, out: Path, callbacks: list, loggers: list | bool, max_epochs: int):
    import lightning as L

    quiet_lightning()
    world = cfg.devices * cfg.num_nodes
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision=cfg.precision,
        callbacks=callbacks,
        logger=loggers,
        default_root_dir=str(out),
        log_every_n_steps=10,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def run(cfg: TrainConfig, callbacks: list | None = None, resolved=None) -> dict[str, Any]:
    """Train, select on validation, test the selected checkpoint once; return metrics.

    ``callbacks``: extra Lightning callbacks (e.g. the timers of ``benchmarks/perf.py``); ``resolved``:
    the config resolved against the recipe (:func:`fer_bench.resolve.resolve`), when the caller has it."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from fer_bench.bundle import BUNDLE_FILE, write_bundle
    from fer_bench.callbacks import (
        RandomState,
        RunProgress,
        SelectionCheckpoint,
        SkippedFiles,
        TestCurve,
        read_test_curve,
    )
    from fer_bench.resolve import resolve

    out = cfg.out_dir()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resolved = resolved or resolve(cfg)
    dm, model = build(cfg, resolved)
    # the dataset's folder is read before the trainer and the loggers exist: a missing or malformed one is one
    # line and nothing written (Lightning's own setup call later finds the splits made; no random state is drawn)
    dm.setup("fit")
    from fer_bench.nn.complexity import complexity

    cost = complexity(model)  # parameters and MACs of one forward at the run's input size (eval mode)
    max_epochs = int(model.hparams.max_epochs)
    ckpt = SelectionCheckpoint(
        dirpath=str(out / "checkpoints"), filename="best-epoch={epoch:03d}", auto_insert_metric_name=False,
        monitor=f"val/{cfg.monitor}", mode="max", save_top_k=1, save_last=False,
    )
    # every epoch, after the selection above (Lightning keeps checkpoint callbacks in this order): what a
    # later attempt resumes from (ModelCheckpoint's own save_last only writes when the best improves)
    last = SelectionCheckpoint(dirpath=str(out / "checkpoints"), filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False)
    # a resumed attempt logs beside the earlier ones (Lightning's CSV logger would replace them)
    attempt = len(list(out.glob("logs*"))) if cfg.resume_from else 0
    loggers: list = [CSVLogger(save_dir=str(out), name="", version="logs" if not attempt else f"logs-{attempt + 1}")]
    if cfg.logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project="fer_bench", name=f"{cfg.method}/{cfg.dataset}/{out.name}",
                                   group=cfg.wandb_group, save_dir=str(out), offline=not wandb_configured()))
    skipped = SkippedFiles(cfg.max_unreadable)
    start = {"epoch": 0}  # the epoch this attempt starts at (> 0 when resumed)
    from lightning.pytorch.callbacks import LambdaCallback

    started = LambdaCallback(on_train_start=lambda trainer, _: start.update(epoch=trainer.current_epoch))
    extra = [TestCurve(out / TEST_CURVE_FILE)] if cfg.test_every_epoch else []
    if cfg.progress:
        run_name = f"{cfg.method}/{cfg.dataset}" + (f" fold {cfg.fold}" if cfg.fold is not None else "")
        extra.append(RunProgress(f"{run_name} seed {cfg.seed}"))
    trainer = _trainer(cfg, out, [ckpt, last, skipped, RandomState(), started, *extra, *(callbacks or [])], loggers,
                       max_epochs)
    t0 = time.time()
    # our own checkpoint (optimiser state, NumPy generator): not a weights-only load
    trainer.fit(model, datamodule=dm, ckpt_path=cfg.resume_from, weights_only=False if cfg.resume_from else None)
    train_seconds = time.time() - t0
    best = ckpt.best_model_path
    t1 = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*DistributedSampler.*")
        trainer.test(model, datamodule=dm, ckpt_path=best or None, verbose=False)
    test_seconds = time.time() - t1
    scores = model.test_scores
    preds = model.test_predictions
    found = re.search(r"best-epoch=(\d+)", Path(best).name) if best else None
    best_epoch = int(found.group(1)) if found else max_epochs - 1
    sizes = dm.split_sizes()
    result = {
        **scores.as_dict(),
        "method": cfg.method,
        "dataset": cfg.dataset,
        "n_train": sizes["train"],
        "n_val": sizes["val"],
        "n_test": sizes["test"],
        "best_epoch": best_epoch,
        "selection": f"val/{cfg.monitor}",
        "best_val": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "checkpoint": best,
        "seed": cfg.seed,
        "fold": cfg.fold,
        "protocol": json.loads(json.dumps(dm.protocol_args(), default=str)),
        "skipped_files": skipped.gathered(),
        "params": cost["params"],
        "macs": cost["macs"],
        "train_seconds": train_seconds,
        "resumed_at_epoch": start["epoch"],
        "devices": cfg.devices,
        "num_nodes": cfg.num_nodes,
        "world_size": trainer.world_size,
        "precision": cfg.precision,
        "tta": resolved.tta,
        "batch_size": resolved.batch_size,
        "max_epochs": max_epochs,
        "deviations": list(resolved.deviations),
        "reconstructed": list(resolved.reconstructed),
        "accelerator": accelerator_name(trainer),
        # what it cost (the loop's wall time: data loading and validation included)
        "train_samples_per_s": (sizes["train"] * (trainer.current_epoch - start["epoch"]) / train_seconds
                                if train_seconds > 0 else None),
        "test_samples_per_s": sizes["test"] / test_seconds if test_seconds > 0 else None,
        "peak_memory_mb": evaluation.peak_memory_mb(trainer.strategy.root_device.type),
        "predictions": str(out / evaluation.PREDICTIONS_FILE),
        **evaluation.summary(preds, len(scores.classes), seed=cfg.seed),
        **best_test_epoch(read_test_curve(out / TEST_CURVE_FILE) if cfg.test_every_epoch else [], cfg.monitor),
    }
    # the selected model with how to feed it (fer_bench.bundle), beside its checkpoint
    result["bundle"] = str(Path(best).parent / BUNDLE_FILE) if best else None
    if trainer.is_global_zero:
        evaluation.save_predictions(out / evaluation.PREDICTIONS_FILE, preds,
                                    evaluation.sample_ids(dm, "test", preds["index"].numpy()), scores.classes)
        write_outputs(out, cfg, dm, model, result, preds)
        if best:
            write_bundle(out, best, result["bundle"])
    return result


TEST_CURVE_FILE = "test_curve.csv"


def best_test_epoch(curve: list[tuple[int, float, float]], monitor: str = "war") -> dict[str, Any]:
    """What a paper that keeps its best *test* epoch would report: the epoch of the test curve
    (``--test-every-epoch``) with the highest ``monitor`` score, and its WAR and UAR (empty without a curve)."""
    if not curve:
        return {}
    col = 1 if monitor == "war" else 2
    epoch, war, uar = max(curve, key=lambda r: (r[col], -r[0]))
    return {"best_test_epoch": epoch, "best_test_war": war, "best_test_uar": uar, "test_curve": TEST_CURVE_FILE}


def accelerator_name(trainer) -> str:
    import torch

    if trainer.strategy.root_device.type == "cuda":
        return torch.cuda.get_device_name(trainer.strategy.root_device)
    return "cpu"


def write_outputs(out: Path, cfg: TrainConfig, dm, model, result: dict[str, Any], preds=None) -> None:
    import lightning
    import torch

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    config = {
        "run": asdict(cfg),
        "protocol": dm.protocol_args(),
        "hparams": dict(model.hparams),
        "versions": {"fer_bench": fer_bench.__version__, "torch": torch.__version__, "lightning": lightning.__version__},
    }
    config = json.loads(json.dumps(config, default=str))  # plain types only (versions are str subclasses)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    evaluation.plot_confusion(result["confusion"], result["classes"], out / "confusion.png",
                              title=f"{cfg.method} on {cfg.dataset}: WAR {result['war']:.3f} UAR {result['uar']:.3f}")
    if preds is not None and len(preds["label"]):
        evaluation.plot_reliability(preds["probs"].numpy(), preds["label"].numpy(), out / evaluation.RELIABILITY_FILE,
                                    title=f"{cfg.method} on {cfg.dataset}: ECE {result.get('ece', float('nan')):.3f}")
