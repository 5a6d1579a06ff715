"""Running one job of a plan: its planned row, the training, its finished (or failed) row, and the
rows of its cross-dataset evaluations.

Each job goes through :func:`fer_bench.train.run` (Lightning Trainer; checkpoint chosen on
validation; the test split evaluated once at the end).  With ``devices × nodes > 1`` it runs under
DDP: the other ranks run the same call and only rank 0 gets rows.  A stop request (a signal, a SLURM
time limit) raises :class:`fer_bench.callbacks.Preempted` and leaves ``last.ckpt`` to resume from.
"""
from __future__ import annotations

import traceback
from dataclasses import replace
from pathlib import Path

import fer_bench
from fer_bench.bench.launch import Launch
from fer_bench.bench.row import Row, now
from fer_bench.bench.runfolder import RunFolder
from fer_bench.bench.suite import Job
from fer_bench.settings import TrainConfig


def pretrained_tag(weights: str | None) -> str:
    """The row's ``pretrained`` column: ``none``, ``name@sha256[:8]`` of a registered or given file."""
    if not weights:
        return "none"
    from fer_bench.errors import UserError
    from fer_bench.weights import resolve

    try:
        return resolve(weights).tag
    except UserError:
        return Path(weights).name


def paper_protocol(method_cls, dataset: str, classes: int | None = None) -> str:
    """How a run compares with the protocol of its paper's number on ``dataset``
    (:func:`fer_bench.methods.metafile.paper_protocol`): ``stated``, ``not stated (split, tta)``,
    ``differs (classes 7≠8, selection validation≠best test epoch)``, or ``""`` (no paper number)."""
    from fer_bench.methods.metafile import paper_protocol as compare

    meta = method_cls.metafile()
    return compare(meta, dataset, classes) if meta is not None else ""


def planned_row(suite: str, job: Job, cfg: TrainConfig, method_cls, resolved=None) -> Row:
    """The leaderboard row of a job before it runs: what it claims comes from its config, resolved
    against the method's recipe for the dataset (``resolved``, :func:`fer_bench.resolve.resolve`)."""
    import lightning
    import torch

    from fer_bench.resolve import resolve

    r = resolved or resolve(cfg)
    da = r.data_args
    return Row(
        suite=suite, method=job.row_method, dataset=job.dataset, kind="train", eval_dataset=job.dataset,
        classes=da.get("classes"),  # replaced by the run's own class count when it finishes
        fold=job.fold, label_mode=da.get("label_mode"), sampler=r.actual.get("sampler"), input_size=r.input_size,
        in_chans=r.in_chans, resize=da.get("resize"), epochs=r.max_epochs, batch_size=r.batch_size,
        normalization=da.get("normalization"), augmentation=da.get("augmentation"), frames=r.actual.get("frames"),
        short_clips=da.get("short_clips"), face_crop=da.get("crop"), pretrained=pretrained_tag(cfg.weights), tta=r.tta,
        seed=job.seed,
        selection=f"val/{cfg.monitor}", precision=cfg.precision, deviations="; ".join(r.deviations),
        reconstructed="; ".join(r.reconstructed),
        paper_protocol=paper_protocol(method_cls, job.dataset, da.get("classes")),
        torch_version=torch.__version__, lightning_version=lightning.__version__,
        fer_bench_version=fer_bench.__version__, config_hash=job.config_hash, job=job.key)


def cross_key(job: Job, dataset: str) -> str:
    return f"{job.key}/cross:{dataset}"


def cross_rows(job: Job, row: Row, checkpoint: str, rf: RunFolder, data_root: str | None, echo):
    """The rows of a finished job's cross-dataset evaluations (suite key ``cross_eval``): its
    selected checkpoint on each listed dataset's test split, through the shared classes
    (:mod:`fer_bench.transfer`).  A row has ``kind`` ``cross`` and ``eval_dataset``."""
    from fer_bench.data import DATASETS
    from fer_bench.transfer import evaluate

    for dataset in job.cross_eval:
        root = None
        if DATASETS.get(dataset).requires_root:
            root = str(Path(data_root) / dataset) if data_root else None
            if root is None or not Path(root).exists():
                echo(f"skip: cross evaluation of {job.row_method}/{job.dataset} on {dataset}: not found at "
                     f"{root or '(no --data-root / FER_DATA given)'}")
                continue
        out = row.cross(dataset, cross_key(job, dataset))
        what = f"    cross {job.row_method}/{job.dataset} -> {dataset}"
        try:
            r = evaluate(checkpoint, dataset, root, method=job.method, out=rf.job_dir(job.key) / "cross" / dataset,
                         seed=job.seed)
            out = out.cross_scored(r)
            echo(f"{what}: {out.message()} (excluded: {out.excluded_classes or 'none'})")
        except Exception as e:  # a failing cross evaluation never stops the suite
            out = out.failed(f"{type(e).__name__}: {e}")
            echo(f"{what}: FAILED ({e})")
        yield out


def execute_job(rf: RunFolder, launch: Launch, job: Job, root: str | None, *, attempt: int = 1,
                resume_from: str | None = None, stop_requested=lambda: None, rank0: bool = True,
                echo=print) -> list[Row]:
    """Run one job; its rows (cross-dataset ones first, the job's own last) on rank 0, ``[]`` on the others.

    A failing job gives a ``failed`` row; a stop request (``stop_requested()`` names a reason)
    raises :class:`fer_bench.callbacks.Preempted` instead, leaving ``last.ckpt`` to resume from."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from fer_bench.callbacks import Preempted, StopOnRequest
    from fer_bench.methods import METHODS
    from fer_bench.resolve import resolve
    from fer_bench.train import run

    method_cls = METHODS.get(job.method)
    cfg = replace(job.config(root=root, out=str(rf.job_dir(job.key)), resume_from=resume_from,
                             **launch.job_settings()), **launch.speed)
    resolved = resolve(cfg)  # once: for the row and for the run
    row = replace(planned_row(launch.suite, job, cfg, method_cls, resolved), git_commit=launch.git_commit,
                  git_dirty=launch.git_dirty, devices=launch.devices, nodes=launch.num_nodes, attempts=attempt,
                  started_at=now())
    try:
        res = run(cfg, callbacks=[StopOnRequest(stop_requested)], resolved=resolved)
        row = row.finished(res, paper_protocol(method_cls, job.dataset, len(res["classes"])))
    except (Preempted, SIGTERMException) as e:
        raise Preempted(str(e) or "SIGTERM") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one failing cell never stops the suite
        if stop_requested() is not None:  # torn down by the stop (e.g. a DDP peer gone): resumable, not failed
            raise Preempted(stop_requested()) from e
        row = row.failed(f"{type(e).__name__}: {e}")
        if rank0:
            rf.job_dir(job.key).mkdir(parents=True, exist_ok=True)
            (rf.job_dir(job.key) / "error.txt").write_text(traceback.format_exc())
    if not rank0:
        return []
    rows = []
    if row.status == "ok" and job.cross_eval:  # single-process, on rank 0 only
        rows = list(cross_rows(job, row, res["checkpoint"], rf, launch.data_root, echo))
    return [*rows, row]
