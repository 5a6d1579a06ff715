"""Planning a suite run: its run folder, and the plan of the jobs not yet done with their launch.

:func:`plan_run` picks the suite's jobs (``only``, the paper-init policy :func:`with_paper_init`),
drops those whose dataset is not under the data root, scores the suite's external entries
(:mod:`fer_bench.bench.external`), and writes the plan (:meth:`RunFolder.write_plan`) with the
run's :class:`~fer_bench.bench.launch.Launch`.  On a DDP rank other than 0 it only finds the
folder its rank 0 planned (``FER_BENCH_RUN_DIR``).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from fer_bench.bench.external import plan_external
from fer_bench.bench.launch import RUN_DIR_ENV, Launch
from fer_bench.bench.row import now
from fer_bench.bench.runfolder import RunFolder, global_rank
from fer_bench.bench.suite import Job, Suite
from fer_bench.errors import UserError
from fer_bench.files import atomic_write_text
from fer_bench.provenance import git_state

PAPER_INIT_MODES = ("if-available", "required", "never")


def with_paper_init(jobs: list[Job], mode: str, echo=print) -> list[Job]:
    """Jobs whose recipe pre-trains get the recipe's weights when they are available, else the first
    available of that entry's ``alternatives`` (``msceleb-resnet18`` -> ``imagenet-resnet18``; the row
    then lists ``init imagenet-resnet18≠msceleb-resnet18``).  ``mode`` ``if-available`` runs the others
    from scratch (the row lists the deviation), ``required`` drops them with one line per cell, ``never``
    runs every job from scratch (the regression check: its baseline is from scratch, whatever
    ``$FER_WEIGHTS`` holds)."""
    from fer_bench.errors import verify_choice
    from fer_bench.methods import METHODS
    from fer_bench.weights import WEIGHTS, resolve

    verify_choice(mode, "--paper-init", PAPER_INIT_MODES)
    if mode == "never":
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
        out.append(replace(j, settings={**j.settings, "weights": chosen}))
    return out


def _selected(name: str, only: list[str] | None, *also: str) -> bool:
    return not only or any(fnmatch.fnmatchcase(name, pat) or pat in also for pat in only)


def check_only(suite: Suite, only: list[str] | None, flag: str = "--only") -> None:
    """Refuse, before anything is run or written, a pattern of ``only`` that selects no cell and no
    external entry of ``suite``: one line naming the pattern and listing the suite's cells."""
    names = [(j.cell, f"{j.row_method}/{j.dataset}") for j in suite.jobs]
    names += [(f"{e.method}/{e.dataset}",) for e in suite.external]
    for pat in only or ():
        if not any(_selected(n[0], [pat], *n[1:]) for n in names):
            cells = ", ".join(dict.fromkeys(n[-1] for n in names)) or "none"
            raise UserError(f"{flag} {pat}: expected a METHOD/DATASET pattern (globs allowed) matching a cell of "
                            f"suite {suite.name}: {cells}")


def check_data_root(data_root: str | None) -> str | None:
    """``data_root`` (``--data-root``, else ``$FER_DATA``) when it names an existing folder or is not
    given; else one line naming the flag or the variable.  A dataset missing under an existing root
    is no error: its cells are skipped with one line each (:func:`plan_run`)."""
    root, label = (data_root, f"--data-root {data_root}") if data_root else \
        (os.environ.get("FER_DATA"), f"$FER_DATA={os.environ.get('FER_DATA')}")
    if root and not Path(root).is_dir():
        raise UserError(f"{label}: expected an existing folder holding <dataset>/ trees, found "
                        f"{'a file' if Path(root).exists() else 'no such folder'}")
    return root or None


def _run_dir(suite: Suite, resume: str | None, run_dir: str | None, rank0: bool) -> Path:
    if resume:
        rdir = Path(resume)
        if not (rdir / "suite.json").exists():
            raise UserError(f"--resume {rdir}: expected a fer-bench run folder (with suite.json), "
                            f"found {'no such folder' if not rdir.exists() else 'none there'}")
        return rdir
    if os.environ.get(RUN_DIR_ENV) and not rank0:
        return Path(os.environ[RUN_DIR_ENV])  # a DDP rank re-launched by Lightning
    if run_dir:
        return Path(run_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    return Path("runs") / "bench" / suite.name / stamp


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
    after ``only`` and ``paper_init``, less those whose dataset is not under ``data_root``.  A
    ``data_root`` that is no folder, and an ``only`` pattern that selects nothing, are refused
    before the folder is made."""
    from fer_bench.data import DATASETS

    data_root = check_data_root(data_root)
    check_only(suite, only)
    rank0 = global_rank() == 0
    rdir = _run_dir(suite, resume, run_dir, rank0)
    os.environ[RUN_DIR_ENV] = str(rdir)  # inherited by the ranks Lightning launches
    rf = RunFolder(rdir)
    if not rank0:
        return rf
    rdir.mkdir(parents=True, exist_ok=True)
    if not (rdir / "suite.json").exists():
        atomic_write_text(rdir / "suite.json", json.dumps(
            {"suite": suite.name, "path": str(suite.path), "started_at": now()}, indent=2))
    jobs = [j for j in suite.jobs if _selected(j.cell, only, f"{j.row_method}/{j.dataset}")]
    jobs = with_paper_init(jobs, paper_init, echo)
    missing: set[str] = set()
    entries: list[tuple[Job, str | None]] = []
    for j in jobs:
        root = None
        if DATASETS.get(j.dataset).requires_root:
            root = str((Path(data_root) / j.dataset).resolve()) if data_root else None
            if root is None or not Path(root).exists():
                if j.dataset not in missing:
                    echo(f"skip: dataset {j.dataset} not found at {root or '(no --data-root / FER_DATA given)'}; "
                         "its cells are not run")
                missing.add(j.dataset)
                continue
        entries.append((j, root))
    commit, dirty = git_state()
    externals = [e for e in suite.external if _selected(f"{e.method}/{e.dataset}", only)]
    ext_keys, scored = plan_external(rf, suite.name, externals, data_root, commit=commit, dirty=dirty, echo=echo)
    launch = Launch(suite=suite.name, devices=devices, accelerator=accelerator, num_nodes=num_nodes, logger=logger,
                    progress=progress, speed=dict(speed or {}), leaderboards=str(Path(leaderboards).resolve()),
                    data_root=str(Path(data_root).resolve()) if data_root else None, git_commit=commit,
                    git_dirty=dirty, wandb_group=f"{suite.name}-{rdir.name}", external=tuple(ext_keys))
    rf.write_plan(suite.name, entries, launch)
    done = sum(rf.has_row(j.key) for j, _ in entries)
    if done < len(entries) or scored:
        rf.reset_publication()  # this plan has new rows: its version is published when the jobs are done
    ext = f", {len(ext_keys)} external ({len(ext_keys) - scored} already scored)" if externals else ""
    echo(f"suite {suite.name}: {len(jobs)} jobs, {done} already done, {len(entries) - done} to run{ext}, "
         f"run folder {rdir}")
    return rf
