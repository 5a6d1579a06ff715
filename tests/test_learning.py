"""Every registered method learns: its recipe's optimiser fits a small fixed synthetic training set.

A method that cannot fit 14 faces (or clips) it sees every step is a defect, whatever its smoke
numbers, and it should fail CI rather than a user's week of GPU time.  Each method trains through
a real Lightning Trainer with its own ``configure_optimizers`` and ``training_step`` (TCL's two
optimisers, gradient clipping and margin losses included) and its recipe's optimiser, learning
rate, momentum, weight decay, gradient clipping and loss weights; the recipe's *schedule* is left
out (it counts epochs of a real dataset; here one epoch is one step, and a StepLR(7, 0.5) would
have divided the lr by 2^14 after 100 steps).  Every 10 steps the training set is classified in
eval mode (BN statistics of the training set, no dropout or DropBlock); the test passes once 95 %
of it is right, within ``MAX_STEPS``.
"""
from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fer_bench.methods import METHODS
from fer_bench.synth import make_clips, make_static

MAX_STEPS = 300
CHECK_EVERY = 10
TARGET = 0.95
#: input side per method on this set: small, so that the whole test stays within CI's budget
SIZE = {"resnet18_cifar": 24}
STATIC_SIZE, CLIP_SIZE, FRAMES = 32, 32, 4


def training_set(modality: str, rgb: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two synthetic faces (or clips) per class, in [0, 1]: images [14, C, H, W], clips [14, T, C, H, W]."""
    if modality == "static":
        x, y, _ = make_static(2, seed=11, size=STATIC_SIZE, rgb=rgb)
        x = torch.from_numpy(x).float() / 255
        x = x.permute(0, 3, 1, 2) if rgb else x.unsqueeze(1)
    else:
        x, y, _, _ = make_clips(2, seed=11, size=CLIP_SIZE, frames=FRAMES, rgb=rgb)
        x = torch.from_numpy(x).float() / 255
        x = x.permute(0, 1, 4, 2, 3) if rgb else x.unsqueeze(2)
    return x.contiguous(), torch.from_numpy(y)


class StopWhenFitted(L.Callback):
    """Every ``CHECK_EVERY`` steps: the training accuracy in eval mode (BN re-estimated on the set)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.history: list[tuple[int, float]] = []

    def accuracy(self, model) -> float:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: exactly this set's statistics
        model.train()
        with torch.no_grad():
            model.training_outputs(self.x, self.y)
            model.eval()
            acc = (model(self.x).argmax(dim=1) == self.y).float().mean().item()
        model.load_state_dict(state)  # training goes on as it would have without the check
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
        model.train()
        return acc

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        step = trainer.global_step
        if step % CHECK_EVERY == 0:
            acc = self.accuracy(pl_module)
            self.history.append((step, acc))
            if acc >= TARGET:
                trainer.should_stop = True


@pytest.mark.parametrize("name", METHODS.names())
def test_the_recipes_optimiser_fits_a_small_training_set(name):
    cls = METHODS.get(name)
    recipe = cls.recipe()
    torch.manual_seed(0)
    size = SIZE.get(name, STATIC_SIZE if cls.modality == "static" else CLIP_SIZE)
    rgb = cls.default_in_chans == 3
    x, y = training_set(cls.modality, rgb)
    extra = {"frames": FRAMES} if "frames" in cls.__init__.__code__.co_varnames else {}
    model = cls.from_defaults(input_size=size, scheduler="none", max_epochs=MAX_STEPS, **extra)
    assert (model.hparams.optimizer, model.hparams.lr) == (recipe.value("optimizer"), recipe.value("lr"))
    if x.shape[-3] != model.in_chans:
        x = x.expand(*x.shape[:-3], model.in_chans, *x.shape[-2:]).contiguous()
    x = torch.nn.functional.interpolate(x.flatten(0, -4), size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False).reshape(*x.shape[:-2], size, size) \
        if x.shape[-1] != size else x
    watch = StopWhenFitted(x, y)
    trainer = L.Trainer(accelerator="cpu", max_steps=MAX_STEPS, max_epochs=MAX_STEPS, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[watch])
    trainer.fit(model, DataLoader(TensorDataset(x, y, torch.arange(len(y))), batch_size=len(y), shuffle=False))
    steps, acc = watch.history[-1]
    assert acc >= TARGET, f"{name} with its recipe's optimiser: training accuracy by step {watch.history}"
