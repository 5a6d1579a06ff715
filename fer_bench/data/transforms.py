"""Shared image/clip transforms (torchvision transforms v2): the augmentations and
normalisations a method's recipe names.

Datasets yield uint8 tensors: ``[C, H, W]`` for images, ``[T, C, H, W]`` for clips.  The
DataModule resizes to the method's input size, matches its channel count and converts to
float in [0, 1]; training adds the recipe's augmentation.  The same geometric transform is
applied to every frame of a clip (one draw per clip).

``resize`` (a recipe field): the side images are resized to before the crop that gives the
input size (WuJie1010's 44 px crops of 48 px faces; DACL's 224 crops of 256 px images).  Then
validation and test take the centre crop, or, for the ten-crop test (``crop=False``), keep
the whole resized image for the model to crop.  Without ``resize`` images are resized to the
input size directly.

Augmentations (``AUGMENTATIONS``):

* ``default`` — fer_bench's: random resized crop (area 0.8-1, aspect 0.9-1.1) + flip;
* ``ial`` — the official IAL code (``dataset_DFEW.py``, ``video_transform.py``): random sized
  crop (area 0.85-1, aspect 3/5-5/3), flip, ColorJitter(brightness 0.6), rotation ±4°;
* ``crop`` — WuJie1010 ``mainpro_FER.py``: RandomCrop(input) of the ``resize`` image + flip;
* ``dacl`` — DACL ``main.py`` / ``utils.py``: one of the five ``input`` crops (four corners,
  centre) of the ``resize`` image, drawn at random, + flip;
* ``none`` — the test transform (DFEW's ResNet-LSTM: ``train_data_augment: False``).
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


class RandomFiveCrop(torch.nn.Module):
    """One of the five crops of side ``size`` (four corners and the centre), drawn uniformly from
    torch's generator: DACL's ``RandomFiveCrop`` (``utils.py``)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 5, (1,)).item())
        return v2.functional.five_crop(x, [self.size, self.size])[k]


AUGMENTATIONS: tuple[str, ...] = ("default", "ial", "crop", "dacl", "none")
#: name -> (mean, std) per RGB channel; a grey input takes the mean of the three
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet statistics
    "dacl": ((0.5752, 0.4495, 0.4012), (0.2086, 0.1911, 0.1827)),  # amirhfarzaneh/dacl main.py
}


def build_transform(*, train: bool, input_size: int, in_chans: int, augmentation: str = "default",
                    normalization: str = "none", resize: int | None = None, crop: bool = True) -> v2.Compose:
    """The transform of one split.  Works on ``[C,H,W]`` and ``[T,C,H,W]`` uint8 tensors.

    ``resize``: the side the image is resized to before cropping ``input_size`` (``None``: the
    input size).  ``crop=False`` (the ten-crop test): evaluation keeps the whole resized image."""
    verify_choice(augmentation, "augmentation", AUGMENTATIONS)
    verify_choice(normalization, "normalization", tuple(NORMALIZATIONS))
    if resize is not None and int(resize) < int(input_size):
        raise ValueError(f"resize {resize} is smaller than the input size {input_size} it is cropped to")
    side = int(resize) if resize else int(input_size)
    ops: list[torch.nn.Module] = [MatchChannels(in_chans)]
    if train and augmentation in ("crop", "dacl"):
        ops += [
            v2.Resize((side, side), antialias=True),
            v2.RandomCrop(input_size) if augmentation == "crop" else RandomFiveCrop(input_size),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    elif train and augmentation == "ial":
        ops += [
            v2.RandomResizedCrop(input_size, scale=(0.85, 1.0), ratio=(3 / 5, 5 / 3), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=0.6),
            v2.RandomRotation(4),
        ]
    elif train and augmentation == "default":
        ops += [
            v2.RandomResizedCrop(input_size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    elif side == int(input_size) or not crop:
        ops += [v2.Resize((side, side), antialias=True), v2.ToDtype(torch.float32, scale=True)]
    else:  # evaluation (and augmentation none) with a resize: the centre crop of the input size
        ops += [v2.Resize((side, side), antialias=True), v2.CenterCrop(input_size), v2.ToDtype(torch.float32, scale=True)]
    stats = NORMALIZATIONS[normalization]
    if stats is not None:
        mean, std = stats
        if in_chans == 1:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        ops += [v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(ops)
