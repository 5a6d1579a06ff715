"""A method's training recipe as data: ``fer_bench/methods/recipes/<method>.yaml``.

Modelled on mmaction2's ``metafile.yml``: one file per method holding what the paper (or its
official code) trains with, every field marked ``published`` (with its source: a paper
section or an official code file) or ``reconstructed`` (chosen here, the reason in
``source``), and for each number the paper reports the protocol it states (class count,
split, metric) or ``not stated``.

The recipe is the single source of the method's training hyper-parameters: its optimiser,
schedule, epochs, batch size and loss weights become the method's defaults
(:meth:`Recipe.hparams`), a suite cell states only what it changes, and
:func:`deviations` lists, for a run's actual settings, every field that differs from the
recipe (``epochs 40≠70``), so that a leaderboard row never passes a deviating run off as a
reproduction.

Fields (``value`` types): ``init`` (``scratch`` or a weights name of :mod:`fer_bench.weights`),
``input_size``, ``in_chans``, ``normalization`` (``none``: pixels in [0, 1]; ``imagenet``),
``face_crop``, ``optimizer``, ``lr``, ``momentum``, ``weight_decay``, ``scheduler``,
``step_size``, ``gamma``, ``epochs``, ``batch_size``, ``augmentation`` (a name of
:data:`fer_bench.data.transforms.AUGMENTATIONS`), ``sampler``, ``loss_weights`` (method
hyper-parameter -> weight), ``frames`` and ``test_frames`` (clips: frames per clip and how
test frames are placed), ``tta``, ``selection`` (recorded, never compared: fer_bench always
selects the checkpoint on validation and tests once).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fer_bench.errors import DataFormatError

RECIPES_DIR = Path(__file__).with_name("recipes")
STATUSES = ("published", "reconstructed")
PROTOCOL_STATUSES = ("published", "not stated")
FIELDS = ("init", "input_size", "in_chans", "normalization", "face_crop", "optimizer", "lr", "momentum",
          "weight_decay", "scheduler", "step_size", "gamma", "epochs", "batch_size", "augmentation", "sampler",
          "loss_weights", "frames", "test_frames", "tta", "selection")
DYNAMIC_ONLY = ("frames", "test_frames")
# recipe field -> method hyper-parameter it sets
HPARAM_FIELDS = {"optimizer": "optimizer", "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay",
                 "scheduler": "scheduler", "step_size": "step_size", "gamma": "gamma", "epochs": "max_epochs"}
NOT_COMPARED = ("selection",)


@dataclass(frozen=True)
class Item:
    value: Any
    status: str
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "status": self.status, "source": self.source}


@dataclass(frozen=True)
class Recipe:
    method: str
    fields: dict[str, Item]
    protocols: dict[str, dict[str, Item]] = field(default_factory=dict)  # dataset -> classes/split/metric
    datasets: dict[str, dict[str, Item]] = field(default_factory=dict)  # dataset -> fields that differ there

    def for_dataset(self, dataset: str) -> Recipe:
        """The recipe as it applies on ``dataset`` (its per-dataset fields over the general ones)."""
        extra = self.datasets.get(dataset)
        return self if not extra else Recipe(self.method, {**self.fields, **extra}, self.protocols, self.datasets)

    def value(self, name: str, default: Any = None) -> Any:
        item = self.fields.get(name)
        return default if item is None else item.value

    def hparams(self) -> dict[str, Any]:
        """The method hyper-parameters the recipe sets (optimiser, schedule, epochs, loss weights)."""
        hp = {HPARAM_FIELDS[k]: self.fields[k].value for k in HPARAM_FIELDS if k in self.fields}
        hp.update(self.value("loss_weights") or {})
        return hp

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "fields": {k: v.as_dict() for k, v in self.fields.items()},
                        "protocols": {d: {k: v.as_dict() for k, v in p.items()} for d, p in self.protocols.items()},
                "datasets": {d: {k: v.as_dict() for k, v in p.items()} for d, p in self.datasets.items()}}


def _item(path: Path, where: str, raw: Any, statuses: tuple[str, ...]) -> Item:
    if not isinstance(raw, dict) or "value" not in raw or "status" not in raw:
        raise DataFormatError(path, f"{where}: a mapping with value, status and source", found=repr(raw))
    status = raw["status"]
    if status not in statuses:
        raise DataFormatError(path, f"{where}: status one of {', '.join(statuses)}", found=repr(status))
    source = str(raw.get("source") or "")
    if status in ("published", "reconstructed") and not source:
        raise DataFormatError(path, f"{where}: a source (paper section, official code file, or the reason "
                                    "for a reconstruction)")
    return Item(raw["value"], status, source)


def parse_recipe(path: Path) -> Recipe:
    import yaml

    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "method" not in doc or "recipe" not in doc:
        raise DataFormatError(path, "a mapping with 'method', 'recipe', 'protocols' and optional 'datasets'")
    raw = doc["recipe"]
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise DataFormatError(path, f"recipe fields among {', '.join(FIELDS)}", found=", ".join(unknown))
    fields = {k: _item(path, f"recipe.{k}", raw[k], STATUSES) for k in FIELDS if k in raw}
    protocols = {}
    for dataset, proto in (doc.get("protocols") or {}).items():
        protocols[dataset] = {k: _item(path, f"protocols.{dataset}.{k}", proto.get(k), PROTOCOL_STATUSES)
                              for k in ("classes", "split", "metric")}
    datasets = {}
    for dataset, extra in (doc.get("datasets") or {}).items():
        unknown = sorted(set(extra) - set(FIELDS))
        if unknown:
            raise DataFormatError(path, f"datasets.{dataset}: recipe fields", found=", ".join(unknown))
        datasets[dataset] = {k: _item(path, f"datasets.{dataset}.{k}", v, STATUSES) for k, v in extra.items()}
    return Recipe(method=doc["method"], fields=fields, protocols=protocols, datasets=datasets)


@cache
def load_recipe(method: str) -> Recipe:
    path = RECIPES_DIR / f"{method}.yaml"
    if not path.exists():
        raise DataFormatError(path, f"the recipe of method {method!r}", found="no such file")
    recipe = parse_recipe(path)
    if recipe.method != method:
        raise DataFormatError(path, f"method: {method}", found=repr(recipe.method))
    return recipe


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={v[k]}" for k in sorted(v))
    return str(v)


def deviations(recipe: Recipe, actual: dict[str, Any]) -> list[str]:
    """``"field ours≠recipe"`` for every compared recipe field whose actual value differs.

    ``actual`` maps recipe field names to what the run does (see
    :func:`fer_bench.train.actual_recipe`); a field missing from ``actual`` is not compared."""
    out = []
    for name in FIELDS:
        if name in NOT_COMPARED or name not in recipe.fields or name not in actual:
            continue
        want, have = recipe.fields[name].value, actual[name]
        if name == "loss_weights":
            out += [f"{k} {_fmt(have.get(k))}≠{_fmt(v)}" for k, v in (want or {}).items() if not _same(have.get(k), v)]
        elif not _same(have, want):
            out.append(f"{name} {_fmt(have)}≠{_fmt(want)}")
    return out
