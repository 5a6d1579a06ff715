"""How a suite run's jobs are launched: the :class:`Launch` record of its plan, and the environment
names and exit code its processes share.

A run folder's ``plan.json`` holds one :class:`Launch` (written by the command that starts or resumes
the run, read by every worker, local or on SLURM): the devices and logger of each job (checked
through the same fields of :class:`fer_bench.settings.TrainConfig` as the ``train`` flags), the
speed settings given on the command line, where the leaderboards and datasets are, the code's
commit, and the keys of the suite's external rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fer_bench.errors import UserError
from fer_bench.settings import check_value, names

WORKER_ENV = "FER_BENCH_WORKER"  # the worker id a DDP rank started by Lightning inherits from rank 0
RUN_DIR_ENV = "FER_BENCH_RUN_DIR"  # the run folder a DDP rank re-launched by Lightning inherits from rank 0
EXIT_REQUEUE = 75  # EX_TEMPFAIL: a worker stopped by a signal; its jobs resume from last.ckpt

# the TrainConfig settings a launch fixes for every job of the run
JOB_LAUNCH_SETTINGS = ("devices", "accelerator", "num_nodes", "logger", "progress")


@dataclass(frozen=True)
class Launch:
    """Where and how every job of a run runs, and where its results go."""

    suite: str
    devices: int = 1
    accelerator: str = "cpu"
    num_nodes: int = 1
    logger: str = "csv"
    progress: bool = True
    speed: dict[str, Any] = field(default_factory=dict)  # speed settings over the cells' own
    leaderboards: str = "leaderboards"
    data_root: str | None = None
    git_commit: str = ""
    git_dirty: bool | None = None
    wandb_group: str | None = None
    external: tuple[str, ...] = ()  # the keys of the suite's external rows (scored when planned)

    def __post_init__(self) -> None:
        for name in JOB_LAUNCH_SETTINGS:
            object.__setattr__(self, name, check_value(name, getattr(self, name)))
        speed = names("speed")
        for key, value in self.speed.items():
            if key not in speed:
                raise UserError(f"launch speed setting {key!r}: expected one of {', '.join(speed)}")
            check_value(key, value)
        object.__setattr__(self, "external", tuple(self.external))

    def job_settings(self) -> dict[str, Any]:
        """The launch settings every job's :class:`~fer_bench.settings.TrainConfig` gets (the speed settings,
        which replace a cell's own, apart: :attr:`speed`)."""
        return {**{k: getattr(self, k) for k in JOB_LAUNCH_SETTINGS}, "wandb_group": self.wandb_group}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "external": list(self.external)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Launch:
        """The record a plan holds (keys this version does not know are a plan of another version: refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"plan.json: launch keys {', '.join(unknown)} are not known to this fer_bench "
                            f"(expected {', '.join(sorted(known))}); resume the run with the version that planned it")
        return cls(**d)
