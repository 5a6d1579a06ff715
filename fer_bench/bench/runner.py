"""The benchmark runner: every cell × fold × seed of a suite, one honest protocol.

Each job goes through :func:`fer_bench.train.run` (Lightning Trainer; checkpoint chosen on
validation; the test split evaluated once at the end).  With ``devices × nodes > 1`` the jobs
run under DDP: Lightning re-launches this very command once per extra local rank, every
rank walks the same job list, and only global rank 0 writes.  Under ``torchrun`` or SLURM
the ranks are started by the launcher instead (Lightning detects both); give every rank the
same ``--run-dir``.

A run folder (``runs/bench/<suite>/<run id>``) holds ``rows.jsonl``: one line per finished
job, appended and fsynced as soon as the job ends, so that ``--resume RUN_DIR`` runs only
the jobs not yet there.  When every job is done the rows are published as the next
``leaderboards/<suite>/vNNN.csv`` (see :mod:`fer_bench.bench.leaderboard`).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import math
import os
import re
import subprocess
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import fer_bench
from fer_bench.bench import leaderboard as lb
from fer_bench.bench.suite import Job, Suite
from fer_bench.files import atomic_write_text
from fer_bench.settings import TrainConfig

RUN_DIR_ENV = "FER_BENCH_RUN_DIR"


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


def global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    local = int(os.environ.get("LOCAL_RANK", 0))
    return local if node == 0 else node * 1000 + local  # only "is it zero" matters here


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "rows.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: that job is re-run
                continue
    return rows


def append_row(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / "rows.jsonl", "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def job_dir(run_dir: Path, job: Job) -> Path:
    return run_dir / "jobs" / re.sub(r"[^A-Za-z0-9_.=-]+", "_", job.key)


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
    """Whether the paper states the protocol of its number on ``dataset``: ``stated``,
    ``not stated (classes, split)``, ``differs (classes 7≠8)``, or ``""`` (no paper number)."""
    recipe = method_cls.recipe()
    proto = recipe.protocols.get(dataset) if recipe is not None else None
    if not proto:
        return ""
    missing = [k for k in ("classes", "split") if proto[k].status == "not stated"]
    if missing:
        return f"not stated ({', '.join(missing)})"
    want = proto["classes"].value
    if classes is not None and isinstance(want, int) and int(classes) != want:
        return f"differs (classes {int(classes)}≠{want})"
    return "stated"


def base_row(suite: str, job: Job, cfg: TrainConfig, method_cls) -> dict[str, Any]:
    """The leaderboard row of a job before it runs: what it claims comes from its config."""
    import lightning
    import torch

    from fer_bench.train import run_deviations

    da = cfg.data_args
    return {
        "suite": suite, "method": job.row_method, "dataset": job.dataset, "kind": "train", "eval_dataset": job.dataset,
        "classes": da.get("classes"),  # replaced by the run's own class count when it finishes
        "fold": job.fold, "label_mode": da.get("label_mode"), "sampler": da.get("sampler"),
        "input_size": cfg.input_size or method_cls.default_input_size,
        "pretrained": pretrained_tag(cfg.weights), "tta": cfg.tta,
        "seed": job.seed, "selection": f"val/{cfg.monitor}", "precision": cfg.precision,
        "deviations": "; ".join(run_deviations(cfg)),
        "paper_protocol": paper_protocol(method_cls, job.dataset, da.get("classes")),
        "torch_version": torch.__version__, "lightning_version": lightning.__version__,
        "fer_bench_version": fer_bench.__version__, "config_hash": job.config_hash, "job": job.key,
    }


def cross_key(job: Job, dataset: str) -> str:
    return f"{job.key}/cross:{dataset}"


def cross_rows(job: Job, row: dict[str, Any], res: dict[str, Any], rdir: Path, data_root: str | None, echo):
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
            r = evaluate(res["checkpoint"], dataset, root, method=job.method, out=job_dir(rdir, job) / "cross" / dataset,
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
    """Jobs whose recipe pre-trains get the recipe's weights when they are available (see
    :func:`run_suite`); ``mode`` ``required`` drops the others with one line per cell."""
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
        try:
            resolve(init)
        except UserError as e:
            if mode == "required":
                if j.cell not in said:
                    echo(f"skip: {j.row_method}/{j.dataset}: its recipe starts from {init}, not available ({e})")
                    said.add(j.cell)
                continue
            out.append(j)
            continue
        out.append(dc_replace(j, settings={**j.settings, "weights": init}))
    return out


PAPER_INIT_MODES = ("if-available", "required", "never")
# what a finished row copies from the run's result: intervals, calibration, cost, its predictions
ROW_FROM_RESULT = ("macs", "war_ci_low", "war_ci_high", "uar_ci_low", "uar_ci_high", "ece", "nll", "bootstrap_resamples",
                   "train_samples_per_s", "test_samples_per_s", "peak_memory_mb", "predictions")


def run_suite(
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
) -> Path | None:
    """Run every unfinished job of ``suite``; publish a leaderboard version when all are done.

    ``speed``: speed settings (``num_workers``, ``cache_images``, ...) for every job, over
    the cells' own; they never change a job's config hash.  ``paper_init``: a job whose method's
    recipe starts from pre-trained weights (and whose cell names none) uses them when the file is
    under ``$FER_WEIGHTS``; when it is not, ``if-available`` runs it from scratch (the row lists
    the deviation) and ``required`` skips it with one line; ``never`` always runs from scratch.  Returns the new ``vNNN.csv``
    (``None`` on ranks other than 0).
    """
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS
    from fer_bench.train import run

    data_root = data_root or os.environ.get("FER_DATA")
    rank0 = global_rank() == 0
    if resume:
        rdir = Path(resume)
        if not (rdir / "suite.json").exists():
            raise FileNotFoundError(f"{rdir} is not a fer-bench run folder (no suite.json)")
    elif os.environ.get(RUN_DIR_ENV):
        rdir = Path(os.environ[RUN_DIR_ENV])  # a DDP rank re-launched by Lightning
    elif run_dir:
        rdir = Path(run_dir)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        rdir = Path("runs") / "bench" / suite.name / stamp
    os.environ[RUN_DIR_ENV] = str(rdir)  # inherited by the ranks Lightning launches
    if rank0:
        rdir.mkdir(parents=True, exist_ok=True)
        if not (rdir / "suite.json").exists():
            atomic_write_text(rdir / "suite.json", json.dumps(
                {"suite": suite.name, "path": str(suite.path), "started_at": now()}, indent=2))

    jobs = [j for j in suite.jobs if not only or any(
        fnmatch.fnmatchcase(j.cell, pat) or pat == f"{j.row_method}/{j.dataset}" for pat in only)]
    jobs = with_paper_init(jobs, paper_init, echo if rank0 else (lambda *_: None))
    done = {r["job"] for r in read_rows(rdir)}
    todo = [j for j in jobs if j.key not in done]
    missing: set[str] = set()
    runnable: list[tuple[Job, str | None]] = []
    for j in todo:
        cls = DATASETS.get(j.dataset)
        root = None
        if cls.requires_root:
            root = str(Path(data_root) / j.dataset) if data_root else None
            if root is None or not Path(root).exists():
                if j.dataset not in missing and rank0:
                    where = root or "(no --data-root / FER_DATA given)"
                    echo(f"skip: dataset {j.dataset} not found at {where}; its cells are not run")
                missing.add(j.dataset)
                continue
        runnable.append((j, root))
    if rank0:
        echo(f"suite {suite.name}: {len(jobs)} jobs, {len(jobs) - len(todo)} already done, "
             f"{len(runnable)} to run, run folder {rdir}")
    commit, dirty = git_state()
    t_suite = time.time()
    for k, (job, root) in enumerate(runnable, 1):
        method_cls = METHODS.get(job.method)
        cfg = replace(job.config(root=root, devices=devices, accelerator=accelerator, num_nodes=num_nodes,
                                 logger=logger, out=str(job_dir(rdir, job)), progress=progress,
                                 wandb_group=f"{suite.name}-{rdir.name}"), **(speed or {}))
        row = base_row(suite.name, job, cfg, method_cls)
        row.update(git_commit=commit, git_dirty=dirty, devices=devices, nodes=num_nodes, started_at=now())
        if rank0:
            echo(f"[{k}/{len(runnable)}] {job.row_method}/{job.dataset} fold={job.fold} seed={job.seed} ...")
        t0 = time.time()
        try:
            res = run(cfg)
            if not (math.isfinite(res["war"]) and math.isfinite(res["uar"])):
                raise FloatingPointError("non-finite test metrics")
            proto = res.get("protocol", {})
            row.update(label_mode=proto.get("label_mode", row["label_mode"]), sampler=proto.get("sampler", row["sampler"]))
            row.update(paper_protocol=paper_protocol(method_cls, job.dataset, len(res["classes"])))
            row.update(status="ok", error="", classes=len(res["classes"]), war=res["war"], uar=res["uar"],
                       best_epoch=res["best_epoch"],
                       n_train=res["n_train"], n_val=res["n_val"], n_test=res["n_test"],
                       skipped_files=len(res["skipped_files"]), params=res["params"],
                       train_seconds=round(res["train_seconds"], 2), accelerator=res["accelerator"],
                       precision=res["precision"], tta=res["tta"])
            row.update({name: res.get(name) for name in ROW_FROM_RESULT})
            row.update({f"recall_{c}": r for c, r in res["per_class_recall"].items()})
            msg = f"WAR {100 * res['war']:.2f} UAR {100 * res['uar']:.2f}"
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # one failing cell never stops the suite
            err = f"{type(e).__name__}: {e}".strip()
            row.update(status="failed", error=err[:500], war=None, uar=None)
            if rank0:
                (job_dir(rdir, job)).mkdir(parents=True, exist_ok=True)
                (job_dir(rdir, job) / "error.txt").write_text(traceback.format_exc())
            msg = f"FAILED ({err.splitlines()[0][:200]})"
        row["finished_at"] = now()
        if rank0:
            append_row(rdir, row)
            elapsed = time.time() - t_suite
            eta = elapsed / k * (len(runnable) - k)
            echo(f"[{k}/{len(runnable)}] {job.row_method}/{job.dataset} fold={job.fold} seed={job.seed}: {msg} "
                 f"({time.time() - t0:.0f} s; suite {elapsed:.0f} s, ~{eta:.0f} s left)")
        if rank0 and row.get("status") == "ok" and job.cross_eval:  # single-process, on rank 0 only
            for cross in cross_rows(job, row, res, rdir, data_root, echo):
                append_row(rdir, cross)
    if not rank0:
        return None
    keys = {j.key for j in jobs} | {cross_key(j, d) for j in jobs for d in j.cross_eval}
    rows = [r for r in read_rows(rdir) if r["job"] in keys]
    if not rows:
        echo("no job finished: no leaderboard version written")
        return None
    folder = Path(leaderboards) / suite.name
    path = lb.write_version(folder, rows)
    lb.write_papers_csv(Path(leaderboards))  # first: the README reads the paper numbers from it
    lb.write_readme(folder, suite.name)
    if not lb.transfer_matrix(lb.read_version(folder)).empty:
        lb.plot_transfer(folder, folder / "transfer.png")
    from fer_bench.bench.page import write_page

    write_page(folder, suite.name)
    atomic_write_text(rdir / "leaderboard.txt", str(path) + "\n")
    echo(f"wrote {path} ({len(rows)} rows), {folder / 'README.md'} and {folder / 'index.html'}")
    return path
