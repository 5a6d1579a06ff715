"""``fer-bench new method NAME`` / ``new dataset NAME``: the files of a new method or dataset.

Each skeleton is a template (``string.Template``: ``$name``, ``$cls``) in this folder.  What the
user must write is between ``# >>> FILL IN`` and ``# <<< FILL IN`` lines (code that raises until
it is replaced) or a value reading ``FILL IN`` (a metafile refuses to load while one is left,
naming it); everything else is a working default they may keep.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from fer_bench.errors import UserError, check_out_folder

MARK = "FILL IN"
#: kind -> the files written: (template, output name)
SKELETONS = {
    "method": (("method.py.tmpl", "$name.py"), ("method.yaml.tmpl", "$name.yaml")),
    "dataset": (("dataset.py.tmpl", "$name.py"),),
}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "New"


def write_skeleton(kind: str, name: str, out: str | Path, *, force: bool = False) -> list[Path]:
    """Write the skeleton of a new ``kind`` (method or dataset) called ``name`` into ``out``;
    refuse a name that is not a lower-case identifier, one already registered, or files that
    exist (unless ``force``)."""
    if kind not in SKELETONS:
        raise UserError(f"new {kind!r}: expected one of {', '.join(SKELETONS)}")
    if not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise UserError(f"new {kind} {name!r}: expected a lower-case Python identifier that is not a keyword "
                        "(letters, digits, _), e.g. my_method")
    if kind == "method":
        from fer_bench.methods import METHODS as registry
    else:
        from fer_bench.data import DATASETS as registry
    if name in registry:
        raise UserError(f"new {kind} {name!r}: that name is already registered ({registry.source(name)}); expected "
                        "a new name")
    out = Path(out)
    check_out_folder(out, f"new {kind} --out")
    values = {"name": name, "cls": class_name(name), "mark": MARK}
    targets = [(src, out / Template(dst).substitute(values)) for src, dst in SKELETONS[kind]]
    existing = [str(p) for _, p in targets if p.exists()]
    if existing and not force:
        raise UserError(f"new {kind} {name}: {', '.join(existing)} exist(s); nothing written (expected files that "
                        "do not exist yet; --force overwrites)")
    out.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    for src, dst in targets:
        dst.write_text(Template((here / src).read_text()).substitute(values))
    return [p for _, p in targets]
