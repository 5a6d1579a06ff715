"""Writer of synthetic FERV39K trees: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/`` + ``4_setups``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.classes import CANONICAL_CLASSES
from fer_bench.data.ferv39k import FERV39K_TO_CANONICAL, FRAMES_DIR, SETUPS_DIR
from fer_bench.data.io import write_frame_folder
from fer_bench.errors import UserError
from fer_bench.synth import SynthLayout
from fer_bench.synth.samples import resample_clip, variable_length_clips

#: scene names of the synthetic tree (a few of the 22; real names are not needed).
SYNTH_SCENES: tuple[str, ...] = ("Action", "Crime", "Daily-Life")


def write(root: str | Path, *, per_class: int = 10, seed: int = 0, size: int = 64, min_frames: int = 8,
          max_frames: int = 24, test_fraction: float = 0.2, scenes: int = 3, **options: Any) -> SynthLayout:
    """Synthetic FERV39K in the exact layout.

    ``7 * per_class`` clips spread round-robin over ``scenes`` scene folders (of
    :data:`SYNTH_SCENES`), numbered ``0001``... per scene and emotion; frames named
    ``1.jpg``, ``2.jpg``, ... without zero padding (so that readers must sort them
    naturally), ``min_frames..max_frames`` per clip as in the DFEW writer; per class,
    ``round(test_fraction * per_class)`` clips go to ``test_All.csv`` (FERV39K's split is
    about 80/20: 31,088 / 7,847), the rest to ``train_All.csv``.
    """
    if options:
        raise UserError(f"unknown ferv39k synth option(s): {', '.join(sorted(options))}")
    if not 1 <= int(scenes) <= len(SYNTH_SCENES):
        raise UserError(f"scenes must be 1..{len(SYNTH_SCENES)}, got {scenes}")
    clips, labels, lengths, rng = variable_length_clips(per_class, seed=seed, size=size, min_frames=min_frames,
                                                        max_frames=max_frames, tag=0x39C)
    n = len(labels)
    is_test = np.zeros(n, bool)
    for c in range(len(CANONICAL_CLASSES)):
        pos = rng.permutation(np.flatnonzero(labels == c))
        is_test[pos[: int(round(float(test_fraction) * len(pos)))]] = True
    root_p = Path(root)
    counters: dict[tuple[str, str], int] = {}
    lines: dict[bool, list[str]] = {False: [], True: []}
    canon_to_name = {v: k for k, v in FERV39K_TO_CANONICAL.items()}
    frame_files = []
    for i in range(n):
        scene = SYNTH_SCENES[i % int(scenes)]
        emo = canon_to_name[int(labels[i])]
        counters[(scene, emo)] = counters.get((scene, emo), 0) + 1
        rel = f"{scene}/{emo}/{counters[(scene, emo)]:04d}"
        frames = resample_clip(clips[i], lengths[i])
        frame_files += write_frame_folder(root_p / FRAMES_DIR / rel, frames, name=lambda k: f"{k}.jpg")
        lines[bool(is_test[i])].append(f"{rel} {emo}\n")
    (root_p / SETUPS_DIR).mkdir(parents=True, exist_ok=True)
    (root_p / SETUPS_DIR / "train_All.csv").write_text("".join(lines[False]), newline="\n")
    (root_p / SETUPS_DIR / "test_All.csv").write_text("".join(lines[True]), newline="\n")
    return SynthLayout(root_p, [root_p / SETUPS_DIR / "train_All.csv", root_p / SETUPS_DIR / "test_All.csv"],
                       frame_files)
