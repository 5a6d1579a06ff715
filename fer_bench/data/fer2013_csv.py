"""The FER2013 pixel csv (``fer2013.csv`` / ``icml_face_data.csv``): the vectorised parser.

A format module, not a dataset: :mod:`fer_bench.data.fer2013` and :mod:`fer_bench.data.ferplus`
(whose votes are aligned with this file by row position) both read their images through it.

The csv is parsed vectorised: pandas reads the three columns as text; the pixel column is
parsed in chunks of rows with one ``np.fromstring(..., sep=" ")`` per chunk after a per-row
count of separators (``np.add.reduceat``) proves every row has 2304 values; the images are kept
as one uint8 array ``[N, 48, 48]`` (83 MB for the full file) shared by the splits.  A bad row
(pixel count, a value outside 0..255 or not a number, a label outside 0..6, an unknown Usage)
raises :class:`~fer_bench.errors.DataFormatError` with the file and the 1-based line number
(the header is line 1).
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_bench.data.io import read_table
from fer_bench.errors import DataFormatError

N_PIXELS = 48 * 48
USAGES = ("Training", "PublicTest", "PrivateTest")
USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER2013_CSV_NAMES = {"csv": "fer2013.csv", "icml": "icml_face_data.csv"}
_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class Fer2013Table:
    """A parsed ``fer2013.csv`` / ``icml_face_data.csv``: one entry per data row (line = index + 2)."""

    path: Path
    emotion: np.ndarray  # int64 [N], 0..6 (canonical)
    usage: np.ndarray    # object [N], one of USAGES
    images: np.ndarray   # uint8 [N, 48, 48], read-only

    def __len__(self) -> int:
        return len(self.emotion)


_TABLE_CACHE: OrderedDict[tuple, Fer2013Table] = OrderedDict()
_TABLE_CACHE_SIZE = 2  # 2 x 83 MB for full files


def _pixel_row_error(path: Path, text: str, line: int) -> DataFormatError:
    """The precise complaint about one pixel field."""
    expected = f"{N_PIXELS} space-separated pixel values 0..255"
    tokens = text.split()
    if len(tokens) != N_PIXELS:
        return DataFormatError(path, expected, line=line, found=f"{len(tokens)} values")
    for tok in tokens:
        if not tok.isdigit():
            return DataFormatError(path, expected, line=line, found=f"{tok[:20]!r}")
        if int(tok) > 255:
            return DataFormatError(path, expected, line=line, found=f"value {tok}")
    return DataFormatError(path, expected, line=line, found="an unparsable field")


def parse_pixels(pixels: np.ndarray, path: Path, first_line: int = 2) -> np.ndarray:
    """Pixel strings (one per row) -> uint8 ``[N, 48, 48]``, every row checked.

    Per chunk of rows: the separators of each row are counted with one ``np.add.reduceat`` over
    the joined bytes (2303 single spaces = 2304 values; rows spaced otherwise are re-checked with
    ``str.split``), then the whole chunk is parsed by one ``np.fromstring(sep=" ")`` into int32 and
    range-checked before the cast to uint8.  Any anomaly is located to its row and line.
    """
    n = len(pixels)
    out = np.empty((n, 48, 48), np.uint8)
    flat = out.reshape(n, N_PIXELS)
    for s0 in range(0, n, _CHUNK_ROWS):
        chunk = pixels[s0:s0 + _CHUNK_ROWS]
        try:
            buf = "\n".join(chunk).encode("ascii")
        except UnicodeEncodeError:
            bad = next(i for i, t in enumerate(chunk) if not t.isascii())
            raise _pixel_row_error(path, chunk[bad], first_line + s0 + bad) from None
        b = np.frombuffer(buf, np.uint8)
        starts = np.r_[0, np.flatnonzero(b == 10) + 1]
        spaces = np.add.reduceat((b == 32).view(np.uint8), starts, dtype=np.int64) if len(b) else np.zeros(len(chunk))
        for i in np.flatnonzero(spaces != N_PIXELS - 1):  # irregular spacing is fine, a wrong count is not
            if len(chunk[i].split()) != N_PIXELS:
                raise _pixel_row_error(path, chunk[i], first_line + s0 + int(i))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # older numpy warns and returns a partial parse
                vals = np.fromstring(buf, dtype=np.int32, sep=" ")
        except ValueError:  # numpy >= 2.3: "could not be read to its end due to unmatched data"
            vals = None
        if vals is None or vals.size != len(chunk) * N_PIXELS:
            for i, t in enumerate(chunk):
                if any(not tok.isdigit() for tok in t.split()):
                    raise _pixel_row_error(path, t, first_line + s0 + i)
            raise DataFormatError(path, "numeric pixel values", line=first_line + s0, found="an unparsable chunk")
        vals = vals.reshape(len(chunk), N_PIXELS)
        bad_rows = np.flatnonzero(((vals < 0) | (vals > 255)).any(axis=1))
        if len(bad_rows):
            i = int(bad_rows[0])
            v = vals[i][(vals[i] < 0) | (vals[i] > 255)][0]
            raise DataFormatError(path, f"{N_PIXELS} space-separated pixel values 0..255", line=first_line + s0 + i,
                                  found=f"value {v}")
        flat[s0:s0 + len(chunk)] = vals
    return out


def read_fer2013_csv(path: str | os.PathLike) -> Fer2013Table:
    """Parse and validate ``fer2013.csv`` or ``icml_face_data.csv`` (either header, any column order).

    The last two parsed files are cached by (path, size, mtime), so several DataModules in one
    process (seeds of a benchmark, FER2013 and FERPlus) parse a file once.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataFormatError(path, "the FER2013 csv (header emotion,pixels,Usage)", found="no such file") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _TABLE_CACHE:
        _TABLE_CACHE.move_to_end(key)
        return _TABLE_CACHE[key]
    expected_header = "header 'emotion,pixels,Usage' (fer2013.csv) or 'emotion, Usage, pixels' (icml_face_data.csv)"
    df = read_table(path, expected=expected_header, skipinitialspace=True, engine="c")
    cols = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    lower = [c.lower() for c in cols]
    if sorted(lower) != ["emotion", "pixels", "usage"]:
        raise DataFormatError(path, expected_header, line=1, found=repr(",".join(map(str, df.columns))))
    df.columns = [{"emotion": "emotion", "pixels": "pixels", "usage": "Usage"}[c] for c in lower]
    if len(df) == 0:
        raise DataFormatError(path, "one data row per image after the header", found="no rows")
    emotion = df["emotion"].str.strip().to_numpy(dtype=object)
    ok = np.isin(emotion, [str(k) for k in range(7)])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(path, "an emotion label 0..6 (0 Angry .. 6 Neutral)", line=i + 2,
                              found=repr(emotion[i]) if emotion[i] else "an empty field")
    usage = df["Usage"].str.strip().to_numpy(dtype=object)
    ok = np.isin(usage, USAGES)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(path, f"Usage one of {', '.join(USAGES)}", line=i + 2,
                              found=repr(usage[i]) if usage[i] else "an empty field")
    images = parse_pixels(df["pixels"].to_numpy(dtype=object), path)
    images.flags.writeable = False
    table = Fer2013Table(path, emotion.astype(np.int64), usage, images)
    _TABLE_CACHE[key] = table
    while len(_TABLE_CACHE) > _TABLE_CACHE_SIZE:
        _TABLE_CACHE.popitem(last=False)
    return table
