"""``fer-bench bench --parallel N``: N worker processes on this machine, each on its own devices.

The visible GPUs (``CUDA_VISIBLE_DEVICES``, else all) are split into N groups of ``devices``
(a job's DDP width, ``--devices``); with fewer GPUs than workers and ``--devices 1`` the
workers share them round-robin.  The CPU cores this process may use are split into N
disjoint sets; each worker is pinned to its set and runs that many torch threads (its data
loaders' default worker count follows, see :func:`fer_bench.data.base.default_num_workers`).

Each worker is its own process (:mod:`fer_bench.bench.worker`), logging to
``RUN_DIR/logs/worker-<i>.log``; one that crashes or is killed does not stop the others, and
its job is taken over (from its ``last.ckpt``) by the next worker that looks for work.  This
process prints each row as it lands, forwards SIGTERM/SIGINT/SIGUSR1 to the workers (they stop
at a batch boundary and exit "requeue"), and kills them on a second signal.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from fer_bench.bench.launch import EXIT_REQUEUE, RUN_DIR_ENV, WORKER_ENV
from fer_bench.bench.row import done_line
from fer_bench.bench.runfolder import RunFolder
from fer_bench.errors import UserError


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() != ""]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def split_cores(cores: list[int], n: int) -> list[list[int]]:
    """``cores`` in ``n`` disjoint, contiguous sets of near-equal size (one shared core each when too few)."""
    if len(cores) < n:
        return [[cores[i % len(cores)]] for i in range(n)]
    k, extra = divmod(len(cores), n)
    out, at = [], 0
    for i in range(n):
        size = k + (1 if i < extra else 0)
        out.append(cores[at:at + size])
        at += size
    return out


def gpu_groups(gpus: list[str], n: int, devices: int) -> list[list[str]]:
    """Each worker's GPUs: ``devices`` of its own, or one shared round-robin when there are too few."""
    if not gpus:
        raise UserError("--parallel with --accelerator gpu: no GPU is visible (CUDA_VISIBLE_DEVICES / torch)")
    if len(gpus) >= n * devices:
        return [gpus[i * devices:(i + 1) * devices] for i in range(n)]
    if devices == 1:
        return [[gpus[i % len(gpus)]] for i in range(n)]
    raise UserError(f"--parallel {n} --devices {devices} needs {n * devices} GPUs; {len(gpus)} are visible")


def worker_commands(rf: RunFolder, n: int) -> list[tuple[list[str], dict[str, str], str]]:
    """(command, environment, what it runs on) of each of the ``n`` workers."""
    launch = rf.read_plan()["launch"]
    gpu = launch.accelerator == "gpu" or (launch.accelerator == "auto" and bool(visible_gpus()))
    groups = gpu_groups(visible_gpus(), n, launch.devices * launch.num_nodes) if gpu else None
    cores = split_cores(usable_cores(), n)
    out = []
    for i in range(n):
        env = dict(os.environ, OMP_NUM_THREADS=str(len(cores[i])), MKL_NUM_THREADS=str(len(cores[i])),
                   PYTHONUNBUFFERED="1")
        # an id of its own, even inside one SLURM allocation (whose id every worker would otherwise share)
        env[WORKER_ENV] = f"{socket.gethostname()}-{os.getpid()}-w{i}"
        env.pop(RUN_DIR_ENV, None)
        where = f"cores {cores[i][0]}-{cores[i][-1]}" if len(cores[i]) > 1 else f"core {cores[i][0]}"
        if groups is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(groups[i])
            where = f"GPU {','.join(groups[i])}, {where}"
        cmd = [sys.executable, "-m", "fer_bench.bench.worker", str(rf.path), "--cpus", ",".join(map(str, cores[i]))]
        out.append((cmd, env, where))
    return out


def run_workers(rf: RunFolder, n: int, echo=print, poll_s: float = 0.5) -> int:
    """Run ``n`` workers on ``rf`` until they end; 0, or :data:`EXIT_REQUEUE` when a stop signal ended them."""
    logs = rf.path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    signalled: list[int] = []

    def forward(signum, frame) -> None:
        signalled.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL if len(signalled) > 1 else signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    try:
        for i, (cmd, env, where) in enumerate(worker_commands(rf, n)):
            log = open(logs / f"worker-{i}.log", "a")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()))
            log.close()
            echo(f"worker {i} (pid {procs[-1].pid}) on {where}; log {logs / f'worker-{i}.log'}")
        seen = {r["job"] for r in rf.read_rows()}
        while True:
            running = [p for p in procs if p.poll() is None]
            for row in rf.read_rows():
                if row["job"] not in seen:
                    seen.add(row["job"])
                    echo(done_line(row))
            if not running:
                break
            time.sleep(poll_s)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    codes = [p.returncode for p in procs]
    for i, c in enumerate(codes):
        if c not in (0, EXIT_REQUEUE):
            echo(f"worker {i} ended with {'signal ' + signal.Signals(-c).name if c < 0 else f'exit code {c}'} "
                 f"(see {logs / f'worker-{i}.log'})")
    left = rf.unfinished()
    if left:
        echo(f"{len(left)} job(s) not done; finish them with --resume {rf.path}")
    return EXIT_REQUEUE if (signalled or EXIT_REQUEUE in codes) and left else 0


