"""Pre-trained weights without any download: a registry of named files the user puts in place.

fer_bench never fetches weights.  Each entry names the file, its checksum, where a user gets
it, its licence and which backbones it fits; :func:`resolve` finds it under ``$FER_WEIGHTS``
(or takes a path), checks it, and says in one line what to do when it is missing or wrong.

- A missing file: :class:`WeightsMissing` names the file, the folder it was looked for in and
  where it is published.
- A checksum mismatch: :class:`WeightsChecksumError`, the file is refused.  torchvision's
  convention is used: the checksum is the SHA-256 of the file, and an entry may pin only its
  first hex digits (torchvision puts the first 8 in the file name).  An entry whose checksum
  is not pinned (no copy was available here to hash) is accepted with its SHA-256 recorded,
  so the run's record says exactly which bytes were used.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fer_bench.errors import UserError
from fer_bench.registry import Registry

WEIGHTS_ENV = "FER_WEIGHTS"


class WeightsMissing(UserError):
    """A registered weights file that is not where it was looked for."""


class WeightsChecksumError(UserError):
    """A weights file whose SHA-256 is not the registered one: refused."""


@dataclass
class WeightsEntry:
    """A pre-trained weights file fer_bench can use but never downloads."""

    name: str
    filename: str
    sha256: str | None  # full digest or a prefix (torchvision pins 8 hex digits); None: not pinned
    url: str  # where a user gets it (printed, never fetched)
    licence: str
    backbones: tuple[str, ...]  # backbone families it fits (e.g. "torchvision.resnet18")
    source: str  # who trained it and on what
    state_dict_key: str | None = None  # the file holds {key: state_dict} (e.g. "state_dict")
    alternatives: tuple[str, ...] = ()  # entries a suite may start from instead when this file is absent (recorded)


WEIGHTS: Registry = Registry("weights")


def register(entry: WeightsEntry) -> WeightsEntry:
    WEIGHTS.register(entry.name)(entry)
    return entry


register(WeightsEntry(
    name="imagenet-resnet18",
    filename="resnet18-f37072fd.pth",
    sha256="f37072fd",
    url="https://download.pytorch.org/models/resnet18-f37072fd.pth (torchvision ResNet18_Weights.IMAGENET1K_V1)",
    licence="BSD-3-Clause (torchvision); ImageNet terms of access apply to the training data",
    backbones=("torchvision.resnet18",),
    source="torchvision: ResNet-18 trained on ImageNet-1k (top-1 69.76 %)",
))
register(WeightsEntry(
    name="msceleb-resnet18",
    filename="resnet18_msceleb.pth",
    sha256=None,
    url="https://drive.google.com/file/d/1u2NtY-5DVlTunfN4yxfxys5n8uh7sc3n (linked from the DAN README, "
        "github.com/yaoing/DAN; the same MS-Celeb-1M ResNet-18 initialises SCN and DACL)",
    licence="not stated by its publishers; MS-Celeb-1M was withdrawn by Microsoft: research use only",
    backbones=("torchvision.resnet18",),
    source="ResNet-18 trained for face identification on MS-Celeb-1M (DAN: torchvision resnet18 keys under "
           "'state_dict')",
    state_dict_key="state_dict",
    alternatives=("imagenet-resnet18",),
))


def weights_dir() -> Path | None:
    v = os.environ.get(WEIGHTS_ENV)
    return Path(v) if v else None


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read once per (path, size, mtime): a run checks its weights when the
    config is validated, when the model is built and when its row is written."""
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found and checked: what a run loads and records."""

    name: str  # registry name, or the file name for a plain path
    path: Path
    sha256: str
    entry: WeightsEntry | None

    @property
    def tag(self) -> str:
        """How a leaderboard row names it: ``msceleb-resnet18@1a2b3c4d``."""
        return f"{self.name}@{self.sha256[:8]}"


def is_registered(name_or_path: str) -> bool:
    return name_or_path in WEIGHTS


def resolve(name_or_path: str, *, folder: str | os.PathLike | None = None) -> ResolvedWeights:
    """The registered weights ``name`` under ``folder`` (default ``$FER_WEIGHTS``), or a file path.

    Raises :class:`WeightsMissing` (one line: which file, where to put it, where it is
    published) or :class:`WeightsChecksumError` (the file is refused)."""
    if name_or_path not in WEIGHTS:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(WEIGHTS.names())
            raise WeightsMissing(f"weights {name_or_path!r}: no such file, and not a registered name ({known})")
        return ResolvedWeights(path.name, path, sha256_of(path), None)
    entry: WeightsEntry = WEIGHTS.get(name_or_path)
    base = Path(folder) if folder is not None else weights_dir()
    if base is None:
        raise WeightsMissing(f"weights {entry.name}: set ${WEIGHTS_ENV} to the folder holding {entry.filename} "
                             f"(get it from {entry.url})")
    path = base / entry.filename
    if not path.is_file():
        raise WeightsMissing(f"weights {entry.name}: {path} not found; put {entry.filename} in {base} "
                             f"(${WEIGHTS_ENV}); it is published at {entry.url}")
    digest = sha256_of(path)
    if entry.sha256 and not digest.startswith(entry.sha256.lower()):
        raise WeightsChecksumError(f"weights {entry.name}: {path} has sha256 {digest[:16]}..., expected "
                                   f"{entry.sha256}...; refusing it (a different or damaged file; get it from "
                                   f"{entry.url})")
    return ResolvedWeights(entry.name, path, digest, entry)


def load_state_dict(resolved: ResolvedWeights):
    """The state dict in a resolved file (``weights_only=True``: tensors and plain containers only)."""
    import torch

    state = torch.load(resolved.path, map_location="cpu", weights_only=True)
    key = resolved.entry.state_dict_key if resolved.entry else None
    if key and isinstance(state, dict) and key in state:
        state = state[key]
    return state
