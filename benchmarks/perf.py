"""Data-pipeline performance figures (``make bench-perf``; ``--json`` prints them as JSON).

Every figure is a ratio of two throughputs measured in the same run, repeated and
interleaved (the median is reported), so that the machine's speed and load cancel:

pipeline efficiency
    training samples/s of the real path -- :func:`fer_bench.train.run` (Lightning Trainer,
    the dataset's DataModule reading the synthetic tree from disk, CSV logging and
    checkpointing on) -- divided by the samples/s of a bare PyTorch loop (forward, loss,
    backward, optimiser step) running a model built the same way on the same batches already
    in memory.  Steady state: ``--warmup`` batches skipped, ``--steps`` batches timed in both.
video loading
    clips/s of the DFEW DataModule's training loader (16 frames, 112x112, transforms
    included, no model) from mp4 and from frame folders, without and with the clip cache
    (second pass, cache built), divided by raw decord decoding (open + ``get_batch``) of the
    same frame indices of the same clips' mp4s.
evaluation
    test-set samples/s of the ``trainer.test`` of that run divided by model-only forward
    samples/s (``inference_mode``) on the same test batches in memory.
memory
    peak RSS (a fresh subprocess, ``VmHWM``) of indexing a 290,000-row AffectNet
    ``training.csv`` (synthetic, the release's columns), and of one training-loader epoch
    over a full-size (35,887-row) FER2013 csv.

Data are written with the datasets' ``synth`` writers into a temporary folder.  On CPU the
dynamic models are slow (resnet18_lstm at 16x3x112x112 trains at ~3 clips/s on 2 cores), so
they run batch 4 and few steps; ``--methods``, ``--steps``, ``--repeats`` change that.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402,F401  (before decord: see fer_bench.data.video)
import numpy as np  # noqa: E402
import torch  # noqa: E402

# batch size, warm-up batches, timed batches, repeats.  The targets (resnet18_pretrained on FER2013,
# resnet18_lstm on DFEW mp4 and frames) get repeats; every other method one short pass.
TARGET_STATIC = dict(batch=32, warmup=3, steps=15, repeats=4)
TARGET_DYNAMIC = dict(batch=4, warmup=2, steps=6, repeats=3)
OTHER_STATIC = dict(batch=8, warmup=2, steps=6, repeats=1)
OTHER_DYNAMIC = dict(batch=2, warmup=1, steps=3, repeats=1)
TARGETS = ("resnet18_pretrained", "resnet18_lstm")
# the static target at the workload of the former resnet18 row (48 px grey), so that its figures compare with the
# earlier entries of benchmarks/RESULTS.md; every other method at its recipe's input size
TARGET_INPUT = {"resnet18_pretrained": (48, 1)}


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_data(tmp: Path, need_dynamic: bool) -> dict[str, Path]:
    from fer_bench.synth import write_layout

    roots = {"fer2013": tmp / "fer2013"}
    log("writing FER2013 csv (synthetic, 48x48 grey)")
    write_layout("fer2013", str(roots["fer2013"]), per_class=110, layout="csv")
    if need_dynamic:
        roots["dfew"] = tmp / "dfew"
        log("writing DFEW release layout (synthetic, 112x112, mp4 + frame folders, 24-48 frames/clip)")
        write_layout("dfew", str(roots["dfew"]), per_class=7, layout="release", size=112, min_frames=24, max_frames=48)
    return roots


def case_config(method: str, modality: str, input_size: int, roots: dict[str, Path], source: str | None,
                out: Path, plan: dict, num_workers: int | None, extra: dict, in_chans: int | None = None):
    from fer_bench.train import TrainConfig

    # the smallest tree that gives warmup + steps training batches (7 classes); val/test shrink alike
    limit = -(-(plan["warmup"] + plan["steps"]) * plan["batch"] // 7) + 1
    kw: dict[str, Any] = dict(method=method, seed=0, max_epochs=1, batch_size=plan["batch"], progress=False,
                              out=str(out), num_workers=num_workers, logger="csv", limit_per_class=limit,
                              input_size=input_size, in_chans=in_chans, **extra)
    if modality == "static":
        return TrainConfig(dataset="fer2013", root=str(roots["fer2013"]), data_args={"layout": "csv"}, **kw)
    return TrainConfig(dataset="dfew", root=str(roots["dfew"]), fold=1,
                       data_args={"layout": "release", "source": source}, **kw)


# --------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------
def steady_rate(marks: list[tuple[float, int]], warmup: int, steps: int) -> float:
    """samples/s over batches ``warmup .. warmup + steps`` (``marks``: end time and size of each
    batch): the median batch size over the median batch interval.  Medians, not the total time,
    so that a burst of load from another process on the machine moves the figure little."""
    if len(marks) < warmup + steps or steps < 1:
        raise RuntimeError(f"only {len(marks)} batches, need {warmup + steps}")
    lo = max(warmup, 1)
    times = [t for t, _ in marks[lo - 1:warmup + steps]]
    sizes = [b for _, b in marks[lo:warmup + steps]]
    return statistics.median(sizes) / statistics.median(np.diff(times))


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def bare_context(cfg):
    """(device, autocast context factory) matching the run's accelerator and precision."""
    from fer_bench.train import uses_cuda

    device = torch.device("cuda" if uses_cuda(cfg.accelerator) else "cpu")
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(cfg.precision)
    if dtype is None:
        return device, contextlib.nullcontext
    return device, lambda: torch.autocast(device.type, dtype=dtype)


def to_device(x: torch.Tensor, device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def make_timer():
    import lightning as L

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.train: list[tuple[float, int]] = []
            self.test: list[tuple[float, int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 0:
                sync()
                self.train.append((time.perf_counter(), len(batch[0])))

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            sync()
            self.test.append((time.perf_counter(), len(batch[0])))

    return Timer()


@contextlib.contextmanager
def quiet():
    """Lightning's banners and warnings off; the figures go to stdout."""
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def trainer_rates(cfg, plan: dict) -> tuple[float, float, int]:
    """(train samples/s, test samples/s, test batches) of the real ``fer_bench.train.run``."""
    from fer_bench.train import run

    timer = make_timer()
    with quiet():
        run(cfg, callbacks=[timer])
    train = steady_rate(timer.train, plan["warmup"], plan["steps"])
    tw = 1 if len(timer.test) > 2 else 0
    test = steady_rate(timer.test, tw, len(timer.test) - tw) if len(timer.test) > tw else float("nan")
    return train, test, len(timer.test)


def preload(cfg, plan: dict):
    """(model, first warmup+steps training batches, test batches) in memory, built as ``run`` builds."""
    import lightning as L

    from fer_bench.train import build

    with quiet():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        dm, model = build(cfg)
        dm.setup("fit")
        batches = []
        for b in dm.train_dataloader():
            batches.append((b[0], b[1]))
            if len(batches) == plan["warmup"] + plan["steps"]:
                break
        test = [b[0] for b in dm.test_dataloader()]
    return model, batches, test


def bare_train_rate(model, batches, plan: dict, cfg) -> float:
    opt = model.configure_optimizers()  # an optimiser, {"optimizer": ...} or ([optimisers], [schedulers])
    while not isinstance(opt, torch.optim.Optimizer):
        opt = opt["optimizer"] if isinstance(opt, dict) else opt[0]
    device, autocast = bare_context(cfg)
    model.to(device).train()
    batches = [(to_device(x, device, cfg.channels_last), y.to(device)) for x, y in batches]
    marks = []
    for x, y in batches:
        with autocast():
            out = model.training_outputs(x, y)
            loss, _ = model.compute_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        marks.append((time.perf_counter(), len(x)))
    return steady_rate(marks, plan["warmup"], plan["steps"])


def bare_forward_rate(model, xs: list[torch.Tensor], cfg) -> float:
    device, autocast = bare_context(cfg)
    model.to(device).eval()
    xs = [to_device(x, device, cfg.channels_last) for x in xs]
    marks = []
    with torch.inference_mode(), autocast():
        for x in xs:
            model(x)
            sync()
            marks.append((time.perf_counter(), len(x)))
    w = 1 if len(marks) > 2 else 0
    return steady_rate(marks, w, len(marks) - w)


def pipeline_case(name: str, method: str, modality: str, input_size: int, roots, source, tmp: Path,
                  plan: dict, num_workers, extra: dict, in_chans: int | None = None) -> dict[str, Any]:
    ratios, ev, rows = [], [], []
    for r in range(plan["repeats"]):
        out = tmp / "runs" / f"{name}-{r}"
        cfg = case_config(method, modality, input_size, roots, source, out, plan, num_workers, extra, in_chans)

        def bare(cfg=cfg):
            model, batches, test = preload(cfg, plan)
            return bare_train_rate(model, batches, plan, cfg), bare_forward_rate(model, test, cfg)

        if r % 2 == 0:  # interleave: alternate which side runs first
            (b_train, b_fwd), (t_train, t_test, _) = bare(), trainer_rates(cfg, plan)
        else:
            (t_train, t_test, _), (b_train, b_fwd) = trainer_rates(cfg, plan), bare()
        shutil.rmtree(out, ignore_errors=True)
        ratios.append(t_train / b_train)
        ev.append(t_test / b_fwd)
        rows.append({"trainer_train_sps": t_train, "bare_train_sps": b_train, "trainer_test_sps": t_test,
                     "bare_forward_sps": b_fwd})
        log(f"{name} repeat {r}: train {t_train:.1f} vs bare {b_train:.1f} samples/s (ratio {ratios[-1]:.3f}); "
            f"test {t_test:.1f} vs forward {b_fwd:.1f} (ratio {ev[-1]:.3f})")
    return {"case": name, "method": method, "source": source or "fer2013 csv", "input_size": input_size,
            "batch_size": plan["batch"], "warmup": plan["warmup"], "steps": plan["steps"], "repeats": plan["repeats"],
            "pipeline_efficiency": statistics.median(ratios), "evaluation": statistics.median(ev),
            "pipeline_efficiency_all": ratios, "evaluation_all": ev, "runs": rows}


# --------------------------------------------------------------------------------------
# video loading
# --------------------------------------------------------------------------------------
def video_loading(roots, tmp: Path, num_workers, repeats: int) -> dict[str, Any]:
    import decord

    from fer_bench.data.dfew import DFEW
    from fer_bench.data.video import sample_indices

    def dm_for(source: str, cache: str | None):
        dm = DFEW(str(roots["dfew"]), fold=1, layout="release", source=source, batch_size=4,
                  num_workers=num_workers, input_size=112, in_chans=3, clip_cache=cache)
        dm.setup("fit")
        return dm

    def loader_rate(dm) -> float:
        t0 = time.perf_counter()
        n = sum(len(b[0]) for b in dm.train_dataloader())
        return n / (time.perf_counter() - t0)

    mp4_sources = dm_for("mp4", None).splits["train"].base.sources

    def raw_rate() -> float:
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for s in mp4_sources:
            vr = decord.VideoReader(s, ctx=decord.cpu(0), num_threads=1)
            vr.get_batch(sample_indices(len(vr), 16, train=True, rng=rng).tolist()).asnumpy()
            del vr
        return len(mp4_sources) / (time.perf_counter() - t0)

    out: dict[str, Any] = {"clips": len(mp4_sources), "frames": 16, "size": 112}
    for source in ("mp4", "frames"):
        cache_dir = tmp / f"clipcache-{source}"
        res: dict[str, list[float]] = {"uncached": [], "cached": [], "raw": []}
        build_rate = None
        for r in range(repeats):
            res["raw"].append(raw_rate())
            res["uncached"].append(loader_rate(dm_for(source, None)))
            dm = dm_for(source, str(cache_dir))
            first = loader_rate(dm)  # builds the cache on the first repeat
            if r == 0:
                build_rate = first
            res["cached"].append(loader_rate(dm))
        raw = statistics.median(res["raw"])
        out[source] = {
            "raw_decord_clips_per_s": raw,
            "datamodule_clips_per_s": statistics.median(res["uncached"]),
            "datamodule_cached_clips_per_s": statistics.median(res["cached"]),
            "cache_build_epoch_clips_per_s": build_rate,
            "ratio": statistics.median(u / w for u, w in zip(res["uncached"], res["raw"])),
            "ratio_cached": statistics.median(c / w for c, w in zip(res["cached"], res["raw"])),
            "cache_mb": sum(p.stat().st_size for p in cache_dir.rglob("*.npy")) / 2 ** 20,
        }
        log(f"video {source}: loader {out[source]['datamodule_clips_per_s']:.1f} clips/s, cached "
            f"{out[source]['datamodule_cached_clips_per_s']:.1f}, raw decord {raw:.1f} "
            f"(ratios {out[source]['ratio']:.3f} / {out[source]['ratio_cached']:.3f})")
    return out


# --------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------
_RSS = """
import sys, time
sys.path.insert(0, {repo!r})


def hwm():  # peak RSS of this process in KiB (VmHWM: reset by exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])


import cv2, numpy, torch
{imports}
base = hwm()
t0 = time.perf_counter()
{body}
peak = hwm()
print(base, peak, time.perf_counter() - t0, {extra})
"""


def rss_subprocess(imports: str, body: str, extra: str = "0") -> dict[str, float]:
    code = _RSS.format(repo=str(REPO), imports=imports, body=textwrap.indent(textwrap.dedent(body), ""), extra=extra)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    base, peak, secs, extra_v = proc.stdout.strip().splitlines()[-1].split()
    return {"peak_rss_mib": int(peak) / 1024, "after_imports_rss_mib": int(base) / 1024,
            "increase_mib": (int(peak) - int(base)) / 1024, "seconds": float(secs), "extra": float(extra_v)}


def write_affectnet_290k(root: Path, rows: int = 290_000) -> Path:
    import hashlib

    from fer_bench.data.affectnet import LISTS_DIR, TRAIN_CSV
    from fer_bench.synth import write_layout

    write_layout("affectnet", str(root), per_class=2, layout="csv")
    path = root / LISTS_DIR / TRAIN_CSV
    lines = path.read_text().splitlines()
    header, body = lines[0], lines[1:]
    with open(path, "w") as f:
        f.write(header + "\n")
        for k in range(rows):
            fields = body[k % len(body)].split(",", 1)
            rel = f"{1 + k % 1000}/{hashlib.sha224(str(k).encode()).hexdigest()}.jpg"
            f.write(rel + "," + fields[1] + "\n")
    return path


def write_fer2013_full(src: Path, dst: Path, rows: int = 35_887) -> None:
    """A full-size fer2013.csv: the synthetic rows tiled (Training / PublicTest / PrivateTest as the real file)."""
    lines = (src / "fer2013.csv").read_text().splitlines()
    by_usage: dict[str, list[str]] = {}
    for l in lines[1:]:
        by_usage.setdefault(l.rsplit(",", 1)[1], []).append(l)
    counts = {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "fer2013.csv", "w") as f:
        f.write(lines[0] + "\n")
        for usage, n in counts.items():
            rows_u = by_usage[usage]
            for k in range(n):
                f.write(rows_u[k % len(rows_u)] + "\n")


def memory(roots, tmp: Path, num_workers) -> dict[str, Any]:
    log("memory: writing a 290,000-row AffectNet training.csv")
    aff = tmp / "affectnet"
    csv_path = write_affectnet_290k(aff)
    a = rss_subprocess(
        "from fer_bench.data.affectnet import AffectNet",
        f"dm = AffectNet({str(aff)!r}, cache_images='off', num_workers=0)\ndm.setup('fit')",
        extra="len(dm.splits['train']) + len(dm.splits['val'])",
    )
    a["rows"] = 290_000
    a["csv_mb"] = csv_path.stat().st_size / 2 ** 20
    log(f"memory: AffectNet 290k index peak RSS {a['peak_rss_mib']:.0f} MiB (+{a['increase_mib']:.0f} over imports)")
    full = tmp / "fer2013_full"
    write_fer2013_full(roots["fer2013"], full)
    f = rss_subprocess(
        "from fer_bench.data.fer2013 import FER2013",
        f"dm = FER2013({str(full)!r}, batch_size=64, num_workers={num_workers!r})\ndm.setup('fit')\n"
        "n = sum(len(b[0]) for b in dm.train_dataloader())",
        extra="n",
    )
    f["rows"] = 35_887
    log(f"memory: FER2013 epoch ({int(f['extra'])} samples) peak RSS {f['peak_rss_mib']:.0f} MiB")
    return {"affectnet_index_290k": a, "fer2013_train_epoch": f}


# --------------------------------------------------------------------------------------
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
            cases = []
            for n in names:
                cls = METHODS.get(n)
                size, chans = TARGET_INPUT.get(n, (cls.default_input_size, None))
                if cls.modality == "static":
                    plan = dict(TARGET_STATIC if n in TARGETS else OTHER_STATIC)
                    sources = [None]
                else:
                    plan = dict(TARGET_DYNAMIC if n in TARGETS else OTHER_DYNAMIC)
                    sources = args.dynamic_sources.split(",") if n in TARGETS else ["frames"]
                if args.steps:
                    plan["steps"] = args.steps
                if args.repeats:
                    plan["repeats"] = args.repeats
                for src in sources:
                    name = n + (f"/dfew-{src}" if src else "/fer2013")
                    log(f"pipeline: {name} ({size}px, batch {plan['batch']}, {plan['steps']} steps x "
                        f"{plan['repeats']})")
                    cases.append(pipeline_case(name, n, cls.modality, size, roots, src, tmp, plan,
                                               args.num_workers, extra, chans))
            figures["pipeline"] = cases
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
        print(f"\nvideo loading ({v['clips']} clips, {v['frames']} frames, {v['size']}px; ratio to raw decord):")
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
