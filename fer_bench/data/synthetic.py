"""The built-in synthetic datasets ``synthetic-static`` and ``synthetic-dynamic``: seeded, root-free.

The faces are drawn by :mod:`fer_bench.synth` (design: :mod:`fer_bench.synth.geometry`).
Train / val / test take consecutive, hence disjoint, identity ranges.  The DataModules derive
their split seeds from ``data_seed`` only: the training ``seed`` never changes the data.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_bench.data.base import DatasetInfo, FERDataModule
from fer_bench.errors import UserError
from fer_bench.registry import DATASETS
from fer_bench.synth.samples import make_clips, make_static

__all__ = ["SyntheticImages", "SyntheticClips", "SyntheticStatic", "SyntheticDynamic", "make_static", "make_clips"]


# --------------------------------------------------------------------------------------
# torch datasets
# --------------------------------------------------------------------------------------
class SyntheticArrays(Dataset):
    """Samples held as arrays -> ``(uint8 tensor, int label)``: images ``[N,H,W]`` / ``[N,H,W,3]``
    become ``[C,H,W]``, clips ``[N,T,H,W]`` / ``[N,T,H,W,3]`` become ``[T,C,H,W]``.

    ``grey_ndim`` is the rank of one grey sample (2 for an image, 3 for a clip); a sample of
    that rank gets a channel axis of 1, a colour one has its last axis moved to ``-3``."""

    grey_ndim = 2

    def __init__(self, samples: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
        if not (len(samples) == len(labels) == len(groups)):
            raise ValueError("samples, labels and groups must have the same length")
        self.samples = samples
        self.labels = np.asarray(labels, dtype=np.int64)
        self.groups = np.asarray(groups, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.ascontiguousarray(self.samples[i]))
        x = x.unsqueeze(-3) if x.ndim == self.grey_ndim else x.movedim(-1, -3).contiguous()
        return x, int(self.labels[i])


class SyntheticImages(SyntheticArrays):
    """Images ``[N,H,W]`` or ``[N,H,W,3]``."""

    grey_ndim = 2

    @property
    def images(self) -> np.ndarray:
        return self.samples


class SyntheticClips(SyntheticArrays):
    """Clips ``[N,T,H,W]`` or ``[N,T,H,W,3]``."""

    grey_ndim = 3

    @property
    def clips(self) -> np.ndarray:
        return self.samples


# --------------------------------------------------------------------------------------
# DataModules
# --------------------------------------------------------------------------------------
def _split_seed(data_seed: int, split: str) -> int:
    tag = {"train": 0, "val": 1, "test": 2}[split]
    return int(np.random.SeedSequence([int(data_seed), 0x5EED, tag]).generate_state(1)[0])


class _SyntheticBase(FERDataModule):
    requires_root: ClassVar[bool] = False
    #: subjects per split; the ranges are consecutive and therefore disjoint
    split_identities: ClassVar[dict[str, int]] = {"train": 40, "val": 10, "test": 20}
    #: samples per class in (train, val, test) when not given
    per_class: ClassVar[tuple[int, int, int]] = (300, 30, 50)

    def __init__(self, root: str | None = None, *, train_per_class: int | None = None,
                 val_per_class: int | None = None, test_per_class: int | None = None,
                 image_size: int | None = None, rgb: bool | None = None, data_seed: int = 1234,
                 **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        given = (train_per_class, val_per_class, test_per_class)
        self.train_per_class, self.val_per_class, self.test_per_class = (
            int(d if v is None else v) for v, d in zip(given, self.per_class))
        self.image_size = int(image_size) if image_size is not None else int(self.input_size)
        self.rgb = bool(rgb) if rgb is not None else self.in_chans == 3
        self.data_seed = int(data_seed)
        for key, value, lo in (("train_per_class", self.train_per_class, 1), ("val_per_class", self.val_per_class, 1),
                               ("test_per_class", self.test_per_class, 1), ("image_size", self.image_size, 8),
                               ("data_seed", self.data_seed, 0)):  # before any sample is drawn: one line
            if value < lo:
                raise UserError(f"{getattr(self, 'registry_name', 'synthetic')}: {key}: expected an integer >= {lo}, "
                                f"got {value}")

    def _split_specs(self):
        offset = 0
        for split, n in (("train", self.train_per_class), ("val", self.val_per_class),
                         ("test", self.test_per_class)):
            n_ids = self.split_identities[split]
            yield split, n, _split_seed(self.data_seed, split), n_ids, offset
            offset += n_ids

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args.update(train_per_class=self.train_per_class, val_per_class=self.val_per_class,
                    test_per_class=self.test_per_class, image_size=self.image_size, rgb=self.rgb,
                    data_seed=self.data_seed)
        return args


@DATASETS.register("synthetic-static")
class SyntheticStatic(_SyntheticBase):
    """Seeded synthetic static faces; train/val/test have disjoint subjects."""

    info = DatasetInfo("static", "synthetic faces; identity-disjoint train/val/test; seeded")
    default_input_size = 48
    default_in_chans = 1
    per_class = (300, 30, 50)

    def build_splits(self) -> dict[str, Dataset | None]:
        out: dict[str, Dataset | None] = {}
        for split, n, seed, n_ids, offset in self._split_specs():
            x, y, g = make_static(n, seed=seed, size=self.image_size, rgb=self.rgb,
                                  n_identities=n_ids, identity_offset=offset)
            out[split] = SyntheticImages(x, y, g)
        return out


@DATASETS.register("synthetic-dynamic")
class SyntheticDynamic(_SyntheticBase):
    """Seeded synthetic clips (neutral -> onset -> apex); disjoint subjects per split."""

    info = DatasetInfo("dynamic", "synthetic faces; identity-disjoint train/val/test; seeded")
    default_input_size = 48
    default_in_chans = 3
    per_class = (40, 10, 20)

    def __init__(self, root: str | None = None, *, frames: int = 16, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.frames = int(frames)

    def protocol_args(self) -> dict[str, Any]:
        args = super().protocol_args()
        args["frames"] = self.frames
        return args

    def build_splits(self) -> dict[str, Dataset | None]:
        out: dict[str, Dataset | None] = {}
        for split, n, seed, n_ids, offset in self._split_specs():
            x, y, g, _ = make_clips(n, seed=seed, size=self.image_size, rgb=self.rgb, frames=self.frames,
                                    n_identities=n_ids, identity_offset=offset)
            out[split] = SyntheticClips(x, y, g)
        return out
