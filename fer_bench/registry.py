"""Name -> class registries for methods and datasets (timm's ``@register_model`` idea), and where
each name comes from.

``METHODS`` and ``DATASETS`` are filled by decorators: the built-in ones in ``fer_bench.methods``
and ``fer_bench.data`` (importing those packages registers everything they define), others from
code outside the package, found three ways:

- an installed distribution's entry point in the group ``fer_bench.methods`` or
  ``fer_bench.datasets`` (the Python packaging standard; loaded the first time a registry is
  listed or asked for a name it does not hold);
- ``--import MODULE`` on any command, or ``imports:`` in a suite (:func:`import_modules`): a
  dotted module name importable from the current folder or ``sys.path``, or a ``.py`` file or a
  package folder;
- any ``import`` of the user's own code before the registry is used.

Each name remembers its source (:meth:`Registry.source`, shown by ``fer-bench list``); a name that
two sources register is refused with one line naming both.  :func:`imported` lists what
:func:`import_modules` loaded, so that a suite's workers (``--parallel``, SLURM) import the same.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from fer_bench.errors import UserError

T = TypeVar("T")

#: entry-point groups that register methods and datasets from installed distributions
ENTRY_POINT_GROUPS = {"method": "fer_bench.methods", "dataset": "fer_bench.datasets"}
BUILTIN = "built-in"

_loading: list[str] = []  # the source being imported now (innermost last)
_imported: list[dict[str, str]] = []  # what import_modules loaded: {"module", "path", "spec"}


class UnknownNameError(KeyError):
    """A method or dataset name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would print the repr with quotes
        return str(self.args[0])


class PluginError(UserError, ValueError):
    """Code from outside the package that cannot be used: a module that does not import, or a name
    that two sources register.  One line, naming the module or both sources."""


@contextmanager
def _source(text: str):
    _loading.append(text)
    try:
        yield
    finally:
        _loading.pop()


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    if module == "fer_bench" or module.startswith("fer_bench."):  # also when a plugin's import loads the package
        return BUILTIN
    return _loading[-1] if _loading else f"module {module}"


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = ENTRY_POINT_GROUPS.get(kind)
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self._aliases: dict[str, str] = {}  # old name -> registered name (never listed, always resolved)
        self._entry_points_loaded = self.group is None

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            source = _source_of(obj)
            old = self._items.get(name)
            same = old is obj or (old is not None and (old.__module__, old.__qualname__)
                                  == (obj.__module__, obj.__qualname__) and self._sources[name] == source)
            if (old is not None and not same) or name in self._aliases:
                where = self._sources.get(name, f"the alias of {self._aliases.get(name)}")
                raise PluginError(f"{self.kind} {name!r} is registered twice: by {where} and by {source}")
            self._items[name] = obj
            self._sources[name] = source
            obj.registry_name = name
            return obj

        return deco

    def alias(self, old: str, name: str) -> None:
        """Let ``old`` resolve to the registered ``name`` (for names that files outside the package
        may still hold: suites, checkpoints, scripts); an alias is not listed by :meth:`names`."""
        if old in self._items or self._aliases.get(old, name) != name:
            raise PluginError(f"{self.kind} {old!r} is registered twice: by {self._sources.get(old, 'an alias')} "
                              f"and as an alias of {name!r}")
        self.get(name)
        self._aliases[old] = name

    def load_entry_points(self) -> None:
        """Import every installed distribution's entry point of this registry's group (once)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True  # before importing: a plugin may use the registry itself
        for ep in sorted(importlib.metadata.entry_points(group=self.group), key=lambda e: e.name):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an unknown distribution"
            where = f"entry point {ep.name} ({ep.value}) of {dist}"
            with _source(where):
                try:
                    ep.load()
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(f"{where}, group {self.group}: importing it failed: "
                                      f"{type(e).__name__}: {e}") from None

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (itself unless it is an alias)."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> T:
        name = self._aliases.get(name, name)
        if name not in self._items:
            self.load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}: expected one of {valid} (code outside "
                                   f"fer_bench: --import MODULE or an entry point in group {self.group})") from None

    def source(self, name: str) -> str:
        """Where ``name`` was registered: ``built-in``, ``entry point ... of DIST VERSION``,
        ``--import SPEC`` or ``module NAME``."""
        self.get(name)
        return self._sources[self.canonical(name)]

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name not in self._items and name not in self._aliases:
            self.load_entry_points()
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


METHODS: Registry = Registry("method")
DATASETS: Registry = Registry("dataset")


def _import_path(path: Path) -> tuple[str, Path]:
    """``(module name, folder to put on sys.path)`` of a ``.py`` file or a package folder."""
    path = path.resolve()
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise PluginError(f"--import {path}: expected a package folder (with __init__.py), found a folder without one")
        return path.name, path.parent
    return path.stem, path.parent


def _search_root(mod) -> str:
    """The sys.path folder a dotted module was found in: its file, up one folder per package level."""
    if not getattr(mod, "__file__", None):
        return ""
    levels = mod.__name__.count(".") + (1 if mod.__file__.endswith("__init__.py") else 0)
    return str(Path(mod.__file__).resolve().parents[levels])


def import_modules(specs: Sequence[str], base: Path | None = None, flag: str = "--import") -> list[str]:
    """Import user code that registers methods or datasets; return the module names.

    A spec is a ``.py`` file, a package folder (relative to ``base`` when given, e.g. a suite
    file's folder, else to the current folder) or a dotted module name (looked up in ``base``, the
    current folder and ``sys.path``).  Every failure is a :class:`PluginError` naming ``flag``, the
    spec and why, before any work starts."""
    names = []
    for spec in specs:
        spec = str(spec)
        path = Path(spec).expanduser()
        candidates = [base / path, path] if base is not None and not path.is_absolute() else [path]
        found = next((p for p in candidates if p.suffix == ".py" and p.is_file()
                      or p.is_dir() and (p / "__init__.py").is_file()), None)
        if found is not None:
            module, folder = _import_path(found)
            loaded = sys.modules.get(module)
            if loaded is not None and getattr(loaded, "__file__", None) and \
                    Path(loaded.__file__).resolve().parent not in (found.resolve(), found.resolve().parent):
                raise PluginError(f"{flag} {spec}: a different module named {module!r} is already imported "
                                  f"({loaded.__file__}); rename the file")
        elif spec.endswith(".py") or "/" in spec or not all(p.isidentifier() for p in spec.split(".")):
            raise PluginError(f"{flag} {spec}: expected an existing .py file or package folder, found none"
                              + (f" (looked in {base} and the current folder)" if base is not None else ""))
        else:
            module, folder = spec, None
        extra = [str(folder)] if folder is not None else [str(p) for p in (base, Path.cwd()) if p is not None]
        for p in reversed(extra):
            if p not in sys.path:
                sys.path.insert(0, p)
        with _source(f"--import {spec}"):
            try:
                mod = importlib.import_module(module)
            except PluginError:
                raise
            except ModuleNotFoundError as e:
                if e.name and module.split(".")[0] == e.name.split(".")[0] and folder is None:
                    raise PluginError(f"{flag} {spec}: no module of that name (looked in "
                                      f"{', '.join(extra)} and sys.path)") from None
                raise PluginError(f"{flag} {spec}: importing it failed: {type(e).__name__}: {e}") from None
            except Exception as e:
                raise PluginError(f"{flag} {spec}: importing it failed: {type(e).__name__}: {e}") from None
        record = {"module": module, "path": str(folder or _search_root(mod)), "spec": spec}
        if record not in _imported:
            _imported.append(record)
        names.append(module)
    return names


def imported() -> list[dict[str, str]]:
    """What :func:`import_modules` loaded in this process (module, the folder it was found in,
    the spec given): the run folder's plan keeps it for the suite's workers."""
    return [dict(r) for r in _imported]


def reimport(records: Sequence[dict[str, str]]) -> None:
    """Import again, in a worker, what :func:`imported` recorded in the process that planned the run."""
    for r in records:
        if r.get("module") in sys.modules:
            continue
        if r.get("path") and r["path"] not in sys.path:
            sys.path.insert(0, r["path"])
        with _source(f"--import {r.get('spec', r['module'])}"):
            try:
                importlib.import_module(r["module"])
            except PluginError:
                raise
            except Exception as e:
                raise PluginError(f"the run's import {r.get('spec', r['module'])} ({r['module']} from "
                                  f"{r.get('path') or 'sys.path'}): importing it failed: {type(e).__name__}: {e}") from None
