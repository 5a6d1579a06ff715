"""Video-loading figure of ``benchmarks/perf.py``.

video loading
    clips/s of the DFEW DataModule's training loader (16 frames, 112x112, transforms
    included, no model) from mp4 and from frame folders, without and with the clip cache
    (second pass, cache built), divided by raw decord decoding (open + ``get_batch``) of the
    same frame indices of the same clips' mp4s.  Repeats interleave the three; medians.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from perf_common import log


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

    out: dict[str, Any] = {"clips": len(mp4_sources), "frames_per_clip": 16, "size": 112}
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
