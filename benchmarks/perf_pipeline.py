"""Pipeline-efficiency figure of ``benchmarks/perf.py`` (each case also yields the evaluation figure, ``perf_eval``).

pipeline efficiency
    training samples/s of the real path -- :func:`fer_bench.train.run` (Lightning Trainer,
    the dataset's DataModule reading the synthetic tree from disk, CSV logging and
    checkpointing on) -- divided by the samples/s of a bare PyTorch loop (forward, loss,
    backward, optimiser step) running a model built the same way on the same batches already
    in memory.  Steady state: the plan's ``warmup`` batches skipped, ``steps`` (``--steps``) timed in both.

A case is one method on one data source; its repeats alternate which side runs first.  On
CPU the dynamic models are slow (resnet18_lstm at 16x3x112x112 trains at ~3 clips/s on 2
cores), so they run batch 4 and few steps; ``--methods``, ``--steps``, ``--repeats`` change that.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from perf_common import bare_context, log, steady_rate, sync, to_device
from perf_eval import bare_forward_rate, test_rate

# batch size, warm-up batches, timed batches, repeats.  The targets (resnet18_pretrained on FER2013,
# resnet18_lstm on DFEW mp4 and frames) get repeats; every other method one short pass.
TARGET_STATIC = dict(batch=32, warmup=3, steps=15, repeats=4)
TARGET_DYNAMIC = dict(batch=4, warmup=2, steps=6, repeats=3)
OTHER_STATIC = dict(batch=8, warmup=2, steps=6, repeats=1)
OTHER_DYNAMIC = dict(batch=2, warmup=1, steps=3, repeats=1)
TARGETS = ("resnet18_pretrained", "resnet18_lstm")
# the static target at the workload of the former resnet18 row (48 px grey), so that its figures compare with the
# earlier entries of benchmarks/RESULTS.md; every other method at its recipe's input size
TARGET_INPUT = {"resnet18_pretrained": (48, 1)}


def case_config(method: str, modality: str, input_size: int, roots: dict[str, Path], source: str | None,
                out: Path, plan: dict, num_workers: int | None, extra: dict, in_chans: int | None = None):
    from fer_bench.train import TrainConfig

    # the smallest tree that gives warmup + steps training batches (7 classes); val/test shrink alike
    limit = -(-(plan["warmup"] + plan["steps"]) * plan["batch"] // 7) + 1
    kw: dict[str, Any] = dict(method=method, seed=0, max_epochs=1, batch_size=plan["batch"], progress=False,
                              out=str(out), num_workers=num_workers, logger="csv", limit_per_class=limit,
                              input_size=input_size, in_chans=in_chans, **extra)
    if modality == "static":
        return TrainConfig(dataset="fer2013", root=str(roots["fer2013"]), data_args={"layout": "csv"}, **kw)
    return TrainConfig(dataset="dfew", root=str(roots["dfew"]), fold=1,
                       data_args={"layout": "release", "source": source}, **kw)


def make_timer():
    import lightning as L

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.train: list[tuple[float, int]] = []
            self.test: list[tuple[float, int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 0:
                sync()
                self.train.append((time.perf_counter(), len(batch[0])))

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            sync()
            self.test.append((time.perf_counter(), len(batch[0])))

    return Timer()


@contextlib.contextmanager
def quiet():
    """Lightning's banners and warnings off; the figures go to stdout."""
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def trainer_rates(cfg, plan: dict) -> tuple[float, float, int]:
    """(train samples/s, test samples/s, test batches) of the real ``fer_bench.train.run``."""
    from fer_bench.train import run

    timer = make_timer()
    with quiet():
        run(cfg, callbacks=[timer])
    train = steady_rate(timer.train, plan["warmup"], plan["steps"])
    return train, test_rate(timer.test), len(timer.test)


def preload(cfg, plan: dict):
    """(model, first warmup+steps training batches, test batches) in memory, built as ``run`` builds."""
    import lightning as L

    from fer_bench.train import build

    with quiet():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        dm, model = build(cfg)
        dm.setup("fit")
        batches = []
        for b in dm.train_dataloader():
            batches.append((b[0], b[1]))
            if len(batches) == plan["warmup"] + plan["steps"]:
                break
        test = [b[0] for b in dm.test_dataloader()]
    return model, batches, test


def bare_train_rate(model, batches, plan: dict, cfg) -> float:
    opt = model.configure_optimizers()  # an optimiser, {"optimizer": ...} or ([optimisers], [schedulers])
    while not isinstance(opt, torch.optim.Optimizer):
        opt = opt["optimizer"] if isinstance(opt, dict) else opt[0]
    device, autocast = bare_context(cfg)
    model.to(device).train()
    batches = [(to_device(x, device, cfg.channels_last), y.to(device)) for x, y in batches]
    marks = []
    for x, y in batches:
        with autocast():
            out = model.training_outputs(x, y)
            loss, _ = model.compute_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        marks.append((time.perf_counter(), len(x)))
    return steady_rate(marks, plan["warmup"], plan["steps"])


def pipeline_case(name: str, method: str, modality: str, input_size: int, roots, source, tmp: Path,
                  plan: dict, num_workers, extra: dict, in_chans: int | None = None) -> dict[str, Any]:
    ratios, ev, rows = [], [], []
    for r in range(plan["repeats"]):
        out = tmp / "runs" / f"{name}-{r}"
        cfg = case_config(method, modality, input_size, roots, source, out, plan, num_workers, extra, in_chans)

        def bare(cfg=cfg):
            model, batches, test = preload(cfg, plan)
            return bare_train_rate(model, batches, plan, cfg), bare_forward_rate(model, test, cfg)

        if r % 2 == 0:  # interleave: alternate which side runs first
            (b_train, b_fwd), (t_train, t_test, _) = bare(), trainer_rates(cfg, plan)
        else:
            (t_train, t_test, _), (b_train, b_fwd) = trainer_rates(cfg, plan), bare()
        shutil.rmtree(out, ignore_errors=True)
        ratios.append(t_train / b_train)
        ev.append(t_test / b_fwd)
        rows.append({"trainer_train_sps": t_train, "bare_train_sps": b_train, "trainer_test_sps": t_test,
                     "bare_forward_sps": b_fwd})
        log(f"{name} repeat {r}: train {t_train:.1f} vs bare {b_train:.1f} samples/s (ratio {ratios[-1]:.3f}); "
            f"test {t_test:.1f} vs forward {b_fwd:.1f} (ratio {ev[-1]:.3f})")
    return {"case": name, "method": method, "source": source or "fer2013 csv", "input_size": input_size,
            "batch_size": plan["batch"], "warmup": plan["warmup"], "steps": plan["steps"], "repeats": plan["repeats"],
            "pipeline_efficiency": statistics.median(ratios), "evaluation": statistics.median(ev),
            "pipeline_efficiency_all": ratios, "evaluation_all": ev, "runs": rows}


def pipeline(names: list[str], roots, tmp: Path, dynamic_sources: list[str], steps: int | None, repeats: int | None,
             num_workers, extra: dict) -> list[dict[str, Any]]:
    """Every case of the methods ``names``: static ones on FER2013, dynamic ones on DFEW (the dynamic target on each
    of ``dynamic_sources``, the others on frame folders); ``steps`` and ``repeats`` override the per-case plan."""
    from fer_bench.methods import METHODS

    cases = []
    for n in names:
        cls = METHODS.get(n)
        size, chans = TARGET_INPUT.get(n, (cls.default_input_size, None))
        if cls.modality == "static":
            plan = dict(TARGET_STATIC if n in TARGETS else OTHER_STATIC)
            sources = [None]
        else:
            plan = dict(TARGET_DYNAMIC if n in TARGETS else OTHER_DYNAMIC)
            sources = dynamic_sources if n in TARGETS else ["frames"]
        if steps:
            plan["steps"] = steps
        if repeats:
            plan["repeats"] = repeats
        for src in sources:
            name = n + (f"/dfew-{src}" if src else "/fer2013")
            log(f"pipeline: {name} ({size}px, batch {plan['batch']}, {plan['steps']} steps x {plan['repeats']})")
            cases.append(pipeline_case(name, n, cls.modality, size, roots, src, tmp, plan, num_workers, extra, chans))
    return cases
