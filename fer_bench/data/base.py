"""Base DataModule, the canonical class order and split utilities shared by every dataset.

Every dataset parser maps its own label order onto :data:`CANONICAL_CLASSES` at the parsing
edge.  A dataset item is ``(x, y)``: ``x`` a uint8 tensor ``[C,H,W]`` (static) or
``[T,C,H,W]`` (dynamic), ``y`` an int class id in the canonical order (or a float soft
target over the classes).  The DataModule wraps each split so that the loaders yield
``(x, y, index)``: the index lets evaluation count each sample exactly once under DDP.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from fer_bench.classes import CANONICAL_CLASSES, CANONICAL_CLASSES_8  # noqa: F401  (re-exported)
from fer_bench.data.cache import (
    DecodedImageCache,
    check_cache_mode,
    decodes_files,
    default_cache_budget_mb,
    estimate_decoded_mb,
)
from fer_bench.data.splits import limit_per_class, stratified_split
from fer_bench.data.transforms import AUGMENTATIONS, NORMALIZATIONS, build_transform
from fer_bench.errors import UnreadableSample, UserError, verify_choice

#: test-time augmentations whose views the model takes itself from a larger test image
MODEL_CROPPED_TTA: tuple[str, ...] = ("tencrop",)


@dataclass(frozen=True)
class DatasetInfo:
    """What ``fer-bench list`` shows of a dataset."""

    modality: str  # "static" | "dynamic"
    protocol: str
    citation: str = ""


class SplitDataset(Dataset):
    """A split seen through a transform, yielding ``(x, y, index)``.

    ``base`` is any dataset yielding ``(x_uint8, y)``; ``indices`` selects its samples.  A
    sample whose file cannot be read (the base raises :class:`UnreadableSample`) yields
    ``(None, None, index, path)``; :func:`collate_skipping` drops it from the batch and
    passes its path on, so the run counts it instead of crashing.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform=None) -> None:
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        try:
            x, y = self.base[int(self.indices[i])]
        except UnreadableSample as e:
            return None, None, i, f"{e.path} ({e.reason})"
        if self.transform is not None:
            x = self.transform(x)
        if isinstance(y, torch.Tensor):
            y = y.to(torch.float32) if y.is_floating_point() else int(y)
        return x, y, i

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(dataset_labels(self.base))[self.indices]


def collate_skipping(items: list) -> tuple:
    """Collate ``(x, y, index)`` items into ``(x, y, index, skipped)``.

    ``skipped`` lists the unreadable files of this batch; ``x`` is ``None`` when every
    sample of the batch was unreadable (the steps then skip the batch).
    """
    good = [it[:3] for it in items if it[0] is not None]
    skipped = [it[3] for it in items if it[0] is None]
    if not good:
        return None, None, None, skipped
    x, y, idx = default_collate(good)
    return x, y, idx, skipped


def dataset_labels(ds: Dataset) -> np.ndarray:
    """Hard class id of every sample.  Parsers expose ``labels`` so that nothing is decoded."""
    labels = getattr(ds, "labels", None)
    if labels is None:
        raise TypeError(f"{type(ds).__name__} must expose `labels` (the class id of each sample)")
    return np.asarray(labels, dtype=np.int64)


def usable_cpus() -> int:
    """CPUs this process may run on (``sched_getaffinity``; ``os.cpu_count`` where absent)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def default_num_workers(cpus: int | None = None, devices: int = 1) -> int:
    """DataLoader workers per process when ``num_workers`` is not given.

    ``cpus <= 2``: 0.  Measured on a 2-core x86_64 (``benchmarks/RESULTS.md``): one worker
    process competes with the training step for the two cores and was not faster than
    loading in the main process, for 48x48 images and 16-frame 112x112 clips alike; with the
    decoded-sample caches the loading cost per sample is small next to the step.
    Otherwise ``min(8, cpus // devices - 1)`` (one core per process left to the training
    step, at most 8 workers: beyond that a 16-frame clip loader saturates the disk/decoder
    rather than the CPU), and at least 1.
    """
    cpus = usable_cpus() if cpus is None else int(cpus)
    if cpus <= 2:
        return 0
    return max(1, min(8, cpus // max(1, int(devices)) - 1))


class FERDataModule(L.LightningDataModule):
    """Owns a dataset's splits, its class list, its protocol arguments and its loaders.

    Subclasses set :attr:`classes`, :attr:`info`, and implement :meth:`build_splits`, which
    returns ``{"train": ds, "val": ds or None, "test": ds}`` of datasets yielding uint8
    ``(x, y)`` and exposing ``labels`` (and optionally ``groups``: the subject of each sample).
    A dataset without a validation split gets one carved from training (stratified, seeded,
    by subject when ``groups`` exists).  The test split is never used for selection.

    Speed settings (never a protocol argument: they do not change a sample): ``num_workers``
    (``None``: :func:`default_num_workers`), ``pin_memory`` (``None``: when CUDA exists),
    ``prefetch_factor`` (``None``: torch's default), ``cache_images`` / ``cache_budget_mb``
    (decoded-image cache, :mod:`fer_bench.data.cache`; filled once before the loaders start
    when there are workers, per process, so each DDP rank holds its own), ``channels_last``
    (4-D batches converted after the transfer to the device).
    """

    classes: ClassVar[tuple[str, ...]] = CANONICAL_CLASSES
    info: ClassVar[DatasetInfo] = DatasetInfo("static", "")
    default_input_size: ClassVar[int] = 48
    default_in_chans: ClassVar[int] = 1
    requires_root: ClassVar[bool] = True
    #: the protocol's folds (``--fold`` values) for cross-validated datasets; empty: one split
    folds: ClassVar[tuple[int, ...]] = ()

    def __init__(
        self,
        root: str | None = None,
        *,
        batch_size: int = 64,
        num_workers: int | None = None,
        seed: int = 0,
        fold: int | None = None,
        limit_per_class: int | None = None,
        input_size: int | None = None,
        in_chans: int | None = None,
        val_fraction: float = 0.1,
        eval_batch_size: int | None = None,
        pin_memory: bool | None = None,
        prefetch_factor: int | None = None,
        cache_images: str | bool = "auto",
        cache_budget_mb: float | None = None,
        channels_last: bool = False,
        augmentation: str = "default",
        normalization: str = "none",
        resize: int | None = None,
        tta: str = "none",
    ) -> None:
        super().__init__()
        if self.requires_root and root is None:
            raise UserError(f"dataset {self.registry_name!r} needs --root PATH (the folder as distributed)")
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        # loader settings (not protocol arguments: they change speed, never a sample)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        if self.num_workers < 0:
            raise UserError(f"num_workers must be >= 0, got {num_workers!r}")
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.prefetch_factor = prefetch_factor
        self.cache_images = check_cache_mode(cache_images)
        self.cache_budget_mb = default_cache_budget_mb() if cache_budget_mb is None else float(cache_budget_mb)
        self.channels_last = bool(channels_last)
        self.caches: dict[int, DecodedImageCache] = {}
        self.seed = seed
        self.fold = self.check_fold(fold)
        self.limit = limit_per_class
        self.input_size = input_size or self.default_input_size
        self.in_chans = in_chans or self.default_in_chans
        self.val_fraction = val_fraction
        # protocol: the training augmentation and input normalisation (the method's recipe names them)
        where = getattr(self, "registry_name", type(self).__name__)
        self.augmentation = verify_choice(augmentation, "augmentation", AUGMENTATIONS, where=where)
        self.normalization = verify_choice(normalization, "normalization", tuple(NORMALIZATIONS), where=where)
        # protocol: the side images are resized to before the input-size crop (the recipe's ``resize``), and
        # the test-time augmentation, whose ten crops need the whole resized test image
        if resize is not None and (isinstance(resize, bool) or int(resize) < self.input_size):
            raise UserError(f"{where}: resize must be an integer >= the input size {self.input_size}, got {resize!r}")
        self.resize = int(resize) if resize is not None else None
        self.tta = tta
        self.splits: dict[str, SplitDataset] = {}

    @classmethod
    def check_fold(cls, fold: Any) -> int | None:
        """``fold`` as an int of the protocol's :attr:`folds` for a cross-validated dataset, ``None`` for a
        dataset of a single split; anything else is a :class:`UserError` (before any data is read)."""
        name = getattr(cls, "registry_name", cls.__name__)
        given = "no --fold" if fold is None else f"--fold {fold!r}"
        if not cls.folds:
            if fold is None:
                return None
            raise UserError(f"{given}: expected no --fold, dataset {name!r} has a single official split")
        if isinstance(fold, (int, np.integer)) and not isinstance(fold, bool) and int(fold) in cls.folds:
            return int(fold)
        raise UserError(f"{given}: expected --fold {cls.folds[0]}..{cls.folds[-1]}, dataset {name!r} is evaluated by "
                        f"{len(cls.folds)}-fold cross-validation (report the mean over the folds)")

    # -- to implement -------------------------------------------------------------------
    def build_splits(self) -> dict[str, Dataset | None]:
        """Parse the folder: ``{"train", "val" (or None), "test"}`` datasets.  Layout problems
        raise :class:`~fer_bench.errors.DataFormatError` naming the file, line and expectation."""
        raise NotImplementedError

    # -- shared mechanics ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def modality(self) -> str:
        return self.info.modality

    def protocol_args(self) -> dict[str, Any]:
        """Everything that changes the number; recorded in config.yaml and leaderboards."""
        return {"fold": self.fold, "limit_per_class": self.limit, "input_size": self.input_size,
                "in_chans": self.in_chans, "classes": len(self.classes), "augmentation": self.augmentation,
                "normalization": self.normalization, "resize": self.resize, "tta": self.tta}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.build_splits()
        train, val, test = raw["train"], raw.get("val"), raw["test"]
        train_labels = dataset_labels(train)
        if val is None:
            groups = getattr(train, "groups", None)
            tr_pos, va_pos = stratified_split(train_labels, self.val_fraction, self.seed, groups)
            val = train
        else:
            tr_pos, va_pos = np.arange(len(train)), np.arange(len(val))
        tr_pos = limit_per_class(train_labels, tr_pos, self.limit, self.seed)
        va_pos = limit_per_class(dataset_labels(val), va_pos, self.limit, self.seed + 1)
        te_pos = limit_per_class(dataset_labels(test), np.arange(len(test)), self.limit, self.seed + 2)
        train, val, test = self._cached(((train, tr_pos), (val, va_pos), (test, te_pos)))
        def mk(train_mode: bool, crop: bool = True):
            return build_transform(train=train_mode, input_size=self.input_size, in_chans=self.in_chans,
                                   augmentation=self.augmentation, normalization=self.normalization,
                                   resize=self.resize, crop=crop)

        self.splits = {
            "train": SplitDataset(train, tr_pos, mk(True)),
            "val": SplitDataset(val, va_pos, mk(False)),
            "test": SplitDataset(test, te_pos, mk(False, crop=self.tta not in MODEL_CROPPED_TTA)),
        }

    def _cached(self, parts) -> list[Dataset]:
        """The split datasets, each file-decoding one wrapped in a :class:`DecodedImageCache`
        when ``cache_images`` says so (one cache per distinct dataset object)."""
        used: dict[int, tuple[Dataset, list[np.ndarray]]] = {}
        for ds, pos in parts:
            used.setdefault(id(ds), (ds, []))[1].append(pos)
        for key, (ds, positions) in used.items():
            if self.cache_images == "off" or not decodes_files(ds) or key in self.caches:
                continue
            pos = np.concatenate(positions)
            if self.cache_images == "auto" and estimate_decoded_mb(ds, pos) > self.cache_budget_mb:
                continue
            cache = DecodedImageCache(ds)
            if self.num_workers > 0:
                cache.fill(pos)  # once, here, shared by the workers
            self.caches[key] = cache
        return [self.caches.get(id(ds), ds) for ds, _ in parts]

    def split_sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.splits[split]
        return DataLoader(
            ds,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=False,
            collate_fn=collate_skipping,
            generator=self.train_generator() if shuffle else None,
            **self.loader_kwargs(),
        )

    def train_generator(self) -> torch.Generator:
        """The generator of the training order, seeded once from ``seed``: every epoch draws its
        permutation from it, and its state travels in the run's checkpoints
        (:meth:`state_dict`), so a resumed run shuffles its next epoch as an uninterrupted one would."""
        if getattr(self, "_train_generator", None) is None:
            self._train_generator = torch.Generator().manual_seed(self.seed)
        return self._train_generator

    def state_dict(self) -> dict[str, Any]:
        return {"train_generator": self.train_generator().get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "train_generator" in state_dict:
            self.train_generator().set_state(state_dict["train_generator"])

    def loader_kwargs(self) -> dict[str, Any]:
        """Worker / pinning / prefetch settings shared by every loader of this DataModule."""
        kw: dict[str, Any] = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0,
                              "pin_memory": self.pin_memory}
        if self.num_workers > 0 and self.prefetch_factor is not None:
            kw["prefetch_factor"] = int(self.prefetch_factor)
        return kw

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """``channels_last``: 4-D image batches in channels-last memory format (on the device)."""
        if self.channels_last and isinstance(batch, (tuple, list)) and isinstance(batch[0], torch.Tensor) \
                and batch[0].dim() == 4:
            batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
