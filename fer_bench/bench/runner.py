"""``fer-bench bench``: every cell × fold × seed of a suite, one honest protocol.

:func:`run_suite` is the top of ``fer_bench.bench``'s layers, which import one way, downwards:

- *records*: the suite and its jobs (:mod:`~fer_bench.bench.suite`), a leaderboard row
  (:mod:`~fer_bench.bench.row`), the launch settings (:mod:`~fer_bench.bench.launch`), the shared
  run folder (:mod:`~fer_bench.bench.runfolder`), the leaderboard versions
  (:mod:`~fer_bench.bench.leaderboard`);
- *actions*: plan a run (:mod:`~fer_bench.bench.plan`, with the suite's external entries,
  :mod:`~fer_bench.bench.external`), run one job with its cross-dataset rows
  (:mod:`~fer_bench.bench.job`), publish (:mod:`~fer_bench.bench.publish`);
- *executors*: the worker loop (:mod:`~fer_bench.bench.worker`), local worker processes
  (:mod:`~fer_bench.bench.parallel`), a SLURM array (:mod:`~fer_bench.bench.slurm`).

Whoever runs a job, it runs once and its row is written once; the worker that writes the last row
publishes the rows as the next ``leaderboards/<suite>/vNNN.csv``.

With ``devices × nodes > 1`` a job runs under DDP: Lightning re-launches the command once per
extra local rank (or ``torchrun`` / SLURM start the ranks); the other ranks follow the jobs
their rank 0 takes, and only rank 0 writes.  Give every rank the same ``--run-dir``.

``--resume RUN_DIR`` (or a second machine on the same folder) runs only the jobs without a
row; a job whose earlier attempt was pre-empted or killed goes on from its ``last.ckpt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_bench.bench import worker
from fer_bench.bench.plan import plan_run
from fer_bench.bench.publish import publish_if_complete
from fer_bench.bench.runfolder import global_rank
from fer_bench.bench.suite import Suite
from fer_bench.settings import SlurmSettings


def run_suite(
    suite: Suite,
    *,
    parallel: int = 1,
    launcher: str = "none",
    slurm: SlurmSettings | None = None,
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
    rf = plan_run(suite, echo=echo, **plan)
    if global_rank() != 0:
        worker.work(rf.path, echo=lambda *_: None)
        return None
    if launcher in ("slurm", "submitit-local"):
        from fer_bench.bench.slurm import submit

        submit(rf, slurm or SlurmSettings(), local=launcher == "submitit-local", dry_run=dry_run, echo=echo)
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
    if published is None and not rf.unfinished() and launcher == "none":
        published = str(publish_if_complete(rf, echo) or "")  # nothing was left to run: publish now
    return Path(published) if published else None
