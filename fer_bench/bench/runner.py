"""The benchmark runner: every cell × fold × seed of a suite, one honest protocol.

Each job goes through :func:`fer_bench.train.run` (Lightning Trainer; checkpoint chosen on
validation; the test split evaluated once at the end).  :func:`run_suite` plans a run folder
(:mod:`fer_bench.bench.runfolder`: the jobs not yet done, their data roots and launch
settings) and has it worked through by :func:`fer_bench.bench.worker.work`: in this process,
in ``parallel`` worker processes (:mod:`fer_bench.bench.parallel`), or in the tasks of a SLURM
array job (:mod:`fer_bench.bench.slurm`).  Whoever runs a job, it runs once and its row is
written once; the worker that writes the last row publishes the rows as the next
``leaderboards/<suite>/vNNN.csv`` (see :mod:`fer_bench.bench.leaderboard`).

With ``devices × nodes > 1`` a job runs under DDP: Lightning re-launches the command once per
extra local rank (or ``torchrun`` / SLURM start the ranks); the other ranks follow the jobs
their rank 0 takes, and only rank 0 writes.  Give every rank the same ``--run-dir``.

``--resume RUN_DIR`` (or a second machine on the same folder) runs only the jobs without a
row; a job whose earlier attempt was pre-empted or killed goes on from its ``last.ckpt``.

A suite's ``external:`` entries (predictions made elsewhere) are scored when the run is planned,
before any job starts, each into a row of its own (:mod:`fer_bench.bench.external`); the plan
lists their keys (``launch["external"]``) so that the published version holds them.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import math
import os
import subprocess
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import fer_bench
from fer_bench.bench import leaderboard as lb
from fer_bench.bench.runfolder import RUN_DIR_ENV, RunFolder, global_rank, now
from fer_bench.bench.suite import Job, Suite
from fer_bench.files import atomic_write_text
from fer_bench.settings import TrainConfig


def git_state() -> tuple[str, bool | None]:
    repo = Path(fer_bench.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        return commit, (bool(status) if commit else None)
    except (OSError, subprocess.SubprocessError):
        return "", None


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


def base_row(suite: str, job: Job, cfg: TrainConfig, method_cls) -> dict[str, Any]:
    """The leaderboard row of a job before it runs: what it claims comes from its config,
    resolved against the method's recipe for the dataset (:func:`fer_bench.resolve.resolve`)."""
    import lightning
    import torch

    from fer_bench.resolve import resolve

    r = resolve(cfg)
    da = r.data_args
    return {
        "suite": suite, "method": job.row_method, "dataset": job.dataset, "kind": "train", "eval_dataset": job.dataset,
        "classes": da.get("classes"),  # replaced by the run's own class count when it finishes
        "fold": job.fold, "label_mode": da.get("label_mode"), "sampler": r.actual.get("sampler"),
        "input_size": r.input_size, "in_chans": r.in_chans, "resize": da.get("resize"), "epochs": r.max_epochs,
        "batch_size": r.batch_size, "normalization": da.get("normalization"), "augmentation": da.get("augmentation"),
        "frames": r.actual.get("frames"), "short_clips": da.get("short_clips"),
        "pretrained": pretrained_tag(cfg.weights), "tta": r.tta,
        "seed": job.seed, "selection": f"val/{cfg.monitor}", "precision": cfg.precision,
        "deviations": "; ".join(r.deviations), "reconstructed": "; ".join(r.reconstructed),
        "paper_protocol": paper_protocol(method_cls, job.dataset, da.get("classes")),
        "torch_version": torch.__version__, "lightning_version": lightning.__version__,
        "fer_bench_version": fer_bench.__version__, "config_hash": job.config_hash, "job": job.key,
    }


def cross_key(job: Job, dataset: str) -> str:
    return f"{job.key}/cross:{dataset}"


def cross_rows(job: Job, row: dict[str, Any], res: dict[str, Any], rf: RunFolder, data_root: str | None, echo):
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
        out = {k: v for k, v in row.items() if not k.startswith("recall_")}  # the recalls are the eval set's
        out.update(kind="cross", eval_dataset=dataset, job=cross_key(job, dataset), started_at=now())
        try:
            r = evaluate(res["checkpoint"], dataset, root, method=job.method, out=rf.job_dir(job.key) / "cross" / dataset,
                         seed=job.seed)
            out.update(status="ok", error="", war=r["war"], uar=r["uar"], n_test=r["n_test"], classes=len(r["classes"]),
                       excluded_classes=", ".join(r["excluded_dataset_classes"] + [f"{c} (model)" for c in
                                                                                 r["excluded_model_classes"]]),
                       n_excluded=r["n_excluded"], predictions=r.get("predictions"),
                       **{k: r.get(k) for k in ("war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "ece", "nll")})
            out.update({f"recall_{c}": v for c, v in r["per_class_recall"].items()})
            echo(f"    cross {job.row_method}/{job.dataset} -> {dataset}: WAR {100 * r['war']:.2f} "
                 f"UAR {100 * r['uar']:.2f} (excluded: {out['excluded_classes'] or 'none'})")
        except Exception as e:  # a failing cross evaluation never stops the suite
            out.update(status="failed", error=f"{type(e).__name__}: {e}"[:500], war=None, uar=None)
            echo(f"    cross {job.row_method}/{job.dataset} -> {dataset}: FAILED ({e})")
        out["finished_at"] = now()
        yield out


def with_paper_init(jobs: list[Job], mode: str, echo=print) -> list[Job]:
    """Jobs whose recipe pre-trains get the recipe's weights when they are available, else the first
    available of that entry's ``alternatives`` (``msceleb-resnet18`` -> ``imagenet-resnet18``; the row
    then lists ``init imagenet-resnet18≠msceleb-resnet18``); see :func:`run_suite`.  ``mode``
    ``required`` drops the jobs with none of them, with one line per cell."""
    from dataclasses import replace as dc_replace

    from fer_bench.errors import UserError, verify_choice
    from fer_bench.methods import METHODS
    from fer_bench.weights import WEIGHTS, resolve

    verify_choice(mode, "--paper-init", PAPER_INIT_MODES)
    if mode == "never":  # the regression check: its baseline is from scratch, whatever $FER_WEIGHTS holds
        return list(jobs)
    out, said = [], set()
    for j in jobs:
        recipe = METHODS.get(j.method).recipe()
        init = recipe.for_dataset(j.dataset).value("init", "scratch") if recipe is not None else "scratch"
        if init == "scratch" or j.settings.get("weights") or init not in WEIGHTS:
            out.append(j)
            continue
        chosen, why = None, ""
        for name in (init, *WEIGHTS.get(init).alternatives):
            try:
                resolve(name)
            except UserError as e:
                why = why or str(e)
                continue
            chosen = name
            break
        if chosen is None:
            if mode == "required":
                if j.cell not in said:
                    echo(f"skip: {j.row_method}/{j.dataset}: its recipe starts from {init}, not available ({why})")
                    said.add(j.cell)
                continue
            out.append(j)
            continue
        out.append(dc_replace(j, settings={**j.settings, "weights": chosen}))
    return out


PAPER_INIT_MODES = ("if-available", "required", "never")
# what a finished row copies from the run's result: intervals, calibration, cost, its predictions
ROW_FROM_RESULT = ("macs", "war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "ece", "nll", "bootstrap_resamples",
                   "train_samples_per_s", "test_samples_per_s", "peak_memory_mb", "predictions", "best_test_epoch",
                   "best_test_war", "best_test_uar")


def plan_run(
    suite: Suite,
    *,
    data_root: str | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "cpu",
    only: list[str] | None = None,
    resume: str | None = None,
    run_dir: str | None = None,
    leaderboards: str | Path = "leaderboards",
    logger: str = "csv",
    progress: bool = True,
    speed: dict[str, Any] | None = None,
    paper_init: str = "if-available",
    echo=print,
) -> RunFolder:
    """The run folder of a suite, with the plan of its jobs written (on rank 0): the suite's jobs
    after ``only`` and ``paper_init``, less those whose dataset is not under ``data_root``."""
    from fer_bench.data import DATASETS

    data_root = data_root or os.environ.get("FER_DATA")
    rank0 = global_rank() == 0
    if resume:
        rdir = Path(resume)
        if not (rdir / "suite.json").exists():
            raise FileNotFoundError(f"{rdir} is not a fer-bench run folder (no suite.json)")
    elif os.environ.get(RUN_DIR_ENV) and not rank0:
        rdir = Path(os.environ[RUN_DIR_ENV])  # a DDP rank re-launched by Lightning
    elif run_dir:
        rdir = Path(run_dir)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        rdir = Path("runs") / "bench" / suite.name / stamp
    os.environ[RUN_DIR_ENV] = str(rdir)  # inherited by the ranks Lightning launches
    rf = RunFolder(rdir)
    if not rank0:
        return rf
    rdir.mkdir(parents=True, exist_ok=True)
    if not (rdir / "suite.json").exists():
        atomic_write_text(rdir / "suite.json", json.dumps(
            {"suite": suite.name, "path": str(suite.path), "started_at": now()}, indent=2))
    jobs = [j for j in suite.jobs if not only or any(
        fnmatch.fnmatchcase(j.cell, pat) or pat == f"{j.row_method}/{j.dataset}" for pat in only)]
    jobs = with_paper_init(jobs, paper_init, echo)
    missing: set[str] = set()
    entries: list[tuple[Job, str | None]] = []
    for j in jobs:
        root = None
        if DATASETS.get(j.dataset).requires_root:
            root = str((Path(data_root) / j.dataset).resolve()) if data_root else None
            if root is None or not Path(root).exists():
                if j.dataset not in missing:
                    where = root or "(no --data-root / FER_DATA given)"
                    echo(f"skip: dataset {j.dataset} not found at {where}; its cells are not run")
                missing.add(j.dataset)
                continue
        entries.append((j, root))
    commit, dirty = git_state()
    from fer_bench.bench.external import plan_external

    externals = [e for e in suite.external if not only or any(
        fnmatch.fnmatchcase(f"{e.method}/{e.dataset}", pat) for pat in only)]
    ext_keys, scored = plan_external(rf, suite.name, externals, data_root, commit=commit, dirty=dirty, echo=echo)
    launch = {"suite": suite.name, "devices": devices, "accelerator": accelerator, "num_nodes": num_nodes, "logger": logger,
              "progress": progress, "speed": dict(speed or {}), "leaderboards": str(Path(leaderboards).resolve()),
              "data_root": str(Path(data_root).resolve()) if data_root else None, "git_commit": commit,
              "git_dirty": dirty, "wandb_group": f"{suite.name}-{rdir.name}", "external": ext_keys}
    rf.write_plan(suite.name, entries, launch)
    done = sum(rf.has_row(j.key) for j, _ in entries)
    if done < len(entries) or scored:
        rf.reset_publication()  # this plan has new rows: its version is published when the jobs are done
    ext = f", {len(ext_keys)} external ({len(ext_keys) - scored} already scored)" if externals else ""
    echo(f"suite {suite.name}: {len(jobs)} jobs, {done} already done, {len(entries) - done} to run{ext}, "
         f"run folder {rdir}")
    return rf


def execute_job(rf: RunFolder, launch: dict[str, Any], job: Job, root: str | None, *, attempt: int = 1,
                resume_from: str | None = None, stop_requested=lambda: None, rank0: bool = True,
                echo=print) -> list[dict[str, Any]]:
    """Run one job; its rows (cross-dataset ones first, the job's own last) on rank 0, ``[]`` on the others.

    A failing job gives a ``failed`` row; a stop request (``stop_requested()`` names a reason)
    raises :class:`fer_bench.callbacks.Preempted` instead, leaving ``last.ckpt`` to resume from."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from fer_bench.callbacks import Preempted, StopOnRequest
    from fer_bench.methods import METHODS
    from fer_bench.train import run

    method_cls = METHODS.get(job.method)
    cfg = replace(job.config(root=root, devices=launch["devices"], accelerator=launch["accelerator"],
                             num_nodes=launch["num_nodes"], logger=launch["logger"], out=str(rf.job_dir(job.key)),
                             progress=launch["progress"], wandb_group=launch["wandb_group"], resume_from=resume_from),
                  **launch["speed"])
    row = base_row(launch["suite"], job, cfg, method_cls)
    row.update(git_commit=launch["git_commit"], git_dirty=launch["git_dirty"], devices=launch["devices"],
               nodes=launch["num_nodes"], attempts=attempt, started_at=now())
    try:
        res = run(cfg, callbacks=[StopOnRequest(stop_requested)])
        if not (math.isfinite(res["war"]) and math.isfinite(res["uar"])):
            raise FloatingPointError("non-finite test metrics")
        proto = res.get("protocol", {})
        row.update(label_mode=proto.get("label_mode", row["label_mode"]), sampler=proto.get("sampler", row["sampler"]),
                   dropped_short_clips=sum((proto.get("dropped_short_clips") or {}).values()) or None)
        row.update(paper_protocol=paper_protocol(method_cls, job.dataset, len(res["classes"])))
        row.update(status="ok", error="", classes=len(res["classes"]), war=res["war"], uar=res["uar"],
                   best_epoch=res["best_epoch"], resumed_at_epoch=res["resumed_at_epoch"],
                   n_train=res["n_train"], n_val=res["n_val"], n_test=res["n_test"],
                   skipped_files=len(res["skipped_files"]), params=res["params"],
                   train_seconds=round(res["train_seconds"], 2), accelerator=res["accelerator"],
                   precision=res["precision"], tta=res["tta"])
        row.update({name: res.get(name) for name in ROW_FROM_RESULT})
        row.update({f"recall_{c}": r for c, r in res["per_class_recall"].items()})
    except (Preempted, SIGTERMException) as e:
        raise Preempted(str(e) or "SIGTERM") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one failing cell never stops the suite
        if stop_requested() is not None:  # torn down by the stop (e.g. a DDP peer gone): resumable, not failed
            raise Preempted(stop_requested()) from e
        err = f"{type(e).__name__}: {e}".strip()
        row.update(status="failed", error=err[:500], war=None, uar=None)
        if rank0:
            rf.job_dir(job.key).mkdir(parents=True, exist_ok=True)
            (rf.job_dir(job.key) / "error.txt").write_text(traceback.format_exc())
    row["finished_at"] = now()
    if not rank0:
        return []
    rows = []
    if row.get("status") == "ok" and job.cross_eval:  # single-process, on rank 0 only
        rows = list(cross_rows(job, row, res, rf, launch["data_root"], echo))
    return [*rows, row]


def publish(rf: RunFolder, echo=print) -> Path | None:
    """Publish the run's rows as the next leaderboard version (with papers.csv, README, page)."""
    plan = rf.read_plan()
    suite, leaderboards = plan["suite"], Path(plan["launch"]["leaderboards"])
    keys = {j.key for j, _ in plan["entries"]} | {cross_key(j, d) for j, _ in plan["entries"] for d in j.cross_eval}
    keys |= set(plan["launch"].get("external", []))  # a suite's external entries, scored when it was planned
    rows = [r for r in rf.read_rows() if r["job"] in keys]
    if not rows:
        echo("no job finished: no leaderboard version written")
        return None
    folder = leaderboards / suite
    path = lb.write_version(folder, rows)
    lb.write_papers_csv(leaderboards)  # first: the README reads the paper numbers from it
    lb.write_readme(folder, suite)
    if not lb.transfer_matrix(lb.read_version(folder)).empty:
        lb.plot_transfer(folder, folder / "transfer.png")
    from fer_bench.bench.page import write_page

    write_page(folder, suite)
    echo(f"wrote {path} ({len(rows)} rows), {folder / 'README.md'} and {folder / 'index.html'}")
    return path


def row_message(row: dict[str, Any]) -> str:
    """``WAR x UAR y`` of a finished row, or ``FAILED (first line of its error)``."""
    if row.get("status") == "ok":
        return f"WAR {100 * row['war']:.2f} UAR {100 * row['uar']:.2f}"
    return f"FAILED ({str(row.get('error') or '').splitlines()[0][:200] if row.get('error') else ''})"


def unfinished(rf: RunFolder) -> list[str]:
    """The planned jobs without a row."""
    return [j.key for j, _ in rf.read_plan()["entries"] if not rf.has_row(j.key)]


def publish_if_complete(rf: RunFolder, echo=print) -> Path | None:
    """Publish once, by whoever sees the last row first: ``leaderboard.txt`` records the version."""
    if unfinished(rf) or not rf.take_publication():
        return None
    return _publish_final(rf, echo)


def _publish_final(rf: RunFolder, echo) -> Path | None:
    """Publish the complete run and record its version in ``leaderboard.txt`` (the publication lock is held)."""
    path = publish(rf, echo)
    atomic_write_text(rf.path / "leaderboard.txt", (str(path) if path else "") + "\n")
    return path


def collect(run_dir: str | Path, echo=print) -> Path | None:
    """``fer-bench bench --collect RUN_DIR``: publish the run's rows by hand (once complete, only once)."""
    rf = RunFolder(run_dir)
    planned = len(rf.read_plan()["entries"])  # and a clear error for a folder that is no run
    published = rf.published()
    if published is not None:
        echo(f"{rf.path}: already published as {published or '(no rows)'}")
        return Path(published) if published else None
    left = unfinished(rf)
    if not left:
        rf.take_publication()  # a publisher that died half-way leaves the lock: take over
        return _publish_final(rf, echo)
    echo(f"{len(left)} of {planned} jobs have no row yet (first: {left[0]}); "
         "publishing the rows there are as a partial version")
    return publish(rf, echo)


def run_suite(
    suite: Suite,
    *,
    parallel: int = 1,
    launcher: str = "none",
    slurm: dict[str, Any] | None = None,
    dry_run: bool = False,
    echo=print,
    **plan: Any,
) -> Path | None:
    """Run every unfinished job of ``suite``; publish a leaderboard version when all are done.

    ``plan``: the arguments of :func:`plan_run` (data root, launch settings, ``only``, ``resume``,
    ``run_dir``, ``leaderboards``, ``speed``, ``paper_init``).  ``speed``: speed settings
    (``num_workers``, ``cache_images``, ...) for every job, over the cells' own; they never change
    a job's config hash.  ``paper_init``: a job whose method's recipe starts from pre-trained
    weights (and whose cell names none) uses them when the file is under ``$FER_WEIGHTS``; when it
    is not, ``if-available`` runs it from scratch (the row lists the deviation) and ``required``
    skips it with one line; ``never`` always runs from scratch.

    ``parallel``: that many worker processes on this machine, each on its own share of the GPUs
    or cores.  ``launcher`` ``slurm`` / ``submitit-local``: submit the unfinished jobs as one array
    job through submitit (``slurm``: its settings, see :mod:`fer_bench.bench.slurm`; ``dry_run``:
    write and print the script only).  Returns the new ``vNNN.csv`` when this call published one.
    """
    from fer_bench.bench import worker

    rf = plan_run(suite, echo=echo, **plan)
    if global_rank() != 0:
        worker.work(rf.path, echo=lambda *_: None)
        return None
    if launcher in ("slurm", "submitit-local"):
        from fer_bench.bench.slurm import submit

        submit(rf, slurm or {}, local=launcher == "submitit-local", dry_run=dry_run, echo=echo)
    elif parallel > 1:
        from fer_bench.bench.parallel import run_workers

        code = run_workers(rf, parallel, echo=echo)
        if code:
            raise SystemExit(code)
    else:
        code = worker.work(rf.path, echo=echo)
        if code:
            raise SystemExit(code)
    published = rf.published()
    if published is None and not unfinished(rf) and launcher == "none":
        published = str(publish_if_complete(rf, echo) or "")  # nothing was left to run: publish now
    return Path(published) if published else None
