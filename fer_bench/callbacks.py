"""Training callbacks of a run: unreadable files counted, checkpoints that resume exactly, stops on request.

Bad data never kills a long run, and a stopped run loses at most one epoch.

:class:`SkippedFiles` is a Lightning callback that reads the ``skipped`` list each batch
carries (see :func:`fer_bench.data.base.collate_skipping`), gathers it over DDP ranks and
stops the run with an error listing the first offenders once a split has more than
``max_fraction`` (1 %) of its samples unreadable.

:class:`SelectionCheckpoint` is Lightning's ``ModelCheckpoint`` (the best epoch on
validation, and ``last.ckpt`` after every validation: weights, optimiser, scheduler, loop
state and this selection state) writing each file atomically; :class:`RandomState` puts the
process's random generators in those checkpoints, so a run resumed from ``last.ckpt`` goes on
exactly as the uninterrupted run would (with ``num_workers`` 0; worker processes draw their
own streams).  :class:`StopOnRequest` ends a run at the next batch when asked (a pre-emption
signal, see :mod:`fer_bench.bench.worker`) by raising :class:`Preempted`.

:class:`TestCurve` (opt-in, ``--test-every-epoch``) scores the test split after every
validation into ``test_curve.csv``: never read by selection, it shows what choosing the
checkpoint on test would have reported.

:class:`RunProgress` is the progress bar: which run, which epoch, and the last validation WAR/UAR.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from fer_bench.errors import UserError
from fer_bench.metrics import scores_from_confusion


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


class Preempted(Exception):
    """A run stopped on request (SIGTERM / SIGUSR1): its ``last.ckpt`` resumes it."""


class StopOnRequest(L.Callback):
    """Raise :class:`Preempted` at the first batch boundary after ``requested()`` names a reason.

    Under DDP the ranks agree first (one boolean all-reduce per batch), so that every rank
    stops at the same batch."""

    def __init__(self, requested: Callable[[], str | None]) -> None:
        self.requested = requested

    def _check(self, trainer) -> None:
        reason = self.requested()
        stop = reason is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            raise Preempted(reason or "stop requested on another rank")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check(trainer)


class RandomState(L.Callback):
    """The torch (CPU and CUDA), NumPy and Python generators, saved in and restored from checkpoints."""

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *map(float, np_state[2:])],
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
        random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state_dict["python"]))


class SelectionCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose files are written whole or not at all (a temporary file, then a rename),
    so that a kill while saving never leaves a truncated ``last.ckpt`` to resume from."""

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        partial = f"{filepath}.partial"
        super()._save_checkpoint(trainer, partial)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        trainer.strategy.barrier("selection_checkpoint")
        self._last_checkpoint_saved = filepath


class TestCurve(L.Callback):
    """The test split's WAR and UAR after every validation, written to ``path`` (CSV: epoch, war, uar).

    For the record only: the checkpoint is still chosen on validation, and the row's own
    scores are the selected checkpoint's.  The best row of this curve is what a paper that keeps
    its best *test* epoch reports; the gap between the two is what selecting on test is worth.

    Rank 0 scores the whole test split with the module's :meth:`test_forward` (its test-time
    augmentation included) in eval mode, under the run's precision, outside Lightning's loops
    (no collective call, so the other DDP ranks simply wait at their next one).  A resumed run
    keeps the rows of the epochs before it.
    """

    def __init__(self, path) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.rows: list[tuple[int, float, float]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.rows = [r for r in read_test_curve(self.path) if r[0] < trainer.current_epoch]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from fer_bench.nn.functional import hard_labels

        k = pl_module.num_classes
        confusion = torch.zeros(k, k, dtype=torch.int64)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in trainer.datamodule.test_dataloader():
                x, y = batch[0], batch[1]
                if x is None:
                    continue
                pred = pl_module.test_forward(x.to(pl_module.device)).argmax(dim=1).cpu()
                confusion.index_put_((hard_labels(y).cpu(), pred), torch.ones_like(pred), accumulate=True)
        pl_module.train(was_training)
        scores = scores_from_confusion(confusion, list(pl_module.classes), warn=False)
        self.rows.append((trainer.current_epoch, scores.war, scores.uar))
        from fer_bench.files import atomic_write_text

        atomic_write_text(self.path, "epoch,war,uar\n" + "".join(f"{e},{w!r},{u!r}\n" for e, w, u in self.rows))


def read_test_curve(path) -> list[tuple[int, float, float]]:
    """``(epoch, war, uar)`` rows of a :class:`TestCurve` file (empty when it does not exist)."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines()[1:]:
        e, w, u = line.split(",")
        rows.append((int(e), float(w), float(u)))
    return rows


class RunProgress(TQDMProgressBar):
    """Lightning's progress bar, naming the run and reading its scores: ``resnet18_cifar/rafdb seed 0:
    epoch 3/60`` as the description, and the last validation's WAR and UAR in per cent
    (``val WAR 61.2``, ``val UAR 48.0``) beside the training loss."""

    def __init__(self, run: str) -> None:
        super().__init__()
        self.run = run

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.set_description(f"{self.run}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        for key, label in (("val/war", "val WAR"), ("val/uar", "val UAR")):
            if key in items:
                items[label] = f"{100 * float(items.pop(key)):.1f}"
        items.pop("v_num", None)
        return items
