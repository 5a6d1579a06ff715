"""Errors that reach the user as one clear line (no traceback) from the command line."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: a name, an argument, a file."""


class DataFormatError(UserError):
    """A dataset file that is not as distributed: names the file, the line and what was expected."""

    def __init__(self, path, expected: str, *, line: int | None = None, found: str | None = None,
                 column: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found
        where = self.path + (f", line {line}" if line is not None else "") + (f", column {column}" if column else "")
        msg = f"{where}: expected {expected}"
        if found is not None:
            msg += f", found {found}"
        super().__init__(msg)


def yaml_error(path, error: Exception) -> DataFormatError:
    """A YAML syntax error of ``path`` (PyYAML's ``MarkedYAMLError``) as one line: the file, the line
    and the column of the problem, the problem and, when PyYAML gives it, what it was parsing."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    context, cmark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and cmark is not None:
        problem += f" ({' '.join(str(context).split())} at line {cmark.line + 1}, column {cmark.column + 1})"
    problem = problem[len("found "):] if problem.startswith("found ") else f"a syntax error: {problem}"
    return DataFormatError(path, "valid YAML", line=None if mark is None else mark.line + 1,
                           column=None if mark is None else mark.column + 1, found=problem)


def load_yaml(path):
    """The YAML document of ``path`` (read as UTF-8), or one :class:`DataFormatError` line: a syntax
    error with its line and column (:func:`yaml_error`), or a byte that is not UTF-8 with its offset."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise yaml_error(path, e) from None
    except UnicodeDecodeError as e:
        raise DataFormatError(path, "a UTF-8 YAML text file", found=f"byte 0x{e.object[e.start]:02x} at offset "
                              f"{e.start}, not UTF-8") from None


def check_out_folder(path, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder ``path`` that is a file or lies under one: one line
    naming the flag, the folder and the file in the way."""
    from pathlib import Path

    for p in (Path(path), *Path(path).parents):
        if p.exists() and not p.is_dir():
            raise UserError(f"{flag} {path}: expected a folder to write into, found a file"
                            + ("" if p == Path(path) else f" ({p})"))


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
        raise InvalidChoice(f"{prefix}{name}: expected one of {', '.join(map(str, valid))}, got {value!r}")
    return value
