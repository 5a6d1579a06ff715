"""``fer-bench bench --launcher slurm``: a suite's unfinished jobs as one SLURM array job, through submitit.

Each array task is a worker (:func:`fer_bench.bench.worker.work`) that takes one job, its own
first, through the run folder's claims: tasks, local workers and other machines on the same
folder never run a job twice, and the task that writes the last row publishes the
leaderboard version.  Its logs are submitit's, under ``RUN_DIR/slurm/``.

Resources are a :class:`fer_bench.settings.SlurmSettings`: its defaults, the suite file's ``launcher:``
section, then the flags (``--partition``, ``--gpus-per-job``, ...).  A job with ``gpus_per_job`` G > 1 runs as G SLURM
tasks (one DDP rank each, Lightning's SLURM environment); its other ranks follow rank 0.

Time limits and pre-emption go through the engines.  submitit asks SLURM for
``USR2@signal_delay_s`` before the time limit; on that signal it calls
:meth:`SlurmTask.checkpoint` (the job stops, its attempt is marked ``preempted``), requeues the
task with ``scontrol requeue`` and exits.  On SIGTERM (pre-emption) the job stops at the next
batch and the task exits ``EXIT_REQUEUE``; the script asks for ``--requeue``, so SLURM queues
it again.  Either way the next attempt resumes from the job's ``last.ckpt``.
"""
from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from fer_bench.bench.row import now
from fer_bench.bench.runfolder import RunFolder
from fer_bench.bench.worker import request_stop, work
from fer_bench.errors import UserError
from fer_bench.files import atomic_write_text
from fer_bench.settings import SlurmSettings


def sbatch_parameters(s: SlurmSettings, name: str) -> dict[str, Any]:
    """submitit's SLURM parameters (its ``_make_sbatch_string`` names) for settings ``s``."""
    g = s.gpus_per_job
    tasks = max(1, g)
    params: dict[str, Any] = {
        "job_name": name, "time": s.time_min, "nodes": 1, "ntasks_per_node": tasks,
        "cpus_per_task": max(1, s.cpus_per_job // tasks), "array_parallelism": s.array_parallelism,
        "signal_delay_s": s.signal_delay_s, "additional_parameters": {"requeue": True},
    }
    if g:
        params["gpus_per_node"] = g
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if s.setup:
        params["setup"] = list(s.setup)
    return params


class SlurmTask(Checkpointable):
    """The function each array task runs (pickled by submitit): one job of the run folder, its own first."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, run_dir: str, key: str) -> dict[str, Any]:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        keys = [j.key for j, _ in RunFolder(run_dir).read_plan()["entries"]]
        code = work(run_dir, max_jobs=1, prefer=keys.index(key) if key in keys else None,
                    echo=lambda *a: print(*a, flush=True))
        return {"job": key, "exit": code}

    def checkpoint(self, run_dir: str, key: str):
        """submitit's hook on the time-limit signal: stop the job (its last.ckpt resumes it) and requeue this call."""
        request_stop("SLURM time limit: requeued by submitit")
        return DelayedSubmission(self, run_dir, key)


def submit(rf: RunFolder, s: SlurmSettings, *, local: bool = False, dry_run: bool = False, echo=print) -> list[str]:
    """Submit the plan's unfinished jobs as one array (``local``: submitit's LocalExecutor on this
    machine, waiting for the tasks); ``dry_run``: write and print the sbatch script only.  Returns the keys."""
    keys = rf.unfinished()
    plan = rf.read_plan()
    g = s.gpus_per_job
    rf.update_launch(accelerator="gpu" if g else "cpu", devices=max(1, g), num_nodes=1)
    if not keys:
        echo(f"{rf.path}: no job left to run; nothing to submit")
        return []
    run_dir = rf.path.resolve()  # the tasks may start elsewhere
    folder = run_dir / ("slurm-local" if local else "slurm")
    params = sbatch_parameters(s, f"fer-bench-{plan['suite']}")
    if dry_run:
        # the text SlurmExecutor submits (memory converted as it converts mem_gb), without sbatch
        from submitit.slurm.slurm import _convert_mem, _make_sbatch_string

        listing = [f"# fer-bench: task i runs fer_bench.bench.slurm.SlurmTask()({shlex.quote(str(run_dir))}, job i):"]
        listing += [f"#   task {i}: {k}" for i, k in enumerate(keys)]
        text = _make_sbatch_string(
            command=f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(folder))}",
            folder=folder, map_count=len(keys), mem=_convert_mem(s.mem_gb),
            **{**params, "setup": listing + params.get("setup", [])})
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "dry-run.sbatch", text)
        echo(text)
        echo(f"(dry run: nothing submitted; the script is {folder / 'dry-run.sbatch'}: an array of {len(keys)} tasks)")
        return keys
    import submitit

    task = SlurmTask(threads=s.cpus_per_job if local else None)
    if local:
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=s.time_min, gpus_per_node=g, tasks_per_node=1,
                             signal_delay_s=s.signal_delay_s)
        width = max(1, s.array_parallelism)
        results = []
        for at in range(0, len(keys), width):  # the local executor starts a whole array at once
            chunk = keys[at:at + width]
            jobs = ex.map_array(task, [str(run_dir)] * len(chunk), chunk)
            echo(f"submitit local: {len(chunk)} task(s) started (logs under {folder})")
            for job, key in zip(jobs, chunk):
                try:
                    results.append(job.result())
                except Exception as e:  # a task that died: its job stays pending, --status shows it
                    echo(f"task for {key} failed: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else e}")
        return keys
    try:
        ex = submitit.SlurmExecutor(folder=str(folder))
    except RuntimeError as e:
        raise UserError(f"--launcher slurm: {e} (try --dry-run to see the script)") from None
    ex.update_parameters(mem_gb=s.mem_gb, **params)
    jobs = ex.map_array(task, [str(run_dir)] * len(keys), keys)
    array_id = str(jobs[0].job_id).split("_")[0]
    atomic_write_text(folder / "submitted.json", json.dumps(
        {"array_job_id": array_id, "tasks": len(keys), "submitted_at": now(), "settings": asdict(s)}, indent=2, default=str))
    echo(f"submitted SLURM array job {array_id}: {len(keys)} tasks (logs under {folder}); "
         f"progress: fer-bench bench --status {rf.path}")
    return keys
