"""Parallel jobs: the wall time of one small suite run sequentially and with ``--parallel N``.

``make bench-parallel`` (``PARALLEL_ARGS`` for the flags).  The suite is ``--jobs`` seeds of
ResNet-18 on the built-in synthetic faces (48 px), ``--epochs`` epochs each.  Each variant is a
fresh ``fer-bench bench`` process with its own run folder and leaderboards (start-up, data
generation, publication included: what a user waits for), repeated ``--repeats`` times,
interleaved; the median wall times and their ratios are printed:

sequential
    one process, torch's default thread count (all the cores it may use)
sequential, 1 thread
    one process, ``OMP_NUM_THREADS=1`` (what each parallel worker gets on 2 cores)
parallel
    ``--parallel N``: N worker processes, the cores split between them

and whether the parallel rows carry the same metrics as the sequential 1-thread ones (they
should: same seeds, same thread count per job).  ``--accelerator gpu`` splits the visible
GPUs instead (see ``fer_bench.bench.parallel``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def suite_text(jobs: int, epochs: int, per_class: int) -> str:
    return (f"suite: parallel-bench\ndefaults: {{max_epochs: {epochs}, batch_size: 16, input_size: 48, in_chans: 1, "
            f"seeds: {list(range(jobs))}, num_workers: 0, method_args: {{optimizer: adamw, lr: 0.001}},\n"
            f"  data_args: {{train_per_class: {per_class}, val_per_class: 10, test_per_class: 10}}}}\n"
            "cells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n")


def run_variant(suite: Path, work: Path, name: str, extra: list[str], env: dict[str, str]) -> tuple[float, Path]:
    run_dir, boards = work / f"run-{name}", work / f"boards-{name}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fer_bench", "bench", str(suite), "--no-progress", "--run-dir",
                           str(run_dir), "--leaderboards", str(boards), *extra], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, next((boards / "parallel-bench").glob("v*.csv"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--per-class", type=int, default=40, help="training images per class")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import pandas as pd

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    base["PYTHONUNBUFFERED"] = "1"
    launch = ["--accelerator", args.accelerator]
    variants = {
        "sequential": ([*launch], base),
        "sequential_1_thread": ([*launch], {**base, "OMP_NUM_THREADS": "1"}),
        "parallel": ([*launch, "--parallel", str(args.parallel)], base),
    }
    walls: dict[str, list[float]] = {k: [] for k in variants}
    same = []
    with tempfile.TemporaryDirectory(prefix="fer-parallel-") as tmp:
        work = Path(tmp)
        suite = work / "suite.yaml"
        suite.write_text(suite_text(args.jobs, args.epochs, args.per_class))
        for r in range(args.repeats):
            csvs = {}
            for name, (extra, env) in variants.items():
                wall, csv = run_variant(suite, work / f"r{r}", name, extra, env)
                walls[name].append(wall)
                csvs[name] = pd.read_csv(csv).set_index("job").sort_index()
            cols = ["war", "uar", "nll"]
            same.append(bool(csvs["parallel"][cols].equals(csvs["sequential_1_thread"][cols])))
    med = {k: statistics.median(v) for k, v in walls.items()}
    out = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, Python {platform.python_version()}",
        "suite": f"{args.jobs} jobs: resnet18_pretrained, synthetic-static 48 px, {args.per_class} train images/class, "
                 f"{args.epochs} epochs, batch 16",
        "parallel": args.parallel, "accelerator": args.accelerator, "repeats": args.repeats,
        "wall_s": {k: [round(x, 1) for x in v] for k, v in walls.items()},
        "median_wall_s": {k: round(v, 1) for k, v in med.items()},
        "speedup_parallel_over_sequential": round(med["sequential"] / med["parallel"], 2),
        "speedup_parallel_over_sequential_1_thread": round(med["sequential_1_thread"] / med["parallel"], 2),
        "parallel_metrics_equal_sequential_1_thread": all(same),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['machine']}; {out['suite']}; {args.repeats} repeats, interleaved")
    for k in variants:
        print(f"  {k:22s} median {med[k]:6.1f} s  ({', '.join(f'{x:.1f}' for x in walls[k])})")
    print(f"  sequential / parallel {args.parallel}:          {out['speedup_parallel_over_sequential']:.2f}x")
    print(f"  sequential 1 thread / parallel {args.parallel}: {out['speedup_parallel_over_sequential_1_thread']:.2f}x")
    print(f"  parallel rows' metrics equal the sequential 1-thread ones: {'yes' if all(same) else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
