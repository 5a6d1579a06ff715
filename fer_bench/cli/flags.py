"""The command-line flags: one per field of :mod:`fer_bench.settings`, and the argument types and
checks the commands share (:func:`at_least`, :func:`check_data_args`).

argparse is built from the dataclasses (rather than with jsonargparse) because it is the standard
library, needs no new pinned dependency, and leaves the error line ours to word: a flag's value is
checked by the same :func:`fer_bench.settings.check_value` as a suite key.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from fer_bench.errors import UserError
from fer_bench.settings import SETTINGS, TrainConfig, check_value, default_of, expected, flag_of, names


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
    t = SETTINGS[name].metadata["type"]

    def parse(text: str):
        v: Any = text
        if t in (int, float):
            try:
                v = int(text) if t is int else float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {expected(name)}, got {text!r}") from None
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
    for name in (f.name for f in fields(TrainConfig)):
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


def at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, else one line saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def check_data_args(dataset: str, data_args: dict, reserved: tuple[str, ...] = ("root", "fold")) -> None:
    """Refuse, before any data is read, a ``-d KEY=VALUE`` that the dataset's constructor does not
    take (or that the command sets itself: ``reserved``) or of the wrong type."""
    from fer_bench.data import DATASETS
    from fer_bench.validation import check_kwargs

    check_kwargs(DATASETS.get(dataset), data_args, what=f"dataset {dataset}", flag="-d", reserved=reserved)
