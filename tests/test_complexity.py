"""fer_bench.nn.complexity: MACs of single layers by hand, ResNet-18 at 48x48 grey by hand from
torchvision's architecture, the example input per modality, and the mode being restored."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fer_bench.methods import METHODS
from fer_bench.nn.complexity import complexity, count_macs, count_params, example_input


def test_conv2d_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)  # 10x10 -> 5x5
    # each of the 8*5*5 outputs takes 3*3*3 MACs (the bias add is not a MAC)
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == 8 * 5 * 5 * 3 * 3 * 3
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False)
    assert count_macs(grouped, torch.zeros(1, 4, 6, 6)) == 8 * 6 * 6 * (4 // 2) * 9


def test_linear_macs_by_hand_and_params():
    fc = nn.Linear(20, 7)
    assert count_macs(fc, torch.zeros(1, 20)) == 140
    assert count_macs(fc, torch.zeros(3, 20)) == 420
    assert count_params(fc) == 20 * 7 + 7


def resnet18_48_grey_macs() -> int:
    """torchvision ResNet-18 on 1x48x48, 7 classes, by hand (conv1 7x7 s2 -> 24x24, max-pool -> 12x12)."""
    conv = lambda cin, cout, k, hw: cin * cout * k * k * hw * hw  # noqa: E731
    stem = conv(1, 64, 7, 24)
    layer1 = 4 * conv(64, 64, 3, 12)
    layer2 = conv(64, 128, 3, 6) + 3 * conv(128, 128, 3, 6) + conv(64, 128, 1, 6)
    layer3 = conv(128, 256, 3, 3) + 3 * conv(256, 256, 3, 3) + conv(128, 256, 1, 3)
    layer4 = conv(256, 512, 3, 2) + 3 * conv(512, 512, 3, 2) + conv(256, 512, 1, 2)
    return stem + layer1 + layer2 + layer3 + layer4 + 512 * 7


def test_resnet18_at_48_grey():
    model = METHODS.get("resnet18_pretrained")(in_chans=1, input_size=48)
    model.train()
    c = complexity(model)
    assert model.training  # restored
    assert c["macs"] == resnet18_48_grey_macs() == 94_346_752
    assert c["macs"] == pytest.approx(0.09e9, rel=0.05)  # the 0.09 GMACs (rounded)
    assert c["params"] == pytest.approx(11.2e6, rel=0.01)


class _Clip(nn.Module):
    modality = "dynamic"

    def __init__(self, frames: int | None = None) -> None:
        super().__init__()
        self.in_chans, self.input_size = 3, 8
        if frames is not None:
            self.default_frames = frames
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C, H, W]
        return self.fc(x.flatten(2)).mean(1)


def test_example_input_per_modality():
    assert example_input(METHODS.get("resnet18_pretrained")(in_chans=1, input_size=32)).shape == (1, 1, 32, 32)
    assert example_input(_Clip()).shape == (1, 16, 3, 8, 8)
    assert example_input(_Clip(frames=4)).shape == (1, 4, 3, 8, 8)
    assert complexity(_Clip()) == {"params": 192 * 2 + 2, "macs": 16 * 192 * 2}
    lstm = METHODS.get("resnet18_lstm")(in_chans=3, input_size=32)
    assert example_input(lstm).shape == (1, 16, 3, 32, 32)
