"""Data-pipeline performance figures (``make bench-perf``; ``--json`` prints them as JSON).

Every figure is a ratio of two throughputs measured in the same run, repeated and
interleaved (the median is reported), so that the machine's speed and load cancel.  Each
benchmark is one module next to this one, whose docstring says what it divides by what:

pipeline efficiency
    ``perf_pipeline``: training samples/s of :func:`fer_bench.train.run` over a bare PyTorch loop
    on the same batches in memory.
video loading
    ``perf_video``: clips/s of the DFEW DataModule's training loader (mp4 and frame folders,
    without and with the clip cache) over raw decord decoding.
evaluation
    ``perf_eval``: test-set samples/s of the pipeline case's ``trainer.test`` over model-only
    forward on the same batches.
memory
    ``perf_memory``: peak RSS of indexing a 290,000-row AffectNet ``training.csv`` and of one
    FER2013 training epoch, each in a fresh subprocess.

This file parses the flags, writes the data (``perf_common``: the datasets' ``synth`` writers,
into a temporary folder), runs the benchmarks not ``--skip``-ped and prints the table (or
``--json``).  On CPU the dynamic models are slow, so they run batch 4 and few steps;
``--methods``, ``--steps``, ``--repeats`` change that.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from perf_common import make_data
from perf_memory import memory
from perf_pipeline import TARGETS, pipeline
from perf_video import video_loading


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), model)
    import lightning

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model, "arch": platform.machine(), "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
        "lightning": lightning.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_start": list(os.getloadavg()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print every figure as JSON on stdout")
    p.add_argument("--methods", default="all",
                   help="comma-separated methods (default: every registered method, the targets resnet18_pretrained and "
                        "resnet18_lstm first)")
    p.add_argument("--dynamic-sources", default="mp4,frames", help="DFEW sources for resnet18_lstm")
    p.add_argument("--steps", type=int, help="timed batches per case (overrides the per-case default)")
    p.add_argument("--repeats", type=int, help="repeats per case (overrides the per-case default)")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the machine default)")
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"],
                   help="device of both sides (the bare loop follows the run's device and precision)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--precision", default="32-true", help="e.g. bf16-mixed (autocast on both sides)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: pipeline,video,memory")
    p.add_argument("--keep", metavar="DIR", help="write the data here and keep it (default: a temporary folder)")
    args = p.parse_args(argv)

    from fer_bench.data.base import default_num_workers
    from fer_bench.methods import METHODS

    skip = set(filter(None, args.skip.split(",")))
    names = ([*TARGETS, *(n for n in METHODS if n not in TARGETS)] if args.methods == "all"
             else args.methods.split(","))
    info = machine()
    info["num_workers"] = default_num_workers() if args.num_workers is None else args.num_workers
    extra = {"precision": args.precision, "channels_last": args.channels_last, "accelerator": args.accelerator}
    need_dynamic = "video" not in skip or any(METHODS.get(n).modality == "dynamic" for n in names)
    tmp_ctx = contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="fer-perf-")
    figures: dict[str, Any] = {"machine": info, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    t_all = time.perf_counter()
    with tmp_ctx as tmp_s:
        tmp = Path(tmp_s)
        tmp.mkdir(parents=True, exist_ok=True)
        roots = make_data(tmp, need_dynamic)
        if "pipeline" not in skip:
            figures["pipeline"] = pipeline(names, roots, tmp, args.dynamic_sources.split(","), args.steps, args.repeats,
                                           args.num_workers, extra)
        if "video" not in skip:
            figures["video_loading"] = video_loading(roots, tmp, args.num_workers, repeats=3)
        if "memory" not in skip:
            figures["memory"] = memory(roots, tmp, args.num_workers)
    info["loadavg_end"] = list(os.getloadavg())
    info["seconds"] = time.perf_counter() - t_all
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    return 0


def print_table(f: dict[str, Any]) -> None:
    m = f["machine"]
    print(f"machine: {m['cpu']} ({m['arch']}, {m['usable_cpus']} CPUs, torch {m['torch']} x{m['torch_threads']} threads,"
          f" Python {m['python']}), {m['date']}, load average {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f},"
          f" num_workers {m['num_workers']}, {m['seconds']:.0f} s")
    if "pipeline" in f:
        print(f"\n{'case':34s} {'trainer sps':>12s} {'bare sps':>9s} {'pipeline':>9s} {'test sps':>9s} {'fwd sps':>8s} "
              f"{'eval':>6s}")
        for c in f["pipeline"]:
            r = c["runs"]
            med = lambda k, r=r: statistics.median(x[k] for x in r)  # noqa: E731
            print(f"{c['case']:34s} {med('trainer_train_sps'):12.1f} {med('bare_train_sps'):9.1f} "
                  f"{c['pipeline_efficiency']:9.3f} {med('trainer_test_sps'):9.1f} {med('bare_forward_sps'):8.1f} "
                  f"{c['evaluation']:6.3f}")
    if "video_loading" in f:
        v = f["video_loading"]
        print(f"\nvideo loading ({v['clips']} clips, {v['frames_per_clip']} frames, {v['size']}px; ratio to raw decord):")
        for s in ("mp4", "frames"):
            x = v[s]
            print(f"  {s:7s} loader {x['datamodule_clips_per_s']:6.1f} clips/s ({x['ratio']:.3f}), with clip cache "
                  f"{x['datamodule_cached_clips_per_s']:6.1f} ({x['ratio_cached']:.3f}), raw decord "
                  f"{x['raw_decord_clips_per_s']:6.1f}; cache {x['cache_mb']:.1f} MB")
    if "memory" in f:
        a, e = f["memory"]["affectnet_index_290k"], f["memory"]["fer2013_train_epoch"]
        print(f"\nmemory: AffectNet 290k-row index peak RSS {a['peak_rss_mib']:.0f} MiB (+{a['increase_mib']:.0f} MiB "
              f"over imports, {a['seconds']:.1f} s); FER2013 training epoch peak RSS {e['peak_rss_mib']:.0f} MiB "
              f"(+{e['increase_mib']:.0f} MiB)")


if __name__ == "__main__":
    raise SystemExit(main())
