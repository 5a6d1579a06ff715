"""One definition of a run's settings: :class:`TrainConfig` (and a SLURM array's, :class:`SlurmSettings`).

Each setting is written once, as a dataclass field with its type, default, help, allowed values
and *kind* in the field's metadata, and every value is checked here (:func:`check_value`) before
any data is read: a bad one is a :class:`~fer_bench.errors.UserError` that names the flag or key,
the value and what is expected.  From the fields come

- the ``fer-bench train`` and ``bench`` flags (:mod:`fer_bench.cli.flags`; ``--batch-size`` for
  ``batch_size``),
- the keys a suite cell may set (:data:`SUITE_KEYS`), a suite's ``launcher:`` keys (the ``slurm``
  kind) and the job-to-config mapping of the runner (:meth:`fer_bench.bench.suite.Job.config`),
- the launch record of a suite run (:class:`fer_bench.bench.launch.Launch`), checked through the
  same fields,
- the protocol settings of a config (:func:`protocol_of`), which with the method's recipe make a suite
  cell's config hash (:attr:`fer_bench.bench.suite.Job.config_hash`).

Kinds: ``job`` (which run: method, dataset, fold, seed), ``protocol`` (changes a number: in the
config hash and the leaderboard row), ``run`` (robustness: a suite key outside the hash),
``speed`` (never changes a sample or a number: suite key and bench flag, outside the hash),
``launch`` (where and how it runs: flags only), ``internal`` (set by the runner), ``slurm``
(the resources of a SLURM array job).

Method hyper-parameters (``-m``) and dataset arguments (``-d``) depend on the registered classes;
they are checked against the constructors' signatures in :mod:`fer_bench.validation`.

This module imports neither torch nor any method or dataset.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from fer_bench.errors import UserError

PRECISIONS: tuple[str, ...] = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
ACCELERATORS: tuple[str, ...] = ("cpu", "gpu", "auto")
MONITORS: tuple[str, ...] = ("war", "uar")
LOGGERS: tuple[str, ...] = ("csv", "wandb")
CACHE_MODES: tuple[str, ...] = ("auto", "on", "off")
TTA_MODES: tuple[str, ...] = ("none", "hflip", "tencrop")  # the same as fer_bench.nn.tta.TTA_MODES (tested)
KINDS: tuple[str, ...] = ("job", "protocol", "run", "speed", "launch", "internal", "slurm")


def setting(default: Any = MISSING, *, kind: str, help: str, type: Any = None, choices: tuple | None = None,
            minimum: float | None = None, maximum: float | None = None, flag: str | None = None,
            short: str | None = None, metavar: str | None = None, factory: Any = None):
    """A dataclass field carrying its command-line and validation spec."""
    assert kind in KINDS, kind
    meta = dict(kind=kind, help=help, type=type, choices=choices, minimum=minimum, maximum=maximum,
                flag=flag, short=short, metavar=metavar)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything one training run needs; the single source of every ``train`` flag and suite key."""

    method: str = setting(kind="job", type=str, help="registered method name (fer-bench list)")
    dataset: str = setting(kind="job", type=str, help="registered dataset name (fer-bench list)")
    root: str | None = setting(None, kind="launch", type=str, help="dataset folder as distributed")
    fold: int | None = setting(None, kind="job", type=int, minimum=0, help="fold of a k-fold protocol")
    seed: int = setting(0, kind="job", type=int, minimum=0, help="random seed")
    max_epochs: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                     help="training epochs (default: the method's)")
    batch_size: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                     help="training batch size (default: the method's recipe)")
    input_size: int | None = setting(None, kind="protocol", type=int, minimum=8,
                                     help="input side in pixels (default: the method's)")
    in_chans: int | None = setting(None, kind="protocol", type=int, choices=(1, 3),
                                   help="input channels (default: the method's)")
    limit_per_class: int | None = setting(None, kind="protocol", type=int, minimum=1,
                                          help="at most N samples per class in each split")
    precision: str = setting("32-true", kind="protocol", type=str, choices=PRECISIONS,
                             help="32-true (default); bf16-mixed / 16-mixed autocast on GPU (16-mixed needs CUDA)")
    monitor: str = setting("war", kind="protocol", type=str, choices=MONITORS,
                           help="validation metric that picks the checkpoint")
    weights: str | None = setting(None, kind="protocol", type=str,
                                  help="weights to start from: a registered name under $FER_WEIGHTS "
                                       "(fer_bench.weights) or a local state dict (nothing is downloaded)")
    tta: str | None = setting(None, kind="protocol", type=str, choices=TTA_MODES,
                              help="test-time augmentation (default: the method's recipe): none; hflip (mean softmax "
                                   "of the image and its mirror); tencrop (four corners and centre at the input size, "
                                   "from the recipe's larger resize, and their mirrors)")
    method_args: dict[str, Any] = setting(kind="protocol", type=dict, factory=dict, flag="--method-arg", short="-m",
                                          metavar="KEY=VALUE",
                                          help="method hyper-parameter, e.g. -m lr=0.01 -m strategy=prediction_based")
    data_args: dict[str, Any] = setting(kind="protocol", type=dict, factory=dict, flag="--data-arg", short="-d",
                                        metavar="KEY=VALUE",
                                        help="dataset protocol argument, e.g. -d classes=8 -d label_mode=probability")
    max_unreadable: float = setting(0.01, kind="run", type=float, minimum=0.0, maximum=1.0,
                                    help="stop when more than this fraction of a split is unreadable (default 0.01)")
    test_every_epoch: bool = setting(False, kind="run", type=bool,
                                     help="also score the test split after every epoch (test_curve.csv; never used for "
                                          "selection): the row gets the best-test-epoch WAR/UAR beside the selected ones")
    # speed only (a sample is bit-identical either way; see fer_bench.data.cache):
    num_workers: int | None = setting(None, kind="speed", type=int, minimum=0,
                                      help="DataLoader workers (default: chosen from the machine, 0 on <= 2 CPUs)")
    cache_images: str = setting("auto", kind="speed", type=str, choices=CACHE_MODES,
                                help="in-memory decoded-image cache for image-file datasets (auto: when it fits "
                                     "--cache-budget-mb)")
    cache_budget_mb: float | None = setting(None, kind="speed", type=float, minimum=0.0,
                                            help="auto image-cache budget (default: RAM/4, at most 8 GiB)")
    clip_cache: str | None = setting(None, kind="speed", type=str, metavar="DIR",
                                     help="on-disk uint8 cache of decoded video frames (built once, reused, rebuilt "
                                          "when a source changes)")
    channels_last: bool = setting(False, kind="speed", type=bool,
                                  help="model and 4-D batches in channels_last memory format (faster GPU convolutions)")
    # where and how it runs:
    devices: int = setting(1, kind="launch", type=int, minimum=1, help="devices per node (DDP when > 1)")
    accelerator: str = setting("cpu", kind="launch", type=str, choices=ACCELERATORS, help="cpu, gpu or auto")
    num_nodes: int = setting(1, kind="launch", type=int, minimum=1, help="nodes (DDP across nodes when > 1)")
    logger: str = setting("csv", kind="launch", type=str, choices=LOGGERS,
                          help="csv, or wandb (offline unless wandb is configured)")
    out: str | None = setting(None, kind="launch", type=str,
                              help="output folder (default runs/<method>/<dataset>/seed<S>)")
    progress: bool = setting(True, kind="launch", type=bool, flag="--no-progress", help="no progress bar")
    wandb_group: str | None = setting(None, kind="internal", type=str, help="wandb group (set by the runner)")
    resume_from: str | None = setting(None, kind="internal", type=str,
                                      help="a run's last.ckpt to go on from (set by the runner for a job's next attempt)")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, check_value(f.name, getattr(self, f.name)))

    def out_dir(self) -> Path:
        """Deterministic default (every DDP rank re-launched from argv must agree on it)."""
        if self.out:
            return Path(self.out)
        tag = f"seed{self.seed}" + (f"-fold{self.fold}" if self.fold is not None else "")
        return Path("runs") / self.method / self.dataset / tag


@dataclass
class SlurmSettings:
    """The resources of a SLURM array job (``fer-bench bench --launcher slurm``, :mod:`fer_bench.bench.slurm`):
    the suite file's ``launcher:`` keys and the bench flags (``--gpus-per-job``) are these."""

    partition: str | None = setting(None, kind="slurm", type=str, help="SLURM partition")
    account: str | None = setting(None, kind="slurm", type=str, help="SLURM account")
    qos: str | None = setting(None, kind="slurm", type=str, help="SLURM quality of service")
    constraint: str | None = setting(None, kind="slurm", type=str, help="SLURM node constraint (e.g. a GPU model)")
    time_min: int = setting(240, kind="slurm", type=int, minimum=0,
                            help="time limit of one array task, minutes (a longer job is requeued and resumes)")
    gpus_per_job: int = setting(1, kind="slurm", type=int, minimum=0,
                                help="GPUs per job (0: CPU jobs; > 1: DDP over that many SLURM tasks)")
    cpus_per_job: int = setting(8, kind="slurm", type=int, minimum=0, help="CPU cores per job")
    mem_gb: float = setting(32.0, kind="slurm", type=float, minimum=0.0, help="memory per job, GB")
    array_parallelism: int = setting(64, kind="slurm", type=int, minimum=0, help="array tasks running at once")
    signal_delay_s: int = setting(120, kind="slurm", type=int, minimum=0,
                                  help="seconds before the time limit at which the job is told to stop")
    setup: list[str] = setting(kind="slurm", type=list, factory=list,
                               help="shell lines run before each task (module load, source .venv/bin/activate)")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, check_value(f.name, getattr(self, f.name)))


# every setting by name: a run's, then a SLURM array's (the names are distinct)
SETTINGS: dict[str, Any] = {f.name: f for cls in (TrainConfig, SlurmSettings) for f in fields(cls)}


def names(*kinds: str) -> list[str]:
    """Setting names of the given kinds, in definition order."""
    return [n for n, f in SETTINGS.items() if f.metadata["kind"] in kinds]


# the keys of a suite cell: settings of these kinds, plus the suite's own
SUITE_ONLY_KEYS: tuple[str, ...] = ("label", "folds", "seeds", "cross_eval")
SUITE_KEYS: tuple[str, ...] = ("method", "dataset") + tuple(names("protocol", "run", "speed")) + SUITE_ONLY_KEYS
PROTOCOL_KEYS: tuple[str, ...] = tuple(names("protocol"))


def flag_of(name: str) -> str:
    spec = SETTINGS[name].metadata
    return spec["flag"] or "--" + name.replace("_", "-")


def default_of(name: str) -> Any:
    f = SETTINGS[name]
    return f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]


def expected(name: str) -> str:
    """What setting ``name`` takes, in words (``an integer >= 1``, ``one of csv, wandb``)."""
    return _expected(SETTINGS[name].metadata)


def _expected(spec: dict[str, Any]) -> str:
    t = spec["type"]
    if spec["choices"]:
        return "one of " + ", ".join(map(str, spec["choices"]))
    what = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping", list: "a list of strings"}.get(t, getattr(t, "__name__", str(t)))
    lo, hi = spec["minimum"], spec["maximum"]
    if lo is not None and hi is not None:
        what += f" in [{lo:g}, {hi:g}]"
    elif lo is not None:
        what += f" >= {lo:g}"
    return what


def check_value(name: str, value: Any, label: str | None = None) -> Any:
    """``value`` as the setting ``name`` takes it, or a UserError naming ``label`` (the flag or
    suite key; default the flag), the value and what is expected.  ``None`` is accepted where
    the default is ``None``."""
    f = SETTINGS.get(name)
    if f is None:
        raise UserError(f"unknown setting {name!r}: expected one of {', '.join(SETTINGS)}")
    spec = f.metadata
    label = label or flag_of(name)
    if value is None and default_of(name) is None:
        return None
    if value is MISSING or (value is None and name in ("method", "dataset")):
        raise UserError(f"{label}: a value is required ({_expected(spec)})")
    ok, v = _coerce(spec["type"], value)
    if ok and spec["choices"] and v not in spec["choices"]:
        ok = False
    if ok and isinstance(v, (int, float)) and not isinstance(v, bool):
        if (spec["minimum"] is not None and v < spec["minimum"]) or (spec["maximum"] is not None and v > spec["maximum"]):
            ok = False
    if not ok:
        raise UserError(f"{label}: expected {_expected(spec)}, got {value!r}")
    return v


def _coerce(t: Any, value: Any) -> tuple[bool, Any]:
    """(is the value of type ``t``, the value).  Numbers are never parsed from free text here:
    the command line parses with YAML / argparse first, so ``'abc'`` for a float is an error."""
    if t is bool:
        return isinstance(value, bool), value
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if t is str:
        return isinstance(value, str) and value != "", value
    if t is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else value
    if t is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, list(value) if ok else value
    return True, value


def protocol_of(cfg: TrainConfig) -> dict[str, Any]:
    """The protocol settings of a config (what its config hash covers)."""
    return {k: getattr(cfg, k) for k in PROTOCOL_KEYS}


def uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
