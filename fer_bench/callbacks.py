"""Training callbacks of a run: unreadable files skipped, counted and reported.

Bad data never kills a long run.

:class:`SkippedFiles` is a Lightning callback that reads the ``skipped`` list each batch
carries (see :func:`fer_bench.data.base.collate_skipping`), gathers it over DDP ranks and
stops the run with an error listing the first offenders once a split has more than
``max_fraction`` (1 %) of its samples unreadable.
"""
from __future__ import annotations

import lightning as L
import torch.distributed as dist

from fer_bench.errors import UserError


class TooManyUnreadable(UserError):
    pass


class SkippedFiles(L.Callback):
    def __init__(self, max_fraction: float = 0.01) -> None:
        self.max_fraction = max_fraction
        self.seen: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}

    def _add(self, split: str, batch) -> None:
        if isinstance(batch, (tuple, list)) and len(batch) == 4 and batch[3]:
            self.seen[split].update(batch[3])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._add("train", batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add("val", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add("test", batch)

    def _check(self, trainer, split: str) -> None:
        files = self.gathered(split)
        dm = trainer.datamodule
        n = len(dm.splits[split]) if dm is not None and split in getattr(dm, "splits", {}) else 0
        if n and len(files) > self.max_fraction * n:
            first = "\n  ".join(sorted(files)[:10])
            raise TooManyUnreadable(
                f"{len(files)} of {n} {split} samples ({100 * len(files) / n:.1f} %) are unreadable, above the "
                f"{100 * self.max_fraction:.0f} % limit; first offenders:\n  {first}"
            )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, "train")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, "val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, "test")

    def gathered(self, split: str | None = None) -> list[str]:
        """Skipped files of one split (or all), over every DDP rank, sorted."""
        mine = set().union(*self.seen.values()) if split is None else set(self.seen[split])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, sorted(mine))
            mine = set().union(*map(set, parts))
        return sorted(mine)
