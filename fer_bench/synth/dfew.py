"""Writer of synthetic DFEW trees: the ``affine`` frames layout or the public ``release`` layout."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.dfew import AFFINE_DIR, CANONICAL_TO_DFEW, FOLDS, RELEASE_FRAMES, RELEASE_SPLITS, RELEASE_VIDEOS
from fer_bench.data.io import write_frame_folder, write_mp4
from fer_bench.errors import UserError, verify_choice
from fer_bench.synth import SynthLayout
from fer_bench.synth.samples import resample_clip, variable_length_clips


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, layout: str = "affine", size: int = 64,
          min_frames: int = 8, max_frames: int = 24, mp4: bool = True, **options: Any) -> SynthLayout:
    """Synthetic DFEW in the exact ``affine`` or ``release`` layout.

    ``7 * per_class`` clips named ``00001``... in shuffled class order, RGB ``size`` px,
    ``min_frames..max_frames`` frames each (a clip of ``L`` frames keeps the frames
    ``round(linspace(0, max_frames-1, L))`` of a neutral -> apex synthetic clip, so short
    clips still reach their apex); each clip is in exactly one fold's test file
    (round-robin over a per-class shuffle: per class, fold test sets differ by at most one)
    and in the other four folds' train files.  The release layout also writes
    ``Clip/original/<00001>.mp4`` (mp4v) unless ``mp4=False``.  ``label_files`` list fold 1's
    train and test files first; ``sample_files`` are the frame files (then the mp4 files).
    """
    if options:
        raise UserError(f"unknown dfew synth option(s): {', '.join(sorted(options))}")
    verify_choice(layout, "layout", ("affine", "release"), where="dfew synth")
    clips, labels, lengths, rng = variable_length_clips(per_class, seed=seed, size=size, min_frames=min_frames,
                                                        max_frames=max_frames, tag=0xDFE)
    n = len(labels)
    folds = np.empty(n, np.int64)
    for c in range(len(CANONICAL_CLASSES)):
        pos = rng.permutation(np.flatnonzero(labels == c))
        folds[pos] = (np.arange(len(pos)) + int(rng.integers(len(FOLDS)))) % len(FOLDS) + 1
    root_p = Path(root)
    if layout == "affine":
        frame_dir = root_p / AFFINE_DIR / "data"
        label_files = {k: (root_p / AFFINE_DIR / "label" / f"single_trainset_{k}.csv",
                           root_p / AFFINE_DIR / "label" / f"single_testset_{k}.csv") for k in FOLDS}
    else:
        frame_dir = root_p / RELEASE_FRAMES
        label_files = {k: (root_p / RELEASE_SPLITS / "train(single-labeled)" / f"set_{k}.csv",
                           root_p / RELEASE_SPLITS / "test(single-labeled)" / f"set_{k}.csv") for k in FOLDS}
    frame_files, videos = [], []
    for i in range(n):
        name = f"{i + 1:05d}"
        frames = resample_clip(clips[i], lengths[i])
        frame_files += write_frame_folder(frame_dir / name, frames, name=lambda k, p=name: f"{p}_{k:05d}.jpg")
        if layout == "release" and mp4:
            videos.append(write_mp4(root_p / RELEASE_VIDEOS / f"{name}.mp4", frames))
    codes = [CANONICAL_TO_DFEW[int(c)] for c in labels]
    for k, (train_csv, test_csv) in label_files.items():
        for path, keep in ((train_csv, folds != k), (test_csv, folds == k)):
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = "".join(f"{i + 1},{codes[i]}\n" for i in np.flatnonzero(keep))
            path.write_text("video_name,label\n" + rows, newline="\n")
    return SynthLayout(root_p, [p for k in FOLDS for p in label_files[k]], frame_files + videos)
