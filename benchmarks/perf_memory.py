"""Memory figure of ``benchmarks/perf.py``.

memory
    peak RSS (a fresh subprocess, ``VmHWM``) of indexing a 290,000-row AffectNet
    ``training.csv`` (synthetic, the release's columns), and of one training-loader epoch
    over a full-size (35,887-row) FER2013 csv.

:func:`memory` writes the two files and measures each in a fresh process running this file
(``python benchmarks/perf_memory.py CASE ROOT NUM_WORKERS``, :func:`main`): after the imports
(cv2, numpy, torch -- through ``perf_common`` -- and the dataset's module) it reads ``VmHWM``,
runs the case, reads it again and prints ``base_kib peak_kib seconds extra`` on one line.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from perf_common import log


# --------------------------------------------------------------------------------------
# the measured process
# --------------------------------------------------------------------------------------
def hwm() -> int:
    """Peak RSS of this process in KiB (VmHWM: reset by exec, unlike ru_maxrss)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def affectnet_index(cls, root: str, num_workers: int | None) -> int:
    """``AffectNet.setup('fit')``: the training and validation rows kept."""
    dm = cls(root, cache_images="off", num_workers=0)
    dm.setup("fit")
    return len(dm.splits["train"]) + len(dm.splits["val"])


def fer2013_epoch(cls, root: str, num_workers: int | None) -> int:
    """``FER2013.setup('fit')`` and one training-loader epoch: the samples loaded."""
    dm = cls(root, batch_size=64, num_workers=num_workers)
    dm.setup("fit")
    return sum(len(b[0]) for b in dm.train_dataloader())


# case: (module, DataModule class, what is measured)
CASES = {
    "affectnet_index": ("fer_bench.data.affectnet", "AffectNet", affectnet_index),
    "fer2013_epoch": ("fer_bench.data.fer2013", "FER2013", fer2013_epoch),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="measure one memory case in this process (run by perf.py)")
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("root")
    p.add_argument("num_workers", help="an integer or None")
    args = p.parse_args(argv)
    module, name, body = CASES[args.case]
    cls = getattr(importlib.import_module(module), name)
    base = hwm()
    t0 = time.perf_counter()
    extra = body(cls, args.root, None if args.num_workers == "None" else int(args.num_workers))
    peak = hwm()
    print(base, peak, time.perf_counter() - t0, extra)
    return 0


# --------------------------------------------------------------------------------------
# the measuring process
# --------------------------------------------------------------------------------------
def rss_subprocess(case: str, root: Path, num_workers: int | None) -> dict[str, float]:
    """Run ``case`` on ``root`` in a fresh process (this file); its peak RSS, RSS after imports, time and extra."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(Path(__file__).resolve()), case, str(root), str(num_workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    base, peak, secs, extra_v = proc.stdout.strip().splitlines()[-1].split()
    return {"peak_rss_mib": int(peak) / 1024, "after_imports_rss_mib": int(base) / 1024,
            "increase_mib": (int(peak) - int(base)) / 1024, "seconds": float(secs), "extra": float(extra_v)}


def write_affectnet_290k(root: Path, rows: int = 290_000) -> Path:
    """An AffectNet tree whose ``training.csv`` has ``rows`` rows (the synthetic rows tiled, distinct file names)."""
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
    a = rss_subprocess("affectnet_index", aff, num_workers)
    a["rows"] = 290_000
    a["csv_mb"] = csv_path.stat().st_size / 2 ** 20
    log(f"memory: AffectNet 290k index peak RSS {a['peak_rss_mib']:.0f} MiB (+{a['increase_mib']:.0f} over imports)")
    full = tmp / "fer2013_full"
    write_fer2013_full(roots["fer2013"], full)
    f = rss_subprocess("fer2013_epoch", full, num_workers)
    f["rows"] = 35_887
    log(f"memory: FER2013 epoch ({int(f['extra'])} samples) peak RSS {f['peak_rss_mib']:.0f} MiB")
    return {"affectnet_index_290k": a, "fer2013_train_epoch": f}


if __name__ == "__main__":
    raise SystemExit(main())
