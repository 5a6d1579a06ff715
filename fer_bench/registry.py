"""Name -> class registries for methods and datasets (timm's ``@register_model`` idea).

``METHODS`` and ``DATASETS`` are filled by decorators in ``fer_bench.methods`` and
``fer_bench.data``; importing those packages registers everything they define.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A method or dataset name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would print the repr with quotes
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # old name -> registered name (never listed, always resolved)

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if (name in self._items and self._items[name] is not obj) or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            obj.registry_name = name
            return obj

        return deco

    def alias(self, old: str, name: str) -> None:
        """Let ``old`` resolve to the registered ``name`` (for names that files outside the package
        may still hold: suites, checkpoints, scripts); an alias is not listed by :meth:`names`."""
        if old in self._items or self._aliases.get(old, name) != name:
            raise ValueError(f"{self.kind} {old!r} is registered twice")
        self.get(name)
        self._aliases[old] = name

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (itself unless it is an alias)."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> T:
        try:
            return self._items[self._aliases.get(name, name)]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


METHODS: Registry = Registry("method")
DATASETS: Registry = Registry("dataset")
