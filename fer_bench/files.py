"""Atomic file writes: a reader sees the old file or the new one, never a part.

Used wherever a file that others read may be replaced while they read it: leaderboard
README and papers.csv, run-folder state, the regression baseline, the clip cache.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, fsync: bool = True) -> None:
    """Write ``path`` through ``write(binary_file)`` into a temporary file beside it, fsync
    (unless ``fsync=False``: a cache that can be rebuilt needs atomicity, not durability),
    then ``os.replace`` it into place; on any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
