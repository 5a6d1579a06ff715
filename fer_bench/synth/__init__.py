"""Synthetic faces and writers of synthetic dataset trees in each official on-disk layout.

The renderer (:mod:`~fer_bench.synth.geometry`, :mod:`~fer_bench.synth.render`,
:mod:`~fer_bench.synth.samples`) is pure numpy/OpenCV and imports nothing from
:mod:`fer_bench.data`.  Each writer module (one per layout family) may import a reader's
constants (a label map, a file name), never the reverse.

The writer registry is lazy: importing this package imports neither OpenCV nor decord nor
pandas; a writer's module is imported when :func:`write_layout` runs it.  The renderer's
names (``make_static``, ``Identity``, ...) are importable from here, also lazily.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: dataset name -> "module:function" of its writer (``fn(root, *, per_class, seed, **options)``)
WRITERS: dict[str, str] = {
    "fer2013": "fer_bench.synth.fer2013:write",
    "ferplus": "fer_bench.synth.ferplus:write",
    "ckplus": "fer_bench.synth.ckplus:write",
    "rafdb": "fer_bench.synth.rafdb:write",
    "affectnet": "fer_bench.synth.affectnet:write",
    "dfew": "fer_bench.synth.dfew:write",
    "ferv39k": "fer_bench.synth.ferv39k:write",
    "imagefolder": "fer_bench.synth.imagefolder:write",
}

_LAZY: dict[str, str] = {
    **{n: "fer_bench.synth.geometry" for n in ("PARAMS", "EXPRESSIONS", "Identity", "Pose", "sample_style",
                                               "expression_params")},
    "render_face": "fer_bench.synth.render",
    **{n: "fer_bench.synth.samples" for n in ("make_static", "make_clips", "intensity_curve", "synth_images",
                                              "class_grey_level", "mark_level", "contempt_style",
                                              "render_expression")},
}

__all__ = ["WRITERS", "SynthLayout", "writer_names", "write_layout", *_LAZY]


@dataclass
class SynthLayout:
    """What a writer wrote: the tree's ``root``, the label / annotation files its reader
    parses (``label_files``) and the image / video files written (``sample_files``; the frames
    of frame folders), each as paths under ``root``."""

    root: Path
    label_files: list[Path] = field(default_factory=list)
    sample_files: list[Path] = field(default_factory=list)


def writer_names() -> list[str]:
    """Names of the datasets that have a synthetic layout writer, sorted."""
    return sorted(WRITERS)


def _writer(name: str):
    from fer_bench.errors import UserError

    spec = WRITERS.get(name)
    if spec is None:  # a dataset from outside the package writes its own layout (its write_synthetic)
        from fer_bench.data import DATASETS

        write = getattr(DATASETS.get(name), "write_synthetic", None) if name in DATASETS else None
        if write is None:
            raise UserError(f"no synthetic layout writer for {name!r}: expected one of {', '.join(writer_names())} "
                            "(a dataset of one's own: its class's write_synthetic)")

        def plugin_writer(root, **kw):
            files = [Path(f) for f in write(root, **kw)]
            return SynthLayout(Path(root), sample_files=files)

        return plugin_writer
    module, fn = spec.split(":")
    return getattr(importlib.import_module(module), fn)


def write_layout(name: str, root: str | Path, *, per_class: int = 10, seed: int = 0, **options: Any) -> SynthLayout:
    """Write synthetic faces in dataset ``name``'s on-disk layout under ``root``.

    ``options`` are the writer's (``layout=``, ``size=``, ...); an unknown name or option is a
    :class:`~fer_bench.errors.UserError` naming the valid ones.
    """
    return _writer(name)(root, per_class=per_class, seed=seed, **options)


def _files(root: Path, *patterns: str) -> list[Path]:
    """Files under ``root`` matching any glob pattern, sorted (writers' ``SynthLayout`` lists)."""
    out: set[Path] = set()
    for p in patterns:
        out.update(q for q in root.glob(p) if q.is_file())
    return sorted(out)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
