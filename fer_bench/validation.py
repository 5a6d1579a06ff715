"""A run's settings checked against the registries: method and dataset names, and the method
hyper-parameters (``-m``) and dataset arguments (``-d``) against the constructors' signatures and
the method's declared choices and ranges (``FERMethod.hparam_choices``, ``hparam_ranges``).

The settings themselves (types, ranges, choices) are checked in :mod:`fer_bench.settings` without
importing a method or dataset; what depends on the registered classes is checked here.
"""
from __future__ import annotations

import inspect
import operator
import typing
from collections.abc import Iterable
from typing import Any

from fer_bench.errors import UserError
from fer_bench.settings import SETTINGS, TrainConfig, flag_of, uses_cuda


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


_BOUNDS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def check_kwargs(cls: type, kwargs: dict[str, Any], *, what: str, flag: str, reserved: Iterable[str] = (),
                 choices: dict[str, tuple] | None = None,
                 ranges: dict[str, tuple[tuple[str, float], ...]] | None = None) -> None:
    """Every key of ``kwargs`` is a constructor parameter of ``cls`` (minus ``reserved``, which
    the run sets itself) with a value of its annotated type and, where ``choices`` lists them,
    one of the allowed values, and where ``ranges`` bounds it (``{"lr": ((">", 0),)}``: each bound
    an operator ``>``, ``>=``, ``<``, ``<=`` and a number), within them; else a UserError naming
    ``flag KEY``, the value and what is expected."""
    params = constructor_params(cls)
    reserved = set(reserved)
    valid = sorted(k for k in params if k not in reserved)
    for key, value in kwargs.items():
        label = f"{flag}{key}" if flag.endswith(".") else f"{flag} {key}"  # "-m lr", "-o method_args.lr"
        if key not in params or key in reserved:
            hint = f" (set it with {flag_of(key)})" if key in reserved and key in SETTINGS else ""
            raise UserError(f"{label}: {what} has no such argument{hint}: expected one of {', '.join(valid)}")
        allowed = (choices or {}).get(key)
        if allowed is not None and value not in allowed:
            raise UserError(f"{label}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
        if not _matches(params[key], value):
            raise UserError(f"{label}: expected {_hint_name(params[key])} ({what}), got {value!r}")
        bounds = (ranges or {}).get(key, ())
        if bounds and isinstance(value, (int, float)) and not all(_BOUNDS[op](value, b) for op, b in bounds):
            raise UserError(f"{label}: expected a number {' and '.join(f'{op} {b:g}' for op, b in bounds)}, "
                            f"got {value!r}")


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
                     choices=getattr(method_cls, "hparam_choices", None),
                     ranges=getattr(method_cls, "hparam_ranges", None))
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
