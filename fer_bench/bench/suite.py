"""Benchmark suites as YAML: which method runs on which dataset, under which protocol.

A suite file::

    suite: smoke                    # name: leaderboards/<suite>/
    defaults:                       # merged under every cell
      seeds: [0, 1, 2]
      max_epochs: 30
      batch_size: 64
    cells:
      - method: resnet18
        dataset: ckplus
        folds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        data_args: {with_neutral: false}      # protocol arguments of the dataset
        method_args: {lr: 0.01}               # optimiser / method overrides
        label: fully                          # optional: names a variant (a row "method[label]")
        input_size: 48
        limit_per_class: null

Dataset roots never appear here: they come from ``--data-root`` / ``$FER_DATA``
(``<data root>/<dataset>``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fer_bench.errors import DataFormatError, UserError

CELL_KEYS = {"label", "method", "dataset", "folds", "seeds", "max_epochs", "batch_size", "input_size", "in_chans",
             "limit_per_class", "data_args", "method_args", "precision", "monitor", "weights", "tta"}


@dataclass(frozen=True)
class Job:
    """One training run: a cell at one fold and one seed."""

    method: str
    dataset: str
    fold: int | None
    seed: int
    label: str = ""  # variant of a method within a suite (e.g. a TCL negative strategy)
    max_epochs: int | None = None
    batch_size: int = 64
    input_size: int | None = None
    in_chans: int | None = None
    limit_per_class: int | None = None
    precision: str = "32-true"
    monitor: str = "war"
    weights: str | None = None
    tta: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)
    method_args: dict[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        """Hash of everything that defines the cell (not the fold or seed)."""
        d = asdict(self)
        d.pop("fold"), d.pop("seed")
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        fold = "-" if self.fold is None else str(self.fold)
        return f"{self.row_method}/{self.dataset}/{self.config_hash}/fold{fold}/seed{self.seed}"

    @property
    def cell(self) -> str:
        return f"{self.method}/{self.dataset}"

    @property
    def row_method(self) -> str:
        """The method as the leaderboard names it: ``method[label]`` for a labelled variant."""
        return f"{self.method}[{self.label}]" if self.label else self.method


def apply_overrides(jobs: list[Job], overrides: dict[str, Any]) -> list[Job]:
    """Every job with ``overrides`` applied (``max_epochs=1``, ``data_args.frames=4``, ...).

    Overridden fields change the config hash, so a reduced check never mixes with full runs.
    """
    from dataclasses import fields, replace

    names = {f.name for f in fields(Job)} - {"method", "dataset", "fold", "seed"}
    out = []
    for j in jobs:
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if head not in names or (sub and head not in ("data_args", "method_args")):
                raise UserError(f"cannot override {key!r}; valid: {sorted(names)} and data_args.X / method_args.X")
            if sub:
                changes[head] = {**changes.get(head, getattr(j, head)), sub: value}
            else:
                changes[head] = value
        out.append(replace(j, **changes))
    return out


@dataclass
class Suite:
    name: str
    path: Path
    jobs: list[Job]


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "a suite YAML file", found="no such file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise DataFormatError(path, "valid YAML", line=None if line is None else line + 1, found=str(e)) from None
    if not isinstance(doc, dict) or "cells" not in doc:
        raise DataFormatError(path, "a mapping with 'suite', optional 'defaults' and a 'cells' list")
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS

    name = doc.get("suite") or path.stem
    defaults = doc.get("defaults") or {}
    jobs: list[Job] = []
    for i, cell in enumerate(doc["cells"]):
        where = f"cell {i + 1} ({cell.get('method')}/{cell.get('dataset')})" if isinstance(cell, dict) else f"cell {i + 1}"
        if not isinstance(cell, dict):
            raise DataFormatError(path, f"{where}: a mapping")
        merged = {**defaults, **cell}
        merged["data_args"] = {**(defaults.get("data_args") or {}), **(cell.get("data_args") or {})}
        merged["method_args"] = {**(defaults.get("method_args") or {}), **(cell.get("method_args") or {})}
        unknown = set(merged) - CELL_KEYS
        if unknown:
            raise DataFormatError(path, f"{where}: only the keys {sorted(CELL_KEYS)}", found=str(sorted(unknown)))
        for k in ("method", "dataset"):
            if k not in merged:
                raise DataFormatError(path, f"{where}: a '{k}'")
        if merged["method"] not in METHODS:
            raise DataFormatError(path, f"{where}: a registered method ({', '.join(METHODS.names())})",
                                  found=repr(merged["method"]))
        if merged["dataset"] not in DATASETS:
            raise DataFormatError(path, f"{where}: a registered dataset ({', '.join(DATASETS.names())})",
                                  found=repr(merged["dataset"]))
        folds = merged.pop("folds", None) or [None]
        seeds = merged.pop("seeds", None) or [0]
        for fold in folds:
            for seed in seeds:
                jobs.append(Job(fold=fold, seed=int(seed), **merged))
    return Suite(name=name, path=path, jobs=jobs)
