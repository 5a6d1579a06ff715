"""Temporal sampling of clips: which ``frames`` of an ``n``-frame clip a sample is made of.

One function, :func:`sample_indices`, for every clip dataset and for the clip cache, with the
rules the FER literature uses (see the function): fer_bench's segment sampling and the uniform
test frames of the DFEW protocol (Jiang et al., ACM MM 2020), the official IAL code's (Li et al.,
AAAI 2023, ``dataset_DFEW.py``: segments of ``n // 16`` frames, segment centres) and the official
DFEW baseline code's (``DFEW_Dataset.py``: distinct random frames sorted, ``linspace``
truncated, short clips looped).
"""
from __future__ import annotations

import numpy as np

from fer_bench.errors import verify_choice

EVAL_FRAMES: tuple[str, ...] = ("linspace", "linspace-floor", "segment-centre")
TRAIN_FRAMES: tuple[str, ...] = ("segment", "segment-tsn", "random-sorted")
SHORT_CLIPS: tuple[str, ...] = ("repeat", "drop", "loop")


def _repeat_short(n: int, s: int) -> np.ndarray:
    """Every frame of a clip shorter than ``s``, in order, repeated: segment ``k`` takes frame
    ``floor(k n / s)`` (``n=5, s=16``: ``0,0,0,0,1,1,1,2,2,2,3,3,3,4,4,4``)."""
    return (np.arange(s, dtype=np.int64) * n) // s


def sample_indices(num_frames: int, num_segments: int = 16, *, train: bool,
                   rng: np.random.Generator | None = None, eval_frames: str = "linspace",
                   train_frames: str = "segment", short_clips: str = "repeat") -> np.ndarray:
    """Frame indices (int64, ``num_segments`` of them, sorted) to take from a clip.

    DFEW protocol (``shared/datasets.md``; Jiang et al., ACM MM 2020): 16 frames per clip,
    training random per segment (sorted), testing uniform ``linspace(0, n-1, 16)``, short
    clips repeat frames.  Segment sampling as in TSN and the official IAL code
    (Li et al., AAAI 2023, ``dataset_DFEW.py``), see the module docstring.

    ``train=True``, ``train_frames="segment"`` (fer_bench's segment sampling)
        ``[0, n)`` is cut into ``S = num_segments`` segments
        ``[floor(k n / S), floor((k+1) n / S))``, ``k = 0..S-1``; one frame is drawn
        uniformly from each segment with ``rng`` (a fresh unseeded generator when ``None``).
        When ``n >= S`` every segment holds at least one frame, so the result is strictly
        increasing and covers the whole clip.  When ``n < S`` a segment is shorter than one
        frame and the rule becomes deterministic: segment ``k`` takes frame
        ``floor(k n / S)``, i.e. every frame is repeated ``floor(S/n)`` or ``ceil(S/n)``
        times, in order (``n=5, S=16``: ``0,0,0,0,1,1,1,2,2,2,3,3,3,4,4,4``).
    ``train_frames="segment-tsn"`` (the official IAL / TSN rule, ``_get_train_indices``)
        ``k * (n // S) + randint(n // S)``: segments of ``n // S`` frames from the start, so
        the last ``n mod S`` frames are never drawn.  ``n < S``: the repeat rule above.
    ``train_frames="random-sorted"`` (the official DFEW loader, ``DFEW_Dataset.py``)
        ``S`` distinct frames drawn uniformly from the whole clip, sorted.  ``n < S``: the
        repeat rule above.
    ``train=False`` (``eval_frames="linspace"``, uniform)
        ``linspace(0, n-1, S)`` rounded half up (``floor(x + 0.5)``; with ``S = 16`` no value
        is ever exactly half-way since ``S - 1 = 15`` is odd).  Short clips repeat frames
        naturally (``n=5``: ``0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4``); ``rng`` is ignored.
    ``eval_frames="linspace-floor"`` (the official DFEW loader)
        ``linspace(0, n-1, S)`` truncated to integers (``np.linspace(...).astype(int)``).
    ``eval_frames="segment-centre"`` (the official IAL test sampling)
        the centre of each segment, ``floor((2k + 1) n / 2S)``: for ``n > S`` this is the
        official ``int(tick/2 + tick*k)`` with ``tick = n/S`` (``dataset_DFEW.py``,
        ``_get_test_indices``), computed in integers.  For ``n <= S`` the official code takes
        frame 0 sixteen times; here the same rule goes on (every frame in order, repeated),
        since the official lists drop clips under 16 frames and the rule is then undefined.
    ``short_clips="loop"`` (the official DFEW loader), for ``n < S``
        the clip's frame list is concatenated with itself until it holds at least ``S``
        (``n * ceil(S / n)`` positions), the rule above picks positions in it, and a position
        ``p`` is frame ``p mod n`` (so the picked frames may wrap round to the start).
        ``repeat`` and ``drop`` leave the index rule as described (``drop`` removes such clips
        from the lists before any sampling: :meth:`ClipDataModule.clip_splits`).
    """
    n, s = int(num_frames), int(num_segments)
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got num_frames={num_frames}")
    if s < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    verify_choice(short_clips, "short_clips", SHORT_CLIPS)
    if short_clips == "loop" and n < s:
        looped = n * -(-s // n)
        pos = sample_indices(looped, s, train=train, rng=rng, eval_frames=eval_frames, train_frames=train_frames)
        return pos % n
    if train:
        verify_choice(train_frames, "train_frames", TRAIN_FRAMES)
        if rng is None:
            rng = np.random.default_rng()
        if n < s and train_frames != "segment":
            return _repeat_short(n, s)
        if train_frames == "random-sorted":
            return np.sort(rng.choice(n, size=s, replace=False)).astype(np.int64)
        k = np.arange(s, dtype=np.int64)
        if train_frames == "segment-tsn":
            step = n // s
            return k * step + rng.integers(0, step, size=s)
        lo = (k * n) // s
        hi = np.maximum(((k + 1) * n) // s, lo + 1)
        idx = rng.integers(lo, hi)  # high exclusive, one draw per segment
    elif verify_choice(eval_frames, "test_frames", EVAL_FRAMES) == "segment-centre":
        k = np.arange(s, dtype=np.int64)
        idx = ((2 * k + 1) * n) // (2 * s)
    elif eval_frames == "linspace-floor":
        idx = np.linspace(0, n - 1, s).astype(np.int64)
    else:
        idx = np.floor(np.linspace(0.0, n - 1, s) + 0.5)
    return np.asarray(idx, dtype=np.int64)
