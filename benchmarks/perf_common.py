"""What the performance benchmarks (``benchmarks/perf.py``) share: the synthetic data, the log and the timing.

Data are written with the datasets' ``synth`` writers into a temporary folder (:func:`make_data`).
A throughput is taken from timestamps at the end of each batch (:func:`steady_rate`), with
CUDA synchronised at every timestamp (:func:`sync`), so that the two sides of a ratio are
timed alike.  Importing this module puts the repository on ``sys.path``, so the scripts
run as ``python benchmarks/perf.py`` without an install.
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402,F401  (before decord: see fer_bench.data.video)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_data(tmp: Path, need_dynamic: bool) -> dict[str, Path]:
    """The FER2013 csv (and, with ``need_dynamic``, the DFEW release tree) the benchmarks read; their roots by dataset."""
    from fer_bench.synth import write_layout

    roots = {"fer2013": tmp / "fer2013"}
    log("writing FER2013 csv (synthetic, 48x48 grey)")
    write_layout("fer2013", str(roots["fer2013"]), per_class=110, layout="csv")
    if need_dynamic:
        roots["dfew"] = tmp / "dfew"
        log("writing DFEW release layout (synthetic, 112x112, mp4 + frame folders, 24-48 frames/clip)")
        write_layout("dfew", str(roots["dfew"]), per_class=7, layout="release", size=112, min_frames=24, max_frames=48)
    return roots


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
