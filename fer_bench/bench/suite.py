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
        num_workers: 2                        # speed settings: outside the config hash
    launcher:                       # optional: SLURM resources of `--launcher slurm` (flags win)
      partition: gpu
      time_min: 240
      gpus_per_job: 1

A cell's keys are the settings of :class:`fer_bench.settings.TrainConfig` of the kinds
``protocol``, ``run`` and ``speed`` (``fer_bench.settings.SUITE_KEYS``), plus ``label``,
``folds`` and ``seeds``; each value is checked when the suite is loaded, before any data is
read.  Dataset roots never appear here: they come from ``--data-root`` / ``$FER_DATA``
(``<data root>/<dataset>``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from fer_bench import settings as S
from fer_bench.errors import DataFormatError, UserError


@dataclass(frozen=True)
class Job:
    """One training run: a cell at one fold and one seed.

    ``settings`` holds the cell's own settings (protocol, run and speed keys); the launch
    settings (devices, accelerator, ...) come from the command that runs it (:meth:`config`).
    """

    method: str
    dataset: str
    fold: int | None
    seed: int
    label: str = ""  # variant of a method within a suite (e.g. a TCL negative strategy)
    cross_eval: tuple[str, ...] = ()  # datasets whose test split the trained checkpoint is also evaluated on
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self, **launch: Any) -> S.TrainConfig:
        """The :class:`~fer_bench.settings.TrainConfig` of this job (launch settings added)."""
        return S.TrainConfig(method=self.method, dataset=self.dataset, fold=self.fold, seed=self.seed,
                             **{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.settings.items()},
                             **launch)

    @property
    def protocol(self) -> dict[str, Any]:
        """Every protocol setting of the job, defaults filled in (what a row records)."""
        return S.protocol_of(self.config())

    @cached_property
    def config_hash(self) -> str:
        """Hash of everything that defines the cell's numbers (not the fold or seed, not speed): the
        job's settings resolved against its method's recipe for the dataset (:func:`fer_bench.resolve.
        resolve`), so that a recipe's default written out is the same cell and a changed recipe a new one."""
        from fer_bench.resolve import resolve

        cfg = self.config()
        r = resolve(cfg)
        d = {"method": self.method, "dataset": self.dataset, "label": self.label,
             **{k: getattr(cfg, k) for k in ("precision", "monitor", "limit_per_class", "weights")},
             "input_size": r.input_size, "in_chans": r.in_chans, "batch_size": r.batch_size, "tta": r.tta,
             "hparams": r.hparams, "data_args": r.data_args}
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


def _checked(key: str, value: Any, where: str) -> Any:
    """A suite value checked like its flag, the error naming the suite key."""
    try:
        return S.check_value(key, value, label=key)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def apply_overrides(jobs: list[Job], overrides: dict[str, Any], where: str = "-o") -> list[Job]:
    """Every job with ``overrides`` applied (``max_epochs=1``, ``data_args.frames=4``, ...).

    Overridden protocol fields change the config hash, so a reduced check never mixes with
    full runs; speed settings do not.
    """
    valid = [k for k in S.SUITE_KEYS if k not in ("method", "dataset", "label", "folds", "seeds")]
    out = []
    for j in jobs:
        settings = dict(j.settings)
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if head not in valid or (sub and head not in ("data_args", "method_args")):
                raise UserError(f"{where} {key}: cannot override; valid: {', '.join(valid)} and data_args.X / "
                                "method_args.X")
            if sub:
                settings[head] = {**settings.get(head, {}), sub: value}
            else:
                settings[head] = S.check_value(head, value, label=f"{where} {key}")
        job = replace(j, settings=settings)
        S.validate(job.config(), where=f"on {job.row_method}/{job.dataset}", method_flag=f"{where} method_args.",
                   data_flag=f"{where} data_args.", check_device=False)
        out.append(job)
    return out


@dataclass
class Suite:
    name: str
    path: Path
    jobs: list[Job]
    launcher: dict[str, Any] = field(default_factory=dict)  # SLURM resources (`launcher:`, see bench/slurm.py)


def load_suite(path: str | Path) -> Suite:
    """Parse and check a suite file: every key known, every value of its type, every method
    hyper-parameter and dataset argument accepted by its constructor — before any data is read."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "a suite YAML file", found="no such file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise DataFormatError(path, "valid YAML", line=None if line is None else line + 1, found=str(e)) from None
    if not isinstance(doc, dict) or "cells" not in doc or not isinstance(doc["cells"], list):
        raise DataFormatError(path, "a mapping with 'suite', optional 'defaults' and a 'cells' list")
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS

    unknown = sorted(set(doc) - {"suite", "defaults", "cells", "launcher"})
    if unknown:
        raise DataFormatError(path, "only the top-level keys suite, defaults, cells, launcher", found=", ".join(unknown))
    from fer_bench.bench.slurm import check_settings

    launcher = check_settings(doc.get("launcher") or {}, path)
    name = doc.get("suite") or path.stem
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise DataFormatError(path, "'defaults' as a mapping", found=repr(defaults))
    jobs: list[Job] = []
    for i, cell in enumerate(doc["cells"]):
        where = f"cell {i + 1} ({cell.get('method')}/{cell.get('dataset')})" if isinstance(cell, dict) else f"cell {i + 1}"
        if not isinstance(cell, dict):
            raise DataFormatError(path, f"{where}: a mapping")
        merged = {**defaults, **cell}
        for k in ("data_args", "method_args"):
            for part in (defaults.get(k), cell.get(k)):
                if part is not None and not isinstance(part, dict):
                    raise DataFormatError(path, f"{where}: {k} as a mapping", found=repr(part))
            merged[k] = {**(defaults.get(k) or {}), **(cell.get(k) or {})}
        unknown = sorted(set(merged) - set(S.SUITE_KEYS))
        if unknown:
            raise DataFormatError(path, f"{where}: only the keys {', '.join(S.SUITE_KEYS)}",
                                  found=", ".join(unknown))
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
        for key, values in (("folds", folds), ("seeds", seeds)):
            if not isinstance(values, list):
                raise DataFormatError(path, f"{where}: {key} as a list", found=repr(values))
        label = merged.pop("label", "") or ""
        cross = merged.pop("cross_eval", None) or []
        if not isinstance(cross, list) or any(c not in DATASETS for c in cross):
            raise DataFormatError(path, f"{where}: cross_eval as a list of registered datasets "
                                        f"({', '.join(DATASETS.names())})", found=repr(cross))
        for c in cross:
            if DATASETS.get(c).info.modality != METHODS.get(merged["method"]).modality:
                raise DataFormatError(path, f"{where}: cross_eval datasets of the method's modality", found=c)
        # an alias (an old name kept for files outside the package) runs as the method it names
        method, dataset = METHODS.canonical(merged.pop("method")), merged.pop("dataset")
        try:
            settings = {k: _checked(k, v, f"{path}, {where}") for k, v in merged.items()}
            for fold in folds:
                _checked("fold", fold, f"{path}, {where}, folds")
            for seed in seeds:
                _checked("seed", seed, f"{path}, {where}, seeds")
            cell_jobs = [Job(method=method, dataset=dataset, fold=fold, seed=int(seed), label=str(label),
                             settings=settings, cross_eval=tuple(cross)) for fold in folds for seed in seeds]
            S.validate(cell_jobs[0].config(), where=f"{path}, {where}", method_flag="method_args",
                       data_flag="data_args", check_device=False)
        except UserError as e:
            if isinstance(e, DataFormatError):
                raise
            raise UserError(str(e)) from None
        jobs.extend(cell_jobs)
    return Suite(name=name, path=path, jobs=jobs, launcher=launcher)
