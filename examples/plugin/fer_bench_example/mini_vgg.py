"""``mini_vgg``: a method brought from outside fer_bench (the example of README's "Adding a method").

A small VGG-style network for 48x48 grey faces — four stages of two 3x3 conv-BN-ReLU layers
(32-64-128-256) with 2x2 max-pooling, global average pooling, dropout and a linear classifier —
trained with label-smoothed cross entropy.  It stands for "my method": what a researcher writes
to compare a new idea with the published ones under fer_bench's protocol.

Everything fer_bench needs comes from two places: this class (the network and, if it is not
plain cross entropy, the loss) and its metafile ``mini_vgg.yaml`` beside this module (citation,
reported numbers with their protocol, the recipe: optimiser, epochs, input size, ...).  The
shared mechanics — optimiser, schedule, metrics, checkpoints, test-time augmentation — are
:class:`fer_bench.methods.FERMethod`'s.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_bench.methods import METHODS, FERMethod


def _stage(cin: int, cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2, ceil_mode=True))


@METHODS.register("mini_vgg")
class MiniVGG(FERMethod):
    """4 x (2 conv3x3-BN-ReLU + maxpool) -> GAP -> dropout -> linear; label-smoothed cross entropy."""

    modality = "static"  # "dynamic" methods take clips (B, T, C, H, W)
    default_input_size = 48
    default_in_chans = 1

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3, **kwargs: Any) -> None:
        widths = tuple(int(w) for w in widths)
        # every constructor argument goes to super().__init__, which saves it as a hyper-parameter
        super().__init__(widths=list(widths), dropout=dropout, **kwargs)
        stages, prev = [], self.in_chans
        for w in widths:
            stages.append(_stage(prev, w))
            prev = w
        self.features = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(prev, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))

    # The loss: FERMethod.compute_loss is cross entropy with the `label_smoothing` hyper-parameter,
    # which the metafile's recipe sets (loss_weights.label_smoothing).  A method with its own loss
    # overrides training_outputs / compute_loss (see fer_bench/methods/multiscale_ccl.py).
