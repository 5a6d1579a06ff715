"""Benchmark suites as YAML: which method runs on which dataset, under which protocol.

A suite file::

    suite: smoke                    # name: leaderboards/<suite>/
    imports: [my_methods.py]        # optional: user code registering methods or datasets
                                    # (.py files or package folders relative to this file, or module names)
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
    external:                       # optional: predictions made elsewhere, scored here as rows of their own
      - method: poster_pp                     # the row's name: not a method a cell runs on that dataset
        dataset: rafdb                        # a registered dataset, read from <data root>/<dataset>
        predictions: preds/poster_pp.csv      # csv or npz as `fer-bench score` reads it; relative to this file
        source: "POSTER++ official checkpoint, github.com/..."   # who made them (free text)
        fold: 1                               # optional
        data_args: {classes: 8}               # optional; over the defaults' data_args (the suite's protocol)
    launcher:                       # optional: SLURM resources of `--launcher slurm` (flags win)
      partition: gpu
      time_min: 240
      gpus_per_job: 1

A cell's keys are the settings of :class:`fer_bench.settings.TrainConfig` of the kinds
``protocol``, ``run`` and ``speed`` (``fer_bench.settings.SUITE_KEYS``), plus ``label``,
``folds`` and ``seeds``; each value is checked when the suite is loaded, before any data is
read.  Dataset roots never appear here: they come from ``--data-root`` / ``$FER_DATA``
(``<data root>/<dataset>``).

An ``external:`` entry (:class:`External`) is checked when the suite is loaded too (its keys, a
registered dataset, the file there, a name no cell of the suite runs on that dataset, one entry
per method × dataset × fold); the runner scores it (:mod:`fer_bench.bench.external`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from fer_bench import settings as S
from fer_bench.errors import DataFormatError, UserError, load_yaml
from fer_bench.validation import check_kwargs, validate


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


EXTERNAL_KEYS = ("method", "dataset", "predictions", "source", "fold", "data_args")
_EXTERNAL_NEEDS = {"method": "the name its row gets", "dataset": "a registered dataset",
                   "predictions": "a csv or npz file, relative to the suite file",
                   "source": "who made the predictions, e.g. 'POSTER++ official checkpoint, github.com/...'"}


@dataclass(frozen=True)
class External:
    """A suite's ``external:`` entry: a file of test predictions made elsewhere (a released
    checkpoint evaluated by its own code), scored on the dataset's test split by
    :func:`fer_bench.score.score_predictions` and published as a row of ``kind`` ``external``
    beside the trained rows (:mod:`fer_bench.bench.external`).  Nothing is trained for it: it
    has no seed, no recipe, no epochs."""

    method: str
    dataset: str
    predictions: str  # absolute path
    source: str
    fold: int | None = None
    data_args: dict[str, Any] = field(default_factory=dict)  # the test protocol (defaults' data_args under its own)

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.predictions, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    @cached_property
    def config_hash(self) -> str:
        """``ext-`` and a hash of what defines the row's numbers: the file's SHA-256, the dataset,
        fold and protocol arguments (a changed file is a new entry; no training config is implied)."""
        d = {"predictions_sha256": self.sha256, "dataset": self.dataset, "fold": self.fold,
             "data_args": self.data_args}
        return "ext-" + hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        fold = "-" if self.fold is None else str(self.fold)
        return f"external/{self.method}/{self.dataset}/{self.config_hash}/fold{fold}"


def _external_entries(doc: dict, path: Path, defaults: dict, jobs: list[Job]) -> list[External]:
    """The suite's ``external:`` entries, each checked (see :class:`External`); one-line errors."""
    from fer_bench.data import DATASETS

    entries = doc.get("external") or []
    shape = "{" + ", ".join(EXTERNAL_KEYS[:4]) + "[, fold, data_args]}"
    if not isinstance(entries, list):
        raise DataFormatError(path, f"'external' as a list of entries {shape}", found=repr(entries))
    trained = {(j.row_method, j.dataset) for j in jobs}
    out: list[External] = []
    seen: set[tuple] = set()
    for i, e in enumerate(entries):
        where = f"external entry {i + 1}"
        if not isinstance(e, dict):
            raise DataFormatError(path, f"{where}: a mapping {shape}", found=repr(e))
        where += f" ({e.get('method')}/{e.get('dataset')})"
        unknown = sorted(map(str, set(e) - set(EXTERNAL_KEYS)))
        if unknown:
            raise DataFormatError(path, f"{where}: only the keys {', '.join(EXTERNAL_KEYS)}", found=", ".join(unknown))
        for k, need in _EXTERNAL_NEEDS.items():
            if not isinstance(e.get(k), str) or not e[k].strip():
                raise DataFormatError(path, f"{where}: '{k}': {need}", found=repr(e.get(k)))
        method, dataset = e["method"].strip(), e["dataset"]
        if "/" in method:
            raise DataFormatError(path, f"{where}: a method name without '/'", found=repr(method))
        if dataset not in DATASETS:
            raise DataFormatError(path, f"{where}: a registered dataset ({', '.join(DATASETS.names())})",
                                  found=repr(dataset))
        file = (path.resolve().parent / Path(e["predictions"]).expanduser()).resolve()
        if not file.is_file():
            raise DataFormatError(path, f"{where}: predictions: a csv or npz file (relative to the suite file)",
                                  found=f"no such file {file}")
        fold = e.get("fold")
        if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
            raise DataFormatError(path, f"{where}: fold: an integer", found=repr(fold))
        own = e.get("data_args") or {}
        if not isinstance(own, dict):
            raise DataFormatError(path, f"{where}: data_args as a mapping", found=repr(own))
        data_args = {**(defaults.get("data_args") or {}), **own}
        try:
            check_kwargs(DATASETS.get(dataset), data_args, what=f"dataset {dataset}", flag="data_args.",
                           reserved=("root", "fold"))
        except UserError as err:
            raise DataFormatError(path, f"{where}: data_args the dataset accepts", found=str(err)) from None
        if (method, dataset) in trained:
            raise DataFormatError(path, f"{where}: a method name no cell of this suite runs on {dataset} (an "
                                        "external row sits beside the trained rows, never among them)", found=repr(method))
        if (method, dataset, fold) in seen:
            raise DataFormatError(path, f"{where}: one entry per method, dataset and fold", found="a second one")
        seen.add((method, dataset, fold))
        out.append(External(method=method, dataset=dataset, predictions=str(file), source=e["source"].strip(),
                            fold=fold, data_args=data_args))
    return out


def _launcher(values: Any, path: Path) -> dict[str, Any]:
    """A suite's ``launcher:`` mapping, each key a SLURM setting (:class:`fer_bench.settings.SlurmSettings`)
    checked like its flag; the error names the file and the key."""
    if not isinstance(values, dict):
        raise DataFormatError(path, "'launcher' as a mapping", found=repr(values))
    valid = S.names("slurm")
    out = {}
    for key, value in values.items():
        if key not in valid:
            raise DataFormatError(path, f"launcher keys among {', '.join(valid)}", found=key)
        try:
            out[key] = S.check_value(key, value)
        except UserError:
            raise DataFormatError(path, f"launcher {key}: {S.expected(key)}", found=repr(value)) from None
    return out


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
                raise UserError(f"{where} {key}: cannot override; expected one of {', '.join(valid)}, data_args.X or "
                                "method_args.X")
            if sub:
                settings[head] = {**settings.get(head, {}), sub: value}
            else:
                settings[head] = S.check_value(head, value, label=f"{where} {key}")
        job = replace(j, settings=settings)
        validate(job.config(), where=f"on {job.row_method}/{job.dataset}", method_flag=f"{where} method_args.",
                   data_flag=f"{where} data_args.", check_device=False)
        out.append(job)
    return out


@dataclass
class Suite:
    name: str
    path: Path
    jobs: list[Job]
    launcher: dict[str, Any] = field(default_factory=dict)  # SLURM resources (`launcher:`, see bench/slurm.py)
    external: list[External] = field(default_factory=list)  # predictions made elsewhere (`external:`)


def load_suite(path: str | Path) -> Suite:
    """Parse and check a suite file: every key known, every value of its type, every method
    hyper-parameter and dataset argument accepted by its constructor — before any data is read."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "a suite YAML file", found="no such file")
    doc = load_yaml(path)
    if not isinstance(doc, dict) or "cells" not in doc or not isinstance(doc["cells"], list):
        raise DataFormatError(path, "a mapping with 'suite', optional 'defaults' and a 'cells' list")
    unknown = sorted(set(doc) - {"suite", "imports", "defaults", "cells", "external", "launcher"})
    if unknown:
        raise DataFormatError(path, "only the top-level keys suite, imports, defaults, cells, external, launcher",
                              found=", ".join(unknown))
    imports = doc.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise DataFormatError(path, "'imports' as a list of module names, .py files or package folders",
                              found=repr(imports))
    from fer_bench.registry import import_modules

    # the suite's own methods and datasets (paths relative to the suite file): a failure is one line
    import_modules(imports, base=path.resolve().parent, flag=f"{path}: imports:")
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS

    launcher = _launcher(doc.get("launcher") or {}, path)
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
            validate(cell_jobs[0].config(), where=f"{path}, {where}", method_flag="method_args",
                       data_flag="data_args", check_device=False)
        except UserError as e:
            if isinstance(e, DataFormatError):
                raise
            raise UserError(str(e)) from None
        jobs.extend(cell_jobs)
    external = _external_entries(doc, path, defaults, jobs)
    return Suite(name=name, path=path, jobs=jobs, launcher=launcher, external=external)
