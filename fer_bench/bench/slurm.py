"""``fer-bench bench --launcher slurm``: a suite's unfinished jobs as one SLURM array job, through submitit.

Each array task is a worker (:func:`fer_bench.bench.worker.work`) that takes one job, its own
first, through the run folder's claims: tasks, local workers and other machines on the same
folder never run a job twice, and the task that writes the last row publishes the
leaderboard version.  Its logs are submitit's, under ``RUN_DIR/slurm/``.

Resources come from :data:`SETTINGS`: the suite file's ``launcher:`` section, then the flags
(``--partition``, ``--gpus-per-job``, ...).  A job with ``gpus_per_job`` G > 1 runs as G SLURM
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
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from fer_bench.bench.runfolder import RunFolder, now
from fer_bench.errors import DataFormatError, UserError
from fer_bench.files import atomic_write_text

# name: (type, default, help).  The suite's `launcher:` keys and the flags (--name-with-dashes) are these.
SETTINGS: dict[str, tuple[type, Any, str]] = {
    "partition": (str, None, "SLURM partition"),
    "account": (str, None, "SLURM account"),
    "qos": (str, None, "SLURM quality of service"),
    "constraint": (str, None, "SLURM node constraint (e.g. a GPU model)"),
    "time_min": (int, 240, "time limit of one array task, minutes (a longer job is requeued and resumes)"),
    "gpus_per_job": (int, 1, "GPUs per job (0: CPU jobs; > 1: DDP over that many SLURM tasks)"),
    "cpus_per_job": (int, 8, "CPU cores per job"),
    "mem_gb": (float, 32.0, "memory per job, GB"),
    "array_parallelism": (int, 64, "array tasks running at once"),
    "signal_delay_s": (int, 120, "seconds before the time limit at which the job is told to stop"),
    "setup": (list, [], "shell lines run before each task (module load, source .venv/bin/activate)"),
}


def check_settings(values: Any, where: str) -> dict[str, Any]:
    """A ``launcher:`` mapping checked against :data:`SETTINGS` (the error names ``where`` and the key)."""
    if not isinstance(values, dict):
        raise DataFormatError(where, "'launcher' as a mapping", found=repr(values))
    out = {}
    for key, value in values.items():
        if key not in SETTINGS:
            raise DataFormatError(where, f"launcher keys among {', '.join(SETTINGS)}", found=key)
        kind = SETTINGS[key][0]
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind is list else \
            isinstance(value, (int, float)) and not isinstance(value, bool) if kind in (int, float) else isinstance(value, str)
        if not ok or (kind is int and value != int(value)) or (kind in (int, float) and value < 0):
            what = {int: "an integer >= 0", float: "a number >= 0", str: "a string", list: "a list of strings"}[kind]
            raise DataFormatError(where, f"launcher {key}: {what}", found=repr(value))
        out[key] = kind(value) if kind is not list else list(value)
    return out


def settings(suite_launcher: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the suite's ``launcher:``, then the flags given."""
    out = {k: (list(v[1]) if isinstance(v[1], list) else v[1]) for k, v in SETTINGS.items()}
    out.update(suite_launcher)
    out.update({k: v for k, v in flags.items() if v is not None})
    return out


def sbatch_parameters(s: dict[str, Any], name: str) -> dict[str, Any]:
    """submitit's SLURM parameters (its ``_make_sbatch_string`` names) for settings ``s``."""
    g = int(s["gpus_per_job"])
    tasks = max(1, g)
    params: dict[str, Any] = {
        "job_name": name, "time": int(s["time_min"]), "nodes": 1, "ntasks_per_node": tasks,
        "cpus_per_task": max(1, int(s["cpus_per_job"]) // tasks), "array_parallelism": int(s["array_parallelism"]),
        "signal_delay_s": int(s["signal_delay_s"]), "additional_parameters": {"requeue": True},
    }
    if g:
        params["gpus_per_node"] = g
    for key in ("partition", "account", "qos", "constraint"):
        if s.get(key):
            params[key] = s[key]
    if s.get("setup"):
        params["setup"] = list(s["setup"])
    return params


class SlurmTask(Checkpointable):
    """The function each array task runs (pickled by submitit): one job of the run folder, its own first."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, run_dir: str, key: str) -> dict[str, Any]:
        from fer_bench.bench.worker import work

        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        keys = [j.key for j, _ in RunFolder(run_dir).read_plan()["entries"]]
        code = work(run_dir, max_jobs=1, prefer=keys.index(key) if key in keys else None,
                    echo=lambda *a: print(*a, flush=True))
        return {"job": key, "exit": code}

    def checkpoint(self, run_dir: str, key: str):
        """submitit's hook on the time-limit signal: stop the job (its last.ckpt resumes it) and requeue this call."""
        from fer_bench.bench.worker import request_stop

        request_stop("SLURM time limit: requeued by submitit")
        return DelayedSubmission(self, run_dir, key)


def submit(rf: RunFolder, given: dict[str, Any], *, local: bool = False, dry_run: bool = False, echo=print) -> list[str]:
    """Submit the plan's unfinished jobs as one array (``local``: submitit's LocalExecutor on this
    machine, waiting for the tasks); ``dry_run``: write and print the sbatch script only.  Returns the keys."""
    from fer_bench.bench.runner import unfinished

    s = settings({}, given)
    keys = unfinished(rf)
    plan = rf.read_plan()
    g = int(s["gpus_per_job"])
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
            folder=folder, map_count=len(keys), mem=_convert_mem(float(s["mem_gb"])),
            **{**params, "setup": listing + params.get("setup", [])})
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "dry-run.sbatch", text)
        echo(text)
        echo(f"(dry run: nothing submitted; the script is {folder / 'dry-run.sbatch'}: an array of {len(keys)} tasks)")
        return keys
    import submitit

    task = SlurmTask(threads=int(s["cpus_per_job"]) if local else None)
    if local:
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=int(s["time_min"]), gpus_per_node=g, tasks_per_node=1,
                             signal_delay_s=int(s["signal_delay_s"]))
        width = max(1, int(s["array_parallelism"]))
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
    ex.update_parameters(mem_gb=float(s["mem_gb"]), **params)
    jobs = ex.map_array(task, [str(run_dir)] * len(keys), keys)
    array_id = str(jobs[0].job_id).split("_")[0]
    atomic_write_text(folder / "submitted.json", json.dumps(
        {"array_job_id": array_id, "tasks": len(keys), "submitted_at": now(), "settings": s}, indent=2, default=str))
    echo(f"submitted SLURM array job {array_id}: {len(keys)} tasks (logs under {folder}); "
         f"progress: fer-bench bench --status {rf.path}")
    return keys
