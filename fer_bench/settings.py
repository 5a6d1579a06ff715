"""One definition of a run's settings: :class:`TrainConfig`, from which everything else is derived.

Each setting is written once, as a field of :class:`TrainConfig` with its type, default, help,
allowed values and *kind* in the field's metadata.  From it come

- the ``fer-bench train`` flags (:func:`add_setting_args`; ``--batch-size`` for ``batch_size``),
- the ``fer-bench bench`` launch and speed flags (the same function, other kinds),
- the keys a suite cell may set (:data:`SUITE_KEYS`) and the job-to-config mapping of the
  runner (:meth:`fer_bench.bench.suite.Job.config`),
- the protocol settings of a config (:func:`protocol_of`), which with the method's recipe make a suite
  cell's config hash (:attr:`fer_bench.bench.suite.Job.config_hash`).

Kinds: ``job`` (which run: method, dataset, fold, seed), ``protocol`` (changes a number: in the
config hash and the leaderboard row), ``run`` (robustness: a suite key outside the hash),
``speed`` (never changes a sample or a number: suite key and bench flag, outside the hash),
``launch`` (where and how it runs: flags only), ``internal`` (set by the runner).

Every value is checked by :func:`check_value` before any data is read; a bad one is a
:class:`~fer_bench.errors.UserError` that names the flag or key, the value and what is
expected.  Method hyper-parameters (``-m``) and dataset arguments (``-d``) are checked against
the signatures of the method's and dataset's constructors (:func:`check_kwargs`).

argparse is built from the dataclass (rather than jsonargparse) because it is the standard
library, needs no new pinned dependency, and leaves the error line ours to word.

This module imports neither torch nor any method or dataset at import time.
"""
from __future__ import annotations

import argparse
import inspect
import typing
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from fer_bench.errors import UserError

PRECISIONS: tuple[str, ...] = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
ACCELERATORS: tuple[str, ...] = ("cpu", "gpu", "auto")
MONITORS: tuple[str, ...] = ("war", "uar")
LOGGERS: tuple[str, ...] = ("csv", "wandb")
CACHE_MODES: tuple[str, ...] = ("auto", "on", "off")
TTA_MODES: tuple[str, ...] = ("none", "hflip", "tencrop")  # the same as fer_bench.nn.tta.TTA_MODES (tested)
KINDS: tuple[str, ...] = ("job", "protocol", "run", "speed", "launch", "internal")


def setting(default: Any = MISSING, *, kind: str, help: str, type: Any = None, choices: tuple | None = None,
            minimum: float | None = None, maximum: float | None = None, flag: str | None = None,
            short: str | None = None, metavar: str | None = None, factory: Any = None):
    """A dataclass field carrying its command-line and validation spec."""
    assert kind in KINDS, kind
    meta = dict(kind=kind, help=help, type=type, choices=choices, minimum=minimum, maximum=maximum,
                flag=flag, short=short, metavar=metavar)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything one training run needs; the single source of every ``train`` flag and suite key."""

    method: str = setting(kind="job", type=str, help="registered method name (fer-bench list)")
    dataset: str = setting(kind="job", type=str, help="registered dataset name (fer-bench list)")
    root: str | None = setting(None, kind="launch", type=str, help="dataset folder as distributed")
    fold: int | None = setting(None, kind="job", type=int, minimum=0, help="fold of a k-fold protocol")
    seed: int = setting(0, kind="job", type=int, minimum=0, help="random seed")
    max_epochs: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                     help="training epochs (default: the method's)")
    batch_size: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                     help="training batch size (default: the method's recipe)")
    input_size: int | None = setting(None, kind="protocol", type=int, minimum=8,
                                     help="input side in pixels (default: the method's)")
    in_chans: int | None = setting(None, kind="protocol", type=int, choices=(1, 3),
                                   help="input channels (default: the method's)")
    limit_per_class: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                          help="at most N samples per class in each split")
    precision: str = setting("32-true", kind="protocol", type=str, choices=PRECISIONS,
                             help="32-true (default); bf16-mixed / 16-mixed autocast on GPU (16-mixed needs CUDA)")
    monitor: str = setting("war", kind="protocol", type=str, choices=MONITORS,
                           help="validation metric that picks the checkpoint")
    weights: str | None = setting(None, kind="protocol", type=str,
                                  help="weights to start from: a registered name under $FER_WEIGHTS "
                                       "(fer_bench.weights) or a local state dict (nothing is downloaded)")
    tta: str | None = setting(None, kind="protocol", type=str, choices=TTA_MODES,
                              help="test-time augmentation (default: the method's recipe): none; hflip (mean softmax "
                                   "of the image and its mirror); tencrop (four corners and centre at the input size, "
                                   "from the recipe's larger resize, and their mirrors)")
    method_args: dict[str, Any] = setting(kind="protocol", type=dict, factory=dict, flag="--method-arg", short="-m",
                                          metavar="KEY=VALUE",
                                          help="method hyper-parameter, e.g. -m lr=0.01 -m strategy=prediction_based")
    data_args: dict[str, Any] = setting(kind="protocol", type=dict, factory=dict, flag="--data-arg", short="-d",
                                        metavar="KEY=VALUE",
                                        help="dataset protocol argument, e.g. -d classes=8 -d label_mode=probability")
    max_unreadable: float = setting(0.01, kind="run", type=float, minimum=0.0, maximum=1.0,
                                    help="stop when more than this fraction of a split is unreadable (default 0.01)")
    test_every_epoch: bool = setting(False, kind="run", type=bool,
                                     help="also score the test split after every epoch (test_curve.csv; never used for "
                                          "selection): the row gets the best-test-epoch WAR/UAR beside the selected ones")
    # speed only (a sample is bit-identical either way; see fer_bench.data.cache):
    num_workers: int | None = setting(None, kind="speed", type=int, minimum=0,
                                      help="DataLoader workers (default: chosen from the machine, 0 on <= 2 CPUs)")
    cache_images: str = setting("auto", kind="speed", type=str, choices=CACHE_MODES,
                                help="in-memory decoded-image cache for image-file datasets (auto: when it fits "
                                     "--cache-budget-mb)")
    cache_budget_mb: float | None = setting(None, kind="speed", type=float, minimum=0.0,
                                            help="auto image-cache budget (default: RAM/4, at most 8 GiB)")
    clip_cache: str | None = setting(None, kind="speed", type=str, metavar="DIR",
                                     help="on-disk uint8 cache of decoded video frames (built once, reused, rebuilt "
                                          "when a source changes)")
    channels_last: bool = setting(False, kind="speed", type=bool,
                                  help="model and 4-D batches in channels_last memory format (faster GPU convolutions)")
    # where and how it runs:
    devices: int = setting(1, kind="launch", type=int, minimum=1, help="devices per node (DDP when > 1)")
    accelerator: str = setting("cpu", kind="launch", type=str, choices=ACCELERATORS, help="cpu, gpu or auto")
    num_nodes: int = setting(1, kind="launch", type=int, minimum=1, help="nodes (DDP across nodes when > 1)")
    logger: str = setting("csv", kind="launch", type=str, choices=LOGGERS,
                          help="csv, or wandb (offline unless wandb is configured)")
    out: str | None = setting(None, kind="launch", type=str,
                              help="output folder (default runs/<method>/<dataset>/seed<S>)")
    progress: bool = setting(True, kind="launch", type=bool, flag="--no-progress", help="no progress bar")
    wandb_group: str | None = setting(None, kind="internal", type=str, help="wandb group (set by the runner)")
    resume_from: str | None = setting(None, kind="internal", type=str,
                                      help="a run's last.ckpt to go on from (set by the runner for a job's next attempt)")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, check_value(f.name, getattr(self, f.name)))

    def out_dir(self) -> Path:
        """Deterministic default (every DDP rank re-launched from argv must agree on it)."""
        if self.out:
            return Path(self.out)
        tag = f"seed{self.seed}" + (f"-fold{self.fold}" if self.fold is not None else "")
        return Path("runs") / self.method / self.dataset / tag


SETTINGS: dict[str, Any] = {f.name: f for f in fields(TrainConfig)}


def names(*kinds: str) -> list[str]:
    """Setting names of the given kinds, in definition order."""
    return [n for n, f in SETTINGS.items() if f.metadata["kind"] in kinds]


# the keys of a suite cell: settings of these kinds, plus the suite's own
SUITE_ONLY_KEYS: tuple[str, ...] = ("label", "folds", "seeds", "cross_eval")
SUITE_KEYS: tuple[str, ...] = ("method", "dataset") + tuple(names("protocol", "run", "speed")) + SUITE_ONLY_KEYS
PROTOCOL_KEYS: tuple[str, ...] = tuple(names("protocol"))


def flag_of(name: str) -> str:
    spec = SETTINGS[name].metadata
    return spec["flag"] or "--" + name.replace("_", "-")


def default_of(name: str) -> Any:
    f = SETTINGS[name]
    return f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]


def _expected(spec: dict[str, Any]) -> str:
    t = spec["type"]
    if spec["choices"]:
        return "one of " + ", ".join(map(str, spec["choices"]))
    what = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping"}.get(t, getattr(t, "__name__", str(t)))
    lo, hi = spec["minimum"], spec["maximum"]
    if lo is not None and hi is not None:
        what += f" in [{lo:g}, {hi:g}]"
    elif lo is not None:
        what += f" >= {lo:g}"
    return what


def check_value(name: str, value: Any, label: str | None = None) -> Any:
    """``value`` as the setting ``name`` takes it, or a UserError naming ``label`` (the flag or
    suite key; default the flag), the value and what is expected.  ``None`` is accepted where
    the default is ``None``."""
    f = SETTINGS.get(name)
    if f is None:
        raise UserError(f"unknown setting {name!r}; valid: {', '.join(SETTINGS)}")
    spec = f.metadata
    label = label or flag_of(name)
    if value is None and default_of(name) is None:
        return None
    if value is MISSING or (value is None and name in ("method", "dataset")):
        raise UserError(f"{label}: a value is required ({_expected(spec)})")
    ok, v = _coerce(spec["type"], value)
    if ok and spec["choices"] and v not in spec["choices"]:
        ok = False
    if ok and isinstance(v, (int, float)) and not isinstance(v, bool):
        if (spec["minimum"] is not None and v < spec["minimum"]) or (spec["maximum"] is not None and v > spec["maximum"]):
            ok = False
    if not ok:
        raise UserError(f"{label}: expected {_expected(spec)}, got {value!r}")
    return v


def _coerce(t: Any, value: Any) -> tuple[bool, Any]:
    """(is the value of type ``t``, the value).  Numbers are never parsed from free text here:
    the command line parses with YAML / argparse first, so ``'abc'`` for a float is an error."""
    if t is bool:
        return isinstance(value, bool), value
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if t is str:
        return isinstance(value, str) and value != "", value
    if t is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else value
    return True, value


# -- argparse from the dataclass ----------------------------------------------------------------
def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as YAML (``lr=0.01`` a float, ``frames=8`` an int)."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.replace("-", "_"), yaml.safe_load(v)
    except yaml.YAMLError:
        return k.replace("-", "_"), v


def _arg_type(name: str):
    spec = SETTINGS[name].metadata
    t = spec["type"]

    def parse(text: str):
        v: Any = text
        if t in (int, float):
            try:
                v = int(text) if t is int else float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {_expected(spec)}, got {text!r}") from None
        try:
            return check_value(name, v)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None

    parse.__name__ = {int: "integer", float: "number"}.get(t, "value")
    return parse


def add_setting_args(parser: argparse.ArgumentParser, kinds: Iterable[str], *, exclude: Iterable[str] = (),
                     required: Iterable[str] = (), defaults_none: bool = False) -> None:
    """Add one flag per setting of ``kinds``.  ``defaults_none``: every flag defaults to None
    (``fer-bench bench``: a flag given overrides the suite; one not given leaves it)."""
    kinds, exclude, required = set(kinds), set(exclude), set(required)
    for name, f in SETTINGS.items():
        spec = f.metadata
        if spec["kind"] not in kinds or name in exclude:
            continue
        flags = [flag_of(name)] + ([spec["short"]] if spec["short"] else [])
        flags = [flags[-1], flags[0]] if spec["short"] else flags
        kw: dict[str, Any] = dict(dest=name, help=spec["help"])
        if spec["type"] is bool:
            # --channels-last sets True; --no-progress sets progress False
            kw.update(action="store_false" if default_of(name) else "store_true")
            if defaults_none:
                kw["default"] = None
        elif spec["type"] is dict:
            kw.update(type=key_value, action="append", default=None if defaults_none else [],
                      metavar=spec["metavar"])
        else:
            kw.update(type=_arg_type(name), default=None if defaults_none else default_of(name))
            if spec["choices"]:
                kw["metavar"] = "{" + ",".join(map(str, spec["choices"])) + "}"
            elif spec["metavar"]:
                kw["metavar"] = spec["metavar"]
            if name in required:
                kw["required"] = True
        parser.add_argument(*flags, **kw)


def config_from_args(args: argparse.Namespace, **extra: Any) -> TrainConfig:
    """A :class:`TrainConfig` from parsed flags (``-m``/``-d`` pairs become dicts)."""
    values: dict[str, Any] = {}
    for name in SETTINGS:
        if hasattr(args, name):
            v = getattr(args, name)
            if SETTINGS[name].metadata["type"] is dict:
                v = dict(v or [])
            values[name] = v
    values.update(extra)
    return TrainConfig(**values)


def given_settings(args: argparse.Namespace, kinds: Iterable[str]) -> dict[str, Any]:
    """The settings of ``kinds`` that were given on a command line built with ``defaults_none``."""
    out = {}
    for name in names(*kinds):
        v = getattr(args, name, None)
        if v is not None:
            out[name] = v
    return out


def protocol_of(cfg: TrainConfig) -> dict[str, Any]:
    """The protocol settings of a config (what its config hash covers)."""
    return {k: getattr(cfg, k) for k in PROTOCOL_KEYS}


# -- method hyper-parameters and dataset arguments -------------------------------------------------
def _keyword_parameters(cls: type):
    """``(__init__, parameter)`` for each keyword parameter of ``cls`` and its bases, bases first
    (so that a subclass's parameter of the same name comes later and wins)."""
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                yield init, p


def constructor_params(cls: type) -> dict[str, Any]:
    """Keyword parameters of ``cls`` and its bases' ``__init__`` (name -> resolved annotation)."""
    params: dict[str, Any] = {}
    hints: dict[Any, dict[str, Any]] = {}
    for init, p in _keyword_parameters(cls):
        if init not in hints:
            try:
                hints[init] = typing.get_type_hints(init)
            except Exception:  # an annotation that cannot be resolved: accept any value
                hints[init] = {}
        params[p.name] = hints[init].get(p.name, Any)
    return params


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Keyword parameters of ``cls`` and its bases' ``__init__`` (name -> default)."""
    return {p.name: p.default for _, p in _keyword_parameters(cls)}


def _matches(hint: Any, value: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple, set, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(_matches(args[0], v) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint: Any) -> str:
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    return str(hint).replace("typing.", "")


def check_kwargs(cls: type, kwargs: dict[str, Any], *, what: str, flag: str, reserved: Iterable[str] = (),
                 choices: dict[str, tuple] | None = None) -> None:
    """Every key of ``kwargs`` is a constructor parameter of ``cls`` (minus ``reserved``, which
    the run sets itself) with a value of its annotated type and, where ``choices`` lists them,
    one of the allowed values; else a UserError naming ``flag KEY``, the value and what is
    expected."""
    params = constructor_params(cls)
    reserved = set(reserved)
    valid = sorted(k for k in params if k not in reserved)
    for key, value in kwargs.items():
        label = f"{flag}{key}" if flag.endswith(".") else f"{flag} {key}"  # "-m lr", "-o method_args.lr"
        if key not in params or key in reserved:
            hint = f" (set it with {flag_of(key)})" if key in reserved and key in SETTINGS else ""
            raise UserError(f"{label}: {what} has no such argument{hint}; valid: {', '.join(valid)}")
        allowed = (choices or {}).get(key)
        if allowed is not None and value not in allowed:
            raise UserError(f"{label}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
        if not _matches(params[key], value):
            raise UserError(f"{label}: {what} expects {_hint_name(params[key])}, got {value!r}")


def validate(cfg: TrainConfig, *, where: str = "", method_flag: str = "-m", data_flag: str = "-d",
             check_device: bool = True) -> None:
    """Check a config against the registries before any data is read: known method and
    dataset of the same modality, method hyper-parameters and dataset arguments of the right
    names and types, and (``check_device``) a precision this machine can run."""
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS

    prefix = f"{where}: " if where else ""
    try:
        method_cls = METHODS.get(cfg.method)
        data_cls = DATASETS.get(cfg.dataset)
    except KeyError as e:
        raise UserError(prefix + str(e)) from None
    if method_cls.modality != data_cls.info.modality:
        raise UserError(f"{prefix}method {cfg.method!r} is {method_cls.modality} but dataset {cfg.dataset!r} is "
                        f"{data_cls.info.modality}")
    try:
        check_kwargs(method_cls, cfg.method_args, what=f"method {cfg.method}", flag=method_flag,
                     reserved=("num_classes", "classes", "in_chans", "input_size"),
                     choices=getattr(method_cls, "hparam_choices", None))
        check_kwargs(data_cls, cfg.data_args, what=f"dataset {cfg.dataset}", flag=data_flag,
                     reserved=("root", "batch_size", "seed", "fold", "limit_per_class", "input_size", "in_chans", "tta"))
    except UserError as e:
        raise UserError(prefix + str(e)) from None
    if cfg.weights:
        from fer_bench.weights import resolve

        try:
            resolve(cfg.weights)  # a missing or damaged file: one line, before any data is read
        except UserError as e:
            raise UserError(prefix + str(e)) from None
    if check_device and cfg.precision == "16-mixed" and not uses_cuda(cfg.accelerator):
        raise UserError(f"{prefix}--precision 16-mixed needs a CUDA GPU (--accelerator gpu); on CPU use bf16-mixed")


def uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
