"""Shared image/clip transforms (torchvision transforms v2).

Datasets yield uint8 tensors: ``[C, H, W]`` for images, ``[T, C, H, W]`` for clips.  The
DataModule resizes to the method's input size, matches its channel count and converts to
float in [0, 1]; training adds light augmentation (random resized crop, horizontal flip).
The same geometric transform is applied to every frame of a clip.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from fer_bench.errors import verify_choice


class MatchChannels(torch.nn.Module):
    """Grey <-> RGB so that any dataset feeds any model (channel dim is ``-3``)."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-3]
        if c == self.in_chans:
            return x
        if c == 1 and self.in_chans == 3:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
        if c == 3 and self.in_chans == 1:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(3, 1, 1)
            grey = (x.float() * w).sum(dim=-3, keepdim=True)
            return grey.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else grey
        raise ValueError(f"cannot map {c} channels to {self.in_chans}")


AUGMENTATIONS: tuple[str, ...] = ("default", "ial")
#: name -> (mean, std) per RGB channel; a grey input takes the mean of the three
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet statistics
}


def build_transform(*, train: bool, input_size: int, in_chans: int, augmentation: str = "default",
                    normalization: str = "none") -> v2.Compose:
    """The transform of one split.  Works on ``[C,H,W]`` and ``[T,C,H,W]`` uint8 tensors."""
    verify_choice(augmentation, "augmentation", AUGMENTATIONS)
    verify_choice(normalization, "normalization", tuple(NORMALIZATIONS))
    ops: list[torch.nn.Module] = [MatchChannels(in_chans)]
    if train and augmentation == "ial":
        ops += [
            v2.RandomResizedCrop(input_size, scale=(0.85, 1.0), ratio=(3 / 5, 5 / 3), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=0.6),
            v2.RandomRotation(4),
        ]
    elif train:
        ops += [
            v2.RandomResizedCrop(input_size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    else:
        ops += [v2.Resize((input_size, input_size), antialias=True), v2.ToDtype(torch.float32, scale=True)]
    stats = NORMALIZATIONS[normalization]
    if stats is not None:
        mean, std = stats
        if in_chans == 1:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        ops += [v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(ops)
