"""Any timm or torchvision classifier as a baseline row: the network ``-m backbone=`` names.

``backbone`` is ``timm/<model>`` (any name ``timm.list_models()`` gives, with an optional
pretrained tag: ``timm/convnext_tiny.fb_in1k``) or ``torchvision/<builder>`` (any classification
builder ``torchvision.models.list_models(module=torchvision.models)`` gives: ``torchvision/resnet50``).
The network is that model with its classifier replaced by a linear layer to the dataset's classes
(timm's ``num_classes``; torchvision's ``num_classes`` of the builder), cross entropy.  A grey
input (``--in-chans 1``) gets a one-channel stem: timm builds it itself (``in_chans``); for
torchvision the first 3-channel convolution is replaced by a 1-channel one.  A name that is not a
model of either library is a one-line :class:`~fer_bench.errors.UserError` (exit 2) saying where
the valid names are listed, raised when the settings are checked, before any data is read.

Weights: the run's ``--weights`` (a local file, or a name registered in :mod:`fer_bench.weights`
under ``$FER_WEIGHTS``), so that a backbone's weights are found, checksummed and recorded in the
row's ``init`` like every other pre-trained row's, rather than by a second mechanism.  A timm file
is loaded by timm itself (``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)``): its
``.safetensors`` or ``.pth`` format, the model's own checkpoint filter (e.g. a ViT's position
embedding resampled to another input size), the classifier dropped, and an RGB stem summed over
its input channels into a grey one.  A Lightning checkpoint (``.ckpt``, e.g. a run of this method
on another dataset) and every torchvision file go through :meth:`FERMethod.load_weights
<fer_bench.methods.base.FERMethod.load_weights>` (same stem rule).  Nothing is ever downloaded:
timm is asked for pretrained weights only with a local file, and while it loads one its download
functions (and torch.hub's) are replaced by one that raises.

Input size and normalisation: the recipe (``metafiles/backbone.yaml``) states what the ImageNet
models of both libraries use (224 px, 3 channels, ImageNet mean/std); :meth:`Backbone.adapt_recipe`,
called by :func:`fer_bench.resolve.resolve`, replaces the input size and normalisation by the
named backbone's own configuration (timm: the tag's ``pretrained_cfg`` ``input_size``, ``mean``,
``std``; torchvision: the builder's ``DEFAULT`` weights' transforms ``crop_size``, ``mean``,
``std``).  The run uses the backbone's values rather than recording a deviation from 224 px /
ImageNet, because a row named ``timm/efficientnet_b3`` claims that network as its authors
pre-process it: at another size or mean its weights are mis-fed for a reason that is fer_bench's,
and a deviation on every such row would mark a choice the user never made.  ``deviations`` keeps
its meaning (the run against the recipe it claims: ``--input-size 48`` gives ``input_size 48≠288``).
Only the crop is taken, not timm's ``crop_pct`` resize: FER faces are already crops, and a test-time
centre crop the training views never see would cut the chin and brow.  A normalisation must be
one of :data:`fer_bench.data.transforms.NORMALIZATIONS`; a backbone whose mean/std is none of them
(the 0.5 / 0.5 of timm's ViTs and Inceptions, CLIP's) is refused unless the run chooses one with
``-d normalization=NAME``, which its row then lists as a deviation from the backbone's values.
"""
from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_bench.errors import UserError
from fer_bench.methods.base import FERMethod
from fer_bench.methods.metafile import Item, Recipe
from fer_bench.registry import METHODS

LIBRARIES = ("timm", "torchvision")
DEFAULT_BACKBONE = "torchvision/resnet18"
#: ImageNet statistics: torchvision's, and timm's IMAGENET_DEFAULT_MEAN / _STD
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HOW_TO_LIST = ("timm/<model> (python -c \"import timm; print(timm.list_models('convnext*'))\"), "
               "torchvision/<builder> (python -c \"import torchvision; "
               "print(torchvision.models.list_models(module=torchvision.models))\")")


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def parse_backbone(spec: Any) -> tuple[str, str]:
    """``(library, name)`` of a backbone ``timm/<model>`` or ``torchvision/<builder>``; a
    :class:`UserError` naming it and where the valid names are listed otherwise."""
    library, _, name = str(spec).partition("/")
    if not isinstance(spec, str) or library not in LIBRARIES or not name:
        raise UserError(f"backbone {spec!r}: expected timm/<model> or torchvision/<builder>; valid names: {HOW_TO_LIST}")
    if library == "timm":
        import timm
        from timm.models import get_pretrained_cfg

        ok = ":" not in name and timm.is_model(name)  # no hf-hub: names (a download)
        if ok and "." in name:
            try:
                get_pretrained_cfg(name)
            except RuntimeError:  # a tag the model does not have
                ok = False
        known = timm.list_models
    else:
        ok = name in _torchvision_names()
        known = _torchvision_names
    if not ok:
        close = difflib.get_close_matches(name, known(), n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UserError(f"backbone {spec!r}: no {library} model of that name{hint}; valid names: {HOW_TO_LIST}")
    return library, name


class BackboneNames:
    """The allowed values of the ``backbone`` hyper-parameter, for :func:`fer_bench.validation.validate`:
    contains every valid backbone, and lists as how to find them (timm knows over a thousand)."""

    def __contains__(self, value: object) -> bool:
        try:
            parse_backbone(value)
        except UserError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(HOW_TO_LIST.split(", "))


def backbone_config(spec: str) -> tuple[int, tuple[float, ...], tuple[float, ...], str]:
    """``(input size, mean, std, where they come from)`` of a backbone's own configuration."""
    library, name = parse_backbone(spec)
    if library == "timm":
        import timm
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        if cfg is None:  # an architecture without released weights: timm's defaults
            return 224, *IMAGENET, f"timm {timm.__version__}: {name} has no pretrained_cfg, timm's defaults"
        tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else name
        return (int(cfg.input_size[-1]), tuple(cfg.mean), tuple(cfg.std),
                f"timm {timm.__version__} pretrained_cfg of {tag}")
    import torchvision
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
        keywords = getattr(weights.transforms, "keywords", {})
        if "crop_size" not in keywords:
            raise ValueError(name)
    except (ValueError, KeyError, AttributeError):
        return 224, *IMAGENET, f"torchvision {torchvision.__version__}: {name} has no weights, ImageNet's defaults"
    t = weights.transforms()  # ImageClassification: only its constants, no file
    return (int(t.crop_size[0]), tuple(t.mean), tuple(t.std),
            f"torchvision {torchvision.__version__} {weights} transforms")


def _stats_name(mean, std, normalizations: dict[str, Any]) -> str | None:
    for key, stats in normalizations.items():
        if stats is not None and all(abs(a - b) < 1e-3 for a, b in zip((*stats[0], *stats[1]), (*mean, *std))):
            return key
    return None


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """timm's and torch.hub's download functions replaced by one that raises, for the duration."""
    import timm.models._builder as builder
    import torch.hub

    def refuse(*args: Any, **kwargs: Any):
        raise RuntimeError("fer_bench never downloads weights: give a local file with --weights")

    targets = [(builder, n) for n in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file",
                                      "load_custom_from_hf") if hasattr(builder, n)]
    targets += [(torch.hub, n) for n in ("load_state_dict_from_url", "download_url_to_file")]
    saved = [(mod, n, getattr(mod, n)) for mod, n in targets]
    try:
        for mod, n in targets:
            setattr(mod, n, refuse)
        yield
    finally:
        for mod, n, fn in saved:
            setattr(mod, n, fn)


def _timm_model(name: str, num_classes: int, in_chans: int, input_size: int, file: str | None = None) -> nn.Module:
    """A timm model; pre-trained only from a local ``file`` (never a download)."""
    import timm

    kwargs: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_chans)
    if file is not None:
        if not Path(file).is_file():
            raise UserError(f"weights {file}: no such file")
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))
    else:
        kwargs["pretrained"] = False
    size, *_ = backbone_config(f"timm/{name}")
    with no_downloads():
        if input_size != size:  # a model with position embeddings (ViT, Swin) is built for the run's size
            try:
                return timm.create_model(name, img_size=input_size, **kwargs)
            except TypeError:  # a network that takes any size (a CNN) has no img_size
                pass
        return timm.create_model(name, **kwargs)


def _torchvision_model(name: str, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
    """A torchvision classifier from scratch (``weights=None``) with ``num_classes`` outputs; a
    1-channel input gets a 1-channel first convolution."""
    import torchvision

    kwargs: dict[str, Any] = dict(weights=None, num_classes=num_classes)
    if name.startswith("vit_"):
        kwargs["image_size"] = input_size  # its position embedding is built for one size
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False  # one output: the auxiliary heads are the paper's training trick
        kwargs["init_weights"] = True
    model = torchvision.models.get_model(name, **kwargs)
    if in_chans != 3:
        where, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)
        parent = model.get_submodule(where.rpartition(".")[0]) if "." in where else model
        grey = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                         conv.groups, conv.bias is not None, conv.padding_mode)
        setattr(parent, where.rpartition(".")[2], grey)
    return model


@METHODS.register("backbone")
class Backbone(FERMethod):
    """The timm or torchvision classifier ``backbone`` names, its head to the dataset's classes; cross entropy."""

    modality = "static"
    default_input_size = 224
    default_in_chans = 3
    hparam_choices = {**FERMethod.hparam_choices, "backbone": BackboneNames()}

    def __init__(self, backbone: str = DEFAULT_BACKBONE, **kwargs: Any) -> None:
        library, name = parse_backbone(backbone)
        super().__init__(backbone=backbone, **kwargs)
        self.library, self.backbone_name = library, name
        make = _timm_model if library == "timm" else _torchvision_model
        self.backbone = make(name, self.num_classes, self.in_chans, self.input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @classmethod
    def adapt_recipe(cls, recipe: Recipe, method_args: dict[str, Any], data_args: dict[str, Any],
                     normalizations: dict[str, Any]) -> Recipe:
        """The recipe with the named backbone's own input size and normalisation (see the module's
        docstring); a :class:`UserError` for a mean/std that is no named normalisation unless
        ``data_args`` chooses one."""
        spec = method_args.get("backbone", DEFAULT_BACKBONE)
        size, mean, std, where = backbone_config(spec)
        norm = _stats_name(mean, std, normalizations)
        if norm is None and "normalization" not in data_args:
            raise UserError(f"backbone {spec}: its mean {mean} and std {std} ({where}) are none of fer_bench's "
                            f"normalisations ({', '.join(normalizations)}); choose one with -d normalization=NAME "
                            "(the row lists it as a deviation)")
        stats = "mean(" + ",".join(f"{v:.4g}" for v in mean) + ")std(" + ",".join(f"{v:.4g}" for v in std) + ")"
        fields = {**recipe.fields,
                  "input_size": Item(size, "reconstructed", f"the backbone's own: {where}, input_size {size}"),
                  "normalization": Item(norm or stats, "reconstructed", f"the backbone's own: {where}, {stats}")}
        return Recipe(recipe.method, fields, recipe.datasets)

    def load_weights(self, path: str) -> dict[str, list[str]]:
        """A timm backbone's file loaded by timm (see the module's docstring); a ``.ckpt`` and a
        torchvision file as every method's (:meth:`FERMethod.load_weights`)."""
        if self.library != "timm" or str(path).endswith(".ckpt"):
            return super().load_weights(path)
        loaded = _timm_model(self.backbone_name, self.num_classes, self.in_chans, self.input_size, file=str(path))
        self.backbone.load_state_dict(loaded.state_dict())
        cfg = loaded.pretrained_cfg

        def names(key: str) -> tuple[str, ...]:
            v = cfg.get(key) or ()
            return (v,) if isinstance(v, str) else tuple(v)

        head = tuple(f"{n}." for n in names("classifier")) if self.num_classes != cfg.get("num_classes") else ()
        keys = sorted(loaded.state_dict())
        return {"loaded": [k for k in keys if not k.startswith(head)],
                "adapted": [f"{n}.weight" for n in names("first_conv")] if self.in_chans != 3 else [],
                "shape_mismatch": [], "missing": [k for k in keys if head and k.startswith(head)], "unexpected": []}
