"""Pre-trained weights without any download: named files the user puts in place, read and loaded.

fer_bench never fetches weights.  Each entry names the file, its checksum, where a user gets
it, its licence and which backbones it fits; :func:`resolve` finds it under ``$FER_WEIGHTS``
(or takes a path), checks it, and says in one line what to do when it is missing or wrong.
:func:`read_torch_file` reads any torch file (weights, checkpoints) or names what is wrong with
it; :func:`load_into` loads a state dict or checkpoint into a module (what
:meth:`FERMethod.load_weights <fer_bench.methods.base.FERMethod.load_weights>` does), an RGB stem
adapted to a grey one by :func:`adapt_input_conv`.  torch is imported only where a file is read.

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
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_bench.errors import DataFormatError, UserError
from fer_bench.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_ENV = "FER_WEIGHTS"
STATE_DICT = "a state dict (torch.save of a model's state_dict(), or a Lightning checkpoint)"


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
            raise WeightsMissing(f"weights {name_or_path!r}: expected a file or one of {known}, found no such "
                                 "file")
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
    state = read_torch_file(resolved.path, STATE_DICT)
    key = resolved.entry.state_dict_key if resolved.entry else None
    if key and isinstance(state, dict) and key in state:
        state = state[key]
    return state


def read_torch_file(path: str | os.PathLike, expected: str, *, weights_only: bool = True) -> Any:
    """The object ``torch.save`` wrote to ``path`` (loaded on the CPU), or a :class:`DataFormatError`
    naming the file, ``expected`` and what it is instead: missing, empty, a damaged or truncated torch
    file, no torch file at all, or objects a weights-only load refuses."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, expected, found="no such file" if not p.exists() else "not a file")
    if p.stat().st_size == 0:
        raise DataFormatError(p, expected, found="an empty file")
    try:
        with warnings.catch_warnings():  # a plain pickle: "Detected pickle protocol 4 ...", before the refusal below
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # torch raises many kinds here (EOFError, OSError, UnpicklingError, RuntimeError, ...)
        with open(p, "rb") as f:
            head = f.read(4)
        zipped = head == b"PK\x03\x04"  # torch.save's format since 1.6 is a zip archive
        if not zipped and head[:1] != b"\x80":  # neither a zip nor a pickle (the legacy format): no torch file
            raise DataFormatError(p, expected, found="no torch.save file") from None
        why = str(e).split("WeightsUnpickler error:", 1)[1:]  # torch's reason, amid advice over several lines
        why = " ".join(why[0].split("Check the documentation", 1)[0].split()).split(". ")[0][:160] if why else ""
        found = (f"objects a weights-only load refuses ({why})" if why
                 else "a damaged or truncated torch file" if zipped else "no torch.save file")
        raise DataFormatError(p, expected, found=found) from None


def load_into(module: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load a local state dict into ``module`` (``weights_only=True``; nothing is downloaded) and say
    which keys were ``loaded``, ``adapted``, skipped for their ``shape_mismatch``, ``missing`` from the
    file and ``unexpected`` in it.

    Accepts a plain state dict, a Lightning checkpoint, or a backbone state dict (keys are matched
    against ``module`` and, failing that, ``module.backbone``).  A 3-channel first convolution loaded
    into a 1-channel stem is adapted by :func:`adapt_input_conv` and reported under ``adapted``.
    Other tensors whose shape differs (a classifier for other classes) are skipped and reported.  A
    file that is no state dict, or none of whose keys are the module's, is a :class:`DataFormatError`
    naming it.
    """
    import torch

    state = read_torch_file(path, STATE_DICT)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataFormatError(path, STATE_DICT, found=f"a {type(state).__name__}")
    targets = [("", module)]
    if hasattr(module, "backbone"):
        targets.append(("backbone.", module.backbone))
    best: tuple[int, str, nn.Module] = (-1, "", module)
    for prefix, mod in targets:
        own = mod.state_dict()
        hits = sum(1 for k in state if k in own)
        if hits > best[0]:
            best = (hits, prefix, mod)
    hits, _, mod = best
    if hits <= 0:
        first = ", ".join(map(repr, list(state)[:3]))[:120] + (", ..." if len(state) > 3 else "")
        raise DataFormatError(path, f"parameters of {type(module).__name__} or of its backbone",
                              found=f"none among its {len(state)} keys ({first})")
    own = mod.state_dict()
    usable, adapted = {}, []
    for k, v in state.items():
        if k not in own or not torch.is_tensor(v):
            continue
        if own[k].shape == v.shape:
            usable[k] = v
        elif (grey := adapt_input_conv(v, own[k].shape)) is not None:
            usable[k] = grey
            adapted.append(k)
    skipped = sorted(k for k in state if k in own and k not in usable)
    result = mod.load_state_dict(usable, strict=False)
    return {"loaded": sorted(usable), "adapted": sorted(adapted), "shape_mismatch": skipped,
            "missing": list(result.missing_keys), "unexpected": sorted(k for k in state if k not in own)}


def adapt_input_conv(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """A ``[O, 3, kh, kw]`` RGB convolution kernel as the ``[O, 1, kh, kw]`` grey one of ``shape``
    (summed over the input channels: grey = R = G = B gives the same response, as timm's
    ``adapt_input_conv`` in ``timm/models/_manipulate.py``), or ``None`` when the shapes are not that pair."""
    if weight.ndim == 4 and len(shape) == 4 and weight.shape[1] == 3 and shape[1] == 1 \
            and weight.shape[0] == shape[0] and weight.shape[2:] == shape[2:]:
        return weight.sum(dim=1, keepdim=True)
    return None
