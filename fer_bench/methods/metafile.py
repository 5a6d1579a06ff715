"""A method's metafile: its paper, every number the paper reports with the protocol it states,
its training recipe (in general and per dataset) and how faithful fer_bench is — as data.

One file per method, ``metafiles/<method>.yaml`` beside the method's module (mmaction2's
``metafile.yml`` idea).  Python keeps the network and the loss; everything a reader checks
against the paper lives here::

    method: ial_gca
    kind: paper                  # paper (a published method), baseline (a row the literature compares
                                 # with; its numbers are anchors from named public sources), legacy
    citation: ...                # doi, url, code (the official code, if any) optional
    fidelity: ...                # what is followed and what is reconstructed, in prose
    reported:                    # every number, with the protocol stated for it
      - dataset: dfew
        war: 69.24
        uar: 55.71
        source: "AAAI 2023 paper, Table 1"
        by: IAL                  # optional short name of the source (shown for baseline anchors)
        classes: 7               # optional: the class count this number is for (picks the number per cell)
        protocol:                # each item: published (paper section or official file) / reconstructed
          classes: {...}         # (a fact about the dataset, or our reading) / not stated
          split: {...}
          folds: {...}
          metric: {...}
          tta: {...}
          selection: {...}       # an item may add `ours: ...` where fer_bench's dataset protocol
                                 # necessarily differs (e.g. CK+ folds): the comparison then says so
    recipe:                      # every field published (with the paper section or official file that
      lr: {value: 0.001, status: published, source: "main.py: --lr default 0.001"}   # states it) or
      ...                        # reconstructed (chosen here, the reason as source)
    datasets:                    # per dataset, the fields that differ there (same form)
      ferv39k: {...}

A ``published`` item names the paper or its official code; a fact about a dataset (FER2013 has
7 classes) is not the paper's statement, so such an item is ``reconstructed``.

Comparisons (:func:`paper_protocol`, :func:`deviations`, :meth:`Recipe.reconstructed`): a
leaderboard difference to a paper's number is a reproduction only when every recipe field it
depends on is ``published`` and the run matches it, and every protocol item of the number is
``published`` (and the run's classes and selection match).  See
:func:`fer_bench.bench.leaderboard.cell_marks`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_bench.errors import DataFormatError, load_yaml

METAFILES_DIR = Path(__file__).with_name("metafiles")
KINDS = ("paper", "baseline", "legacy")
STATUSES = ("published", "reconstructed")
PROTOCOL_STATUSES = ("published", "reconstructed", "not stated")
PROTOCOL_ITEMS = ("classes", "split", "folds", "metric", "tta", "selection")
METRICS = ("war", "uar")
#: what fer_bench always does: choose the checkpoint on validation, test once
OUR_SELECTION = "validation"
FIELDS = ("architecture", "init", "input_size", "in_chans", "resize", "normalization", "face_crop", "optimizer", "lr",
          "momentum", "weight_decay", "scheduler", "step_size", "gamma", "step_start", "grad_clip", "epochs",
          "batch_size", "augmentation", "sampler", "loss_weights", "frames", "train_frames", "test_frames",
          "short_clips", "tta")
REQUIRED = ("architecture", "init", "input_size", "in_chans", "normalization", "face_crop", "optimizer", "lr",
            "weight_decay", "scheduler", "epochs", "batch_size", "augmentation", "sampler", "tta")
DYNAMIC_ONLY = ("frames", "train_frames", "test_frames", "short_clips")
# recipe field -> method hyper-parameter it sets
HPARAM_FIELDS = {"optimizer": "optimizer", "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay",
                 "scheduler": "scheduler", "step_size": "step_size", "gamma": "gamma", "step_start": "step_start",
                 "grad_clip": "grad_clip", "epochs": "max_epochs"}
# recipe field -> DataModule argument it sets (where the dataset takes it)
DATA_FIELDS = ("resize", "augmentation", "normalization", "sampler", "train_frames", "test_frames", "short_clips")
# recorded, never compared with a run: the code is what runs
NOT_COMPARED = ("architecture",)


@dataclass(frozen=True)
class Item:
    value: Any
    status: str
    source: str = ""
    ours: str = ""  # protocol items: what fer_bench does where its dataset protocol necessarily differs

    def as_dict(self) -> dict[str, Any]:
        d = {"value": self.value, "status": self.status, "source": self.source}
        return {**d, "ours": self.ours} if self.ours else d


@dataclass(frozen=True)
class Recipe:
    """The training recipe: general fields, and per dataset the fields that differ there."""

    method: str
    fields: dict[str, Item]
    datasets: dict[str, dict[str, Item]] = field(default_factory=dict)

    def for_dataset(self, dataset: str | None) -> Recipe:
        """The recipe as it applies on ``dataset`` (its per-dataset fields over the general ones)."""
        extra = self.datasets.get(dataset) if dataset else None
        return self if not extra else Recipe(self.method, {**self.fields, **extra}, self.datasets)

    def value(self, name: str, default: Any = None) -> Any:
        item = self.fields.get(name)
        return default if item is None else item.value

    def hparams(self) -> dict[str, Any]:
        """The method hyper-parameters the recipe sets (optimiser, schedule, epochs, loss weights)."""
        hp = {HPARAM_FIELDS[k]: self.fields[k].value for k in HPARAM_FIELDS if k in self.fields}
        hp.update(self.value("loss_weights") or {})
        return hp

    def relevant(self) -> list[str]:
        """The fields a run's result depends on: momentum only for SGD, the step schedule's
        constants only for a step schedule, ``gamma`` for an exponential one."""
        opt, sched = self.value("optimizer"), self.value("scheduler")
        out = []
        for name in FIELDS:
            if name not in self.fields:
                continue
            if name == "momentum" and opt != "sgd":
                continue
            if name in ("step_size", "step_start") and sched != "step":
                continue
            if name == "gamma" and sched not in ("step", "exponential"):
                continue
            if name == "train_frames" and "frames" not in self.fields:
                continue
            out.append(name)
        return out

    def reconstructed(self) -> list[str]:
        """The relevant fields that are fer_bench's reading rather than the paper's statement."""
        return [k for k in self.relevant() if self.fields[k].status == "reconstructed"]

    def as_dict(self) -> dict[str, Any]:
        return {"fields": {k: v.as_dict() for k, v in self.fields.items()},
                "datasets": {d: {k: v.as_dict() for k, v in p.items()} for d, p in self.datasets.items()}}


@dataclass(frozen=True)
class Reported:
    """One number set a paper (or, for a baseline, a named public source) reports on a dataset."""

    dataset: str
    values: dict[str, float]  # "war"/"uar" -> percentage, exactly as published
    source: str
    protocol: dict[str, Item]
    by: str = ""
    classes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, **self.values, "source": self.source, "by": self.by,
                "classes": self.classes, "protocol": {k: v.as_dict() for k, v in self.protocol.items()}}


@dataclass(frozen=True)
class Metafile:
    method: str
    kind: str
    citation: str
    fidelity: str
    recipe: Recipe
    reported: tuple[Reported, ...] = ()
    doi: str = ""
    url: str = ""
    code: str = ""
    path: Path | None = None

    @property
    def reconstructed(self) -> bool:
        """A method whose network is fer_bench's reading of its paper (the full text or code not public)."""
        arch = self.recipe.fields.get("architecture")
        return arch is not None and arch.status == "reconstructed"

    def numbers(self, dataset: str, classes: int | None = None) -> Reported | None:
        """The reported numbers a cell on ``dataset`` (with ``classes`` classes) is compared with:
        the entry stated for that class count, else one that states none."""
        found = [r for r in self.reported if r.dataset == dataset]
        if classes is not None:
            exact = [r for r in found if r.classes is not None and int(r.classes) == int(classes)]
            if exact:
                return exact[0]
        loose = [r for r in found if r.classes is None]
        return loose[0] if loose else (found[0] if found and classes is None else None)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "kind": self.kind, "citation": self.citation, "doi": self.doi, "url": self.url,
                "code": self.code, "reconstructed": self.reconstructed, "fidelity": self.fidelity,
                "reported": [r.as_dict() for r in self.reported], "recipe": self.recipe.as_dict()}


# -- parsing ----------------------------------------------------------------------------------
def _item(path: Path, where: str, raw: Any, statuses: tuple[str, ...], keys: tuple[str, ...] = ()) -> Item:
    if not isinstance(raw, dict) or "value" not in raw or "status" not in raw:
        raise DataFormatError(path, f"{where}: a mapping with value, status and source", found=repr(raw))
    status = raw["status"]
    if status not in statuses:
        raise DataFormatError(path, f"{where}: status one of {', '.join(statuses)}", found=repr(status))
    unknown = sorted(set(raw) - {"value", "status", "source", *keys})
    if unknown:
        raise DataFormatError(path, f"{where}: only the keys value, status, source{''.join(', ' + k for k in keys)}",
                              found=", ".join(unknown))
    source = str(raw.get("source") or "")
    if not source:
        raise DataFormatError(path, f"{where}: a source (paper section, official code file, or the reason "
                                    "for a reconstruction)")
    return Item(raw["value"], status, source, str(raw.get("ours") or ""))


def _fields(path: Path, where: str, raw: Any) -> dict[str, Item]:
    if not isinstance(raw, dict):
        raise DataFormatError(path, f"{where}: a mapping of recipe fields", found=repr(raw))
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise DataFormatError(path, f"{where}: recipe fields among {', '.join(FIELDS)}", found=", ".join(unknown))
    return {k: _item(path, f"{where}.{k}", raw[k], STATUSES) for k in FIELDS if k in raw}


def _reported(path: Path, i: int, raw: Any) -> Reported:
    where = f"reported[{i}]"
    if not isinstance(raw, dict) or "dataset" not in raw or "source" not in raw or "protocol" not in raw:
        raise DataFormatError(path, f"{where}: a mapping with dataset, war and/or uar, source and protocol",
                              found=repr(raw))
    unknown = sorted(set(raw) - {"dataset", "source", "protocol", "by", "classes", *METRICS})
    if unknown:
        raise DataFormatError(path, f"{where}: keys dataset, war, uar, source, by, classes, protocol",
                              found=", ".join(unknown))
    values = {}
    for m in METRICS:
        if m in raw:
            v = raw[m]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                raise DataFormatError(path, f"{where}.{m}: a percentage as published", found=repr(v))
            values[m] = float(v)
    if not values:
        raise DataFormatError(path, f"{where}: at least one of war, uar")
    proto = raw["protocol"]
    if not isinstance(proto, dict) or set(proto) != set(PROTOCOL_ITEMS):
        found = ", ".join(sorted(proto)) if isinstance(proto, dict) else repr(proto)
        raise DataFormatError(path, f"{where}.protocol: exactly the items {', '.join(PROTOCOL_ITEMS)}", found=found)
    protocol = {k: _item(path, f"{where}.protocol.{k}", proto[k], PROTOCOL_STATUSES, ("ours",)) for k in PROTOCOL_ITEMS}
    classes = raw.get("classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)):
        raise DataFormatError(path, f"{where}.classes: an integer class count", found=repr(classes))
    return Reported(dataset=str(raw["dataset"]), values=values, source=str(raw["source"]), protocol=protocol,
                    by=str(raw.get("by") or ""), classes=classes)


def _fill_in_marks(node: Any, where: str = "") -> list[str]:
    """The keys whose value still holds the ``FILL IN`` mark of :mod:`fer_bench.skeletons`."""
    if isinstance(node, dict):
        return [w for k, v in node.items() for w in _fill_in_marks(v, f"{where}.{k}" if where else str(k))]
    if isinstance(node, list):
        return [w for i, v in enumerate(node) for w in _fill_in_marks(v, f"{where}[{i}]")]
    return [where] if isinstance(node, str) and "FILL IN" in node else []


def parse_metafile(path: Path) -> Metafile:
    path = Path(path)
    doc = load_yaml(path)
    keys = ("method", "kind", "citation", "doi", "url", "code", "fidelity", "reported", "recipe", "datasets")
    if not isinstance(doc, dict) or not {"method", "kind", "citation", "fidelity", "recipe"} <= set(doc):
        raise DataFormatError(path, "a mapping with method, kind, citation, fidelity, reported, recipe and optional "
                                    "doi, url, code, datasets")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        raise DataFormatError(path, f"only the keys {', '.join(keys)}", found=", ".join(unknown))
    left = _fill_in_marks(doc)
    if left:  # a skeleton of `fer-bench new method` not yet filled in
        raise DataFormatError(path, f"every 'FILL IN' of the skeleton replaced by what it asks for (method {doc['method']})",
                              found=f"still 'FILL IN' at {', '.join(left)}")
    if doc["kind"] not in KINDS:
        raise DataFormatError(path, f"kind: one of {', '.join(KINDS)}", found=repr(doc["kind"]))
    fields = _fields(path, "recipe", doc["recipe"])
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise DataFormatError(path, f"recipe fields {', '.join(REQUIRED)}", found="no " + ", ".join(missing))
    datasets = {str(d): _fields(path, f"datasets.{d}", extra) for d, extra in (doc.get("datasets") or {}).items()}
    reported = doc.get("reported") or []
    if not isinstance(reported, list):
        raise DataFormatError(path, "reported: a list of reported numbers", found=repr(reported))
    return Metafile(method=str(doc["method"]), kind=doc["kind"], citation=str(doc["citation"]),
                    fidelity=" ".join(str(doc["fidelity"]).split()), recipe=Recipe(str(doc["method"]), fields, datasets),
                    reported=tuple(_reported(path, i, r) for i, r in enumerate(reported)),
                    doi=str(doc.get("doi") or ""), url=str(doc.get("url") or ""), code=str(doc.get("code") or ""),
                    path=path)


_LOADED: dict[Path, Metafile] = {}


def load_metafile(method: str, path: Path | None = None) -> Metafile:
    """The metafile of ``method`` (``METAFILES_DIR/<method>.yaml`` unless ``path`` is given), parsed once."""
    path = Path(path) if path is not None else METAFILES_DIR / f"{method}.yaml"
    if path not in _LOADED:
        if not path.is_file():
            raise DataFormatError(path, f"the metafile of method {method!r}", found="no such file")
        meta = parse_metafile(path)
        if meta.method != method:
            raise DataFormatError(path, f"method: {method}", found=repr(meta.method))
        _LOADED[path] = meta
    return _LOADED[path]


# -- comparisons --------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={v[k]}" for k in sorted(v))
    return str(v)


def deviations(recipe: Recipe, actual: dict[str, Any]) -> list[str]:
    """``"field ours≠recipe"`` for every relevant recipe field whose actual value differs (a loss
    weight as ``loss_weights.NAME ours≠recipe``).

    ``actual`` maps recipe field names to what the run does (see :mod:`fer_bench.resolve`); a field
    missing from ``actual`` is not compared."""
    out = []
    for name in recipe.relevant():
        if name in NOT_COMPARED or name not in actual:
            continue
        want, have = recipe.fields[name].value, actual[name]
        if name == "loss_weights":
            out += [f"loss_weights.{k} {_fmt(have.get(k))}≠{_fmt(v)}" for k, v in (want or {}).items()
                    if not _same(have.get(k), v)]
        elif not _same(have, want):
            out.append(f"{name} {_fmt(have)}≠{_fmt(want)}")
    return out


def deviation_field(text: str) -> str:
    """The recipe field a :func:`deviations` entry is about (``loss_weights.ial_weight 0.2≠0.1`` ->
    ``loss_weights``)."""
    return text.strip().split(" ", 1)[0].split(".", 1)[0]


def paper_protocol(meta: Metafile, dataset: str, classes: int | None = None,
                   selection: str = OUR_SELECTION) -> str:
    """How a run compares with the protocol of the paper's number on ``dataset``.

    ``""``: the paper reports no number there.  ``stated``: every protocol item is published and
    the run matches its classes and selection.  Otherwise ``differs (classes 8≠7, selection
    validation≠best test epoch, folds)`` (``folds``: an item whose ``ours`` says how fer_bench's
    dataset protocol differs) and/or ``not stated (split, tta)`` (an item the paper does not
    state, or one we only read off the dataset), joined by ``"; "``."""
    numbers = meta.numbers(dataset, classes)
    if numbers is None:
        return ""
    proto = numbers.protocol
    differs = []
    want = proto["classes"].value
    if proto["classes"].status == "published" and classes is not None and isinstance(want, int) \
            and int(classes) != want:
        differs.append(f"classes {int(classes)}≠{want}")
    if proto["selection"].status == "published" and str(proto["selection"].value) != selection:
        differs.append(f"selection {selection}≠{proto['selection'].value}")
    differs += [k for k in PROTOCOL_ITEMS if proto[k].ours and k not in ("classes", "selection")]
    missing = [k for k in PROTOCOL_ITEMS if proto[k].status != "published"]
    parts = ([f"differs ({', '.join(differs)})"] if differs else []) + \
            ([f"not stated ({', '.join(missing)})"] if missing else [])
    return "; ".join(parts) or "stated"
