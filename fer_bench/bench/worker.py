"""The worker: take a run folder's next job, run it, write its row; again, until none is left.

Every way of running a suite goes through :func:`work`: the ``fer-bench bench`` process
itself, each of its ``--parallel N`` processes (``python -m fer_bench.bench.worker RUN_DIR``),
each task of a SLURM array job.  Jobs are claimed through the run folder
(:mod:`fer_bench.bench.runfolder`), so any number of workers, on any number of machines
sharing the folder, run each job once.  The worker that writes the last row publishes the
leaderboard version.

Signals.  SIGTERM or SIGUSR1 (what SLURM sends before pre-empting or at a time limit) ends
the running job at its next batch: its ``last.ckpt`` (written after every epoch) stays, its
attempt is recorded as ``preempted``, no new job is taken, and the worker exits with
:data:`EXIT_REQUEUE` (75, ``EX_TEMPFAIL``).  The job's next attempt, by any worker, resumes from
that checkpoint and its row counts the attempts.  A second signal interrupts at once; the run
folder stays resumable (the claim's worker is then gone, and the checkpoint was written whole).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from fer_bench.bench.job import execute_job
from fer_bench.bench.launch import EXIT_REQUEUE, WORKER_ENV
from fer_bench.bench.publish import publish_if_complete
from fer_bench.bench.row import message
from fer_bench.bench.runfolder import HEARTBEAT_S, Claim, RunFolder, Worker, global_rank

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Why the worker should stop (``None``: it should not); set by a signal or by :func:`request_stop`."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def __call__(self) -> str | None:
        return self.reason

    def _handle(self, signum, frame) -> None:
        if self.reason is not None:  # the second signal: no more waiting for a batch boundary
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} again")
        self.reason = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


_STOP = StopRequest()


def request_stop(reason: str) -> None:
    """Ask the running worker of this process to stop at the next batch (e.g. from submitit's checkpoint hook)."""
    _STOP.reason = reason


class Heartbeat(threading.Thread):
    """Refreshes a claim while its job runs; a claim taken over by another worker stops the job."""

    def __init__(self, claim: Claim, stop: StopRequest, every_s: float = HEARTBEAT_S) -> None:
        super().__init__(daemon=True)
        self.claim, self.stop, self.every_s = claim, stop, every_s
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.claim.heartbeat()
            if not self.claim.holds():
                self.stop.reason = f"superseded: another worker took attempt {self.claim.attempt + 1}"

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()


def work(run_dir: str | Path, *, max_jobs: int | None = None, prefer: int | None = None, echo=print,
         run_job=None) -> int:
    """Work through the run folder's plan; returns 0, or :data:`EXIT_REQUEUE` when stopped by a signal.

    ``max_jobs``: take at most that many (a SLURM array task takes one); ``prefer``: the plan
    index to try first (an array task's own job).  ``run_job``: the function that runs a job
    (:func:`fer_bench.bench.job.execute_job`, replaced in tests)."""
    run_job = run_job or execute_job
    rf = RunFolder(run_dir)
    me = Worker.here()
    with StopRequest() as stop:
        global _STOP
        _STOP = stop
        if global_rank() != 0:
            return _follow(rf, me, run_job, stop)
        previous = os.environ.get(WORKER_ENV)
        os.environ[WORKER_ENV] = me.id  # the ranks Lightning starts for a DDP job follow this worker
        try:
            return _lead(rf, me, run_job, stop, max_jobs, prefer, echo)
        finally:
            if previous is None:
                os.environ.pop(WORKER_ENV, None)
            else:
                os.environ[WORKER_ENV] = previous


def _lead(rf: RunFolder, me: Worker, run_job, stop: StopRequest, max_jobs: int | None, prefer: int | None,
          echo) -> int:
    """Rank 0 of a worker: claim, run and write jobs until none is left, a limit or a stop."""
    from fer_bench.callbacks import Preempted

    plan = rf.read_plan()
    entries, launch = plan["entries"], plan["launch"]
    order = list(range(len(entries)))
    if prefer is not None and 0 <= prefer < len(order):
        order.remove(prefer)
        order.insert(0, prefer)
    todo = sum(not rf.has_row(j.key) for j, _ in entries)
    ran, t_start = 0, time.time()
    while stop() is None and (max_jobs is None or ran < max_jobs):
        claim, picked = None, None
        for i in order:
            job, root = entries[i]
            if not rf.has_row(job.key):
                claim = rf.claim(job.key, me)
                if claim is not None:
                    picked = (job, root)
                    break
        if claim is None:
            break  # every job is done or held by a live worker
        job, root = picked
        ran += 1
        last = rf.job_dir(job.key) / "checkpoints" / "last.ckpt"
        resume_from = str(last) if last.exists() else None
        rf.announce(me, job.key, resume_from)
        n = f"[{ran}/{todo}]"
        echo(f"{n} {job.row_method}/{job.dataset} fold={job.fold} seed={job.seed}"
             + (f" (attempt {claim.attempt}, resuming from {last.parent.parent.name}/checkpoints/last.ckpt)"
                if resume_from else "") + " ...")
        t0 = time.time()
        try:
            with Heartbeat(claim, stop):
                rows = run_job(rf, launch, job, root, attempt=claim.attempt, resume_from=resume_from,
                               stop_requested=stop, echo=echo)
        except Preempted as e:
            claim.end("preempted", reason=str(e))
            echo(f"{n} {job.row_method}/{job.dataset}: stopped ({e}); attempt {claim.attempt} resumes from "
                 "its last.ckpt")
            break
        except BaseException as e:  # interrupted for good (a second signal, Ctrl-C, submitit's exit): resumable
            claim.end("preempted", reason=f"{type(e).__name__}: {e}")
            raise
        if not claim.holds():
            echo(f"{n} {job.row_method}/{job.dataset}: another worker took this job over; its result is dropped")
            claim.end("superseded")
            continue
        for row in rows:  # cross-dataset rows first: the job's own row marks it done
            rf.write_row(row)
        claim.end("done")
        last.unlink(missing_ok=True)  # only ever needed to resume; the selected checkpoint stays
        msg = message(rows[-1])
        elapsed = time.time() - t_start
        echo(f"{n} {job.row_method}/{job.dataset} fold={job.fold} seed={job.seed}: {msg} ({time.time() - t0:.0f} s; "
             f"worker {elapsed:.0f} s, ~{elapsed / ran * max(0, todo - ran):.0f} s left)")
        publish_if_complete(rf, echo)
    rf.announce(me, None)
    return EXIT_REQUEUE if stop() is not None else 0


def _follow(rf: RunFolder, me: Worker, run_job, stop: StopRequest) -> int:
    """A DDP rank other than 0: run the jobs rank 0 of this worker takes, in its order, writing nothing."""
    from fer_bench.callbacks import Preempted

    plan = None
    i = 0
    while (entry := rf.followed(me.id, i)) is not None:
        plan = plan or rf.read_plan(wait_s=60)
        job, root = next((j, r) for j, r in plan["entries"] if j.key == entry["key"])
        try:
            run_job(rf, plan["launch"], job, root, resume_from=entry["resume_from"], stop_requested=stop, rank0=False,
                    echo=lambda *_: None)
        except Preempted:
            return EXIT_REQUEUE
        i += 1
    return 0


def pin_to(cpus: list[int]) -> None:
    """Run this process (its torch threads, its data-loading default) on ``cpus`` only."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    import torch

    torch.set_num_threads(len(cpus))


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_bench.bench.worker RUN_DIR``: one worker process of ``fer-bench bench --parallel``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m fer_bench.bench.worker")
    p.add_argument("run_dir")
    p.add_argument("--cpus", help="comma-separated cores this worker runs on (its torch threads follow)")
    args = p.parse_args(argv)
    if args.cpus:
        pin_to([int(c) for c in args.cpus.split(",")])
    return work(args.run_dir, echo=lambda *a: print(*a, flush=True))


if __name__ == "__main__":
    sys.exit(main())
