"""Errors that reach the user as one clear line (no traceback) from the command line."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: a name, an argument, a file."""


class DataFormatError(UserError):
    """A dataset file that is not as distributed: names the file, the line and what was expected."""

    def __init__(self, path, expected: str, *, line: int | None = None, found: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.expected = expected
        self.found = found
        where = self.path + (f", line {line}" if line is not None else "")
        msg = f"{where}: expected {expected}"
        if found is not None:
            msg += f", found {found}"
        super().__init__(msg)


class UnreadableSample(Exception):
    """A sample whose file is missing, empty or cannot be decoded; the run skips and counts it."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class InvalidChoice(UserError, ValueError):
    """A value outside a fixed set of choices (a ValueError too, for library callers)."""


def verify_choice(value, name: str, valid, *, where: str = ""):
    """``value`` if it is one of ``valid``, else a :class:`UserError` naming the setting, the
    value and the valid choices (torchvision's ``verify_str_arg`` idea).

    ``name`` is the flag or key the user wrote (``--precision``, ``layout``); ``where``
    prefixes the message (a dataset or a suite cell).  Raises :class:`InvalidChoice`.
    """
    valid = tuple(valid)
    if value not in valid:
        prefix = f"{where}: " if where else ""
        raise InvalidChoice(f"{prefix}{name} must be one of {', '.join(map(str, valid))}, got {value!r}")
    return value
