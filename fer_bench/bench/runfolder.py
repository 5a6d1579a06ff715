"""A suite's run folder, shared by every worker that runs it: the plan, one claim per attempt, one row per job.

``runs/bench/<suite>/<run id>/`` holds::

    suite.json          the suite's name and file
    plan.json           the jobs to run and how (launch and speed settings, data roots), written by the
                        command that starts or resumes the run; workers and SLURM tasks read it
    jobs/<job>/         a job's outputs (:func:`fer_bench.train.run`), its ``checkpoints/last.ckpt``,
                        and ``claim.1``, ``claim.2``, ...: one file per attempt at the job
    rows/<job>.json     the job's leaderboard row, written whole (a rename) when it ends
    workers/<id>.json   the jobs a worker took, in order: its other DDP ranks follow it
    leaderboard.txt     the leaderboard version published from the rows (once, see ``publishing``)
    logs/, slurm/       worker and SLURM logs

**Exactly once**, from one process, several, or several machines on a shared filesystem:
attempt N of a job is taken by creating ``claim.N`` with ``O_EXCL``, so of any number of
workers racing for it exactly one succeeds.  Attempt N+1 may be taken only once attempt N
has ended without a row (it was pre-empted) or its worker is gone: a process of this host
that no longer exists, or a claim whose heartbeat (its mtime, refreshed every
:data:`HEARTBEAT_S` seconds while the job runs) is older than :data:`STALE_S` seconds.  A
worker writes its row only while its attempt is still the newest, so a worker presumed dead
that comes back never adds a second row; and a row, once there, ends the job.
"""
from __future__ import annotations

import functools
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fer_bench.bench.launch import WORKER_ENV, Launch
from fer_bench.bench.row import Row, now
from fer_bench.bench.suite import Job
from fer_bench.errors import UserError
from fer_bench.files import atomic_write_text
from fer_bench.registry import imported, reimport

HEARTBEAT_S = 30.0
STALE_S = float(os.environ.get("FER_BENCH_STALE_S", 600))  # a claim not refreshed for this long: its worker is gone


def safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


def global_rank() -> int:
    """This process's DDP rank as the launchers set it (Lightning, torchrun, SLURM); 0 alone."""
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    local = int(os.environ.get("LOCAL_RANK", 0))
    return local if node == 0 else node * 1000 + local  # only "is it zero" matters here


def _process_start(pid: int) -> str:
    """The start time of a process of this host (``/proc``), to tell a reused pid from its first owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Worker:
    """Who runs a job: an id shared by a worker's DDP ranks, and the process that claims."""

    id: str
    host: str
    pid: int
    pid_start: str

    @classmethod
    def here(cls) -> Worker:
        host, pid = socket.gethostname(), os.getpid()
        env = os.environ
        if env.get(WORKER_ENV):
            wid = env[WORKER_ENV]
        elif env.get("SLURM_ARRAY_JOB_ID"):
            wid = f"slurm-{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
        elif env.get("SLURM_JOB_ID"):
            wid = f"slurm-{env['SLURM_JOB_ID']}"
        elif env.get("MASTER_ADDR") and int(env.get("WORLD_SIZE", 1)) > 1:  # torchrun: every rank knows these
            wid = f"dist-{env['MASTER_ADDR']}-{env.get('MASTER_PORT', '')}-{env.get('TORCHELASTIC_RUN_ID', '')}"
        else:
            wid = f"{host}-{pid}"
        return cls(id=safe_name(wid), host=host, pid=pid, pid_start=_process_start(pid))


@dataclass
class Claim:
    """Attempt ``attempt`` at job ``key``, held by ``worker``."""

    path: Path
    key: str
    attempt: int
    info: dict[str, Any]

    def heartbeat(self) -> None:
        try:
            os.utime(self.path)
        except OSError:
            pass

    def holds(self) -> bool:
        """Still the newest attempt (no other worker took the job over)."""
        return latest_attempt(self.path.parent) == self.attempt

    def end(self, state: str, **detail: Any) -> None:
        """Record how the attempt ended: ``done`` (its row is written), ``preempted`` (resumable)."""
        self.info.update(state=state, ended_at=now(), **detail)
        atomic_write_text(self.path, json.dumps(self.info, default=str))


def latest_attempt(folder: Path) -> int:
    nums = [int(p.name.split(".")[1]) for p in folder.glob("claim.*") if re.fullmatch(r"claim\.\d+", p.name)]
    return max(nums, default=0)


def read_claim(path: Path) -> dict[str, Any]:
    """A claim's content; ``{}`` while its creator has not written it yet."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def claim_alive(path: Path, info: dict[str, Any]) -> bool:
    """Whether the worker of a running claim is still there (see the module docstring)."""
    if info and info.get("state", "running") != "running":
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if info and info.get("host") == socket.gethostname():
        pid = int(info.get("pid", -1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return not info.get("pid_start") or _process_start(pid) == info["pid_start"]
    return age < STALE_S


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- the plan ---------------------------------------------------------------------------
    def write_plan(self, suite: str, entries: list[tuple[Job, str | None]], launch: Launch) -> None:
        """The jobs to run, each with its data root, the launch settings every worker uses, and the
        user modules (``--import``, a suite's ``imports:``) that every worker imports first."""
        self.path.mkdir(parents=True, exist_ok=True)
        doc = {"suite": suite, "written_at": now(), "launch": launch.as_dict(), "imports": imported(),
               "jobs": [{"key": j.key, "root": root, "job": {**asdict(j), "cross_eval": list(j.cross_eval)}}
                        for j, root in entries]}
        atomic_write_text(self.path / "plan.json", json.dumps(doc, indent=1, default=str))

    def update_launch(self, **launch: Any) -> None:
        """Change launch settings of the plan (a SLURM submission sets the devices its tasks get)."""
        doc = json.loads((self.path / "plan.json").read_text())
        doc["launch"] = Launch.from_dict({**doc["launch"], **launch}).as_dict()
        atomic_write_text(self.path / "plan.json", json.dumps(doc, indent=1, default=str))

    def read_plan(self, wait_s: float = 0.0) -> dict[str, Any]:
        """The plan, its jobs as :class:`Job` (``plan["entries"]``: ``(job, root)``), checked to hash the same,
        and its :class:`~fer_bench.bench.launch.Launch` (``plan["launch"]``)."""
        path = self.path / "plan.json"
        deadline = time.time() + wait_s
        while not path.exists() and time.time() < deadline:
            time.sleep(0.2)
        if not path.exists():
            raise UserError(f"{self.path}: expected a run folder of fer-bench bench (with plan.json), found none")
        doc = json.loads(path.read_text())
        reimport(doc.get("imports", []))  # the planning process's user methods and datasets, before any name is used
        entries = []
        for e in doc["jobs"]:
            job = Job(**{**e["job"], "cross_eval": tuple(e["job"].get("cross_eval", ()))})
            if job.key != e["key"]:
                raise UserError(f"{path}: job {e['key']} hashes to {job.key} with this fer_bench (another version "
                                "planned this run; run it with that version)")
            entries.append((job, e["root"]))
        doc["entries"] = entries
        doc["launch"] = Launch.from_dict(doc["launch"])
        return doc

    def unfinished(self) -> list[str]:
        """The keys of the planned jobs without a row."""
        return [j.key for j, _ in self.read_plan()["entries"] if not self.has_row(j.key)]

    def job_dir(self, key: str) -> Path:
        return self.path / "jobs" / safe_name(key)

    # --- rows -------------------------------------------------------------------------------
    def write_row(self, row: Row | dict[str, Any]) -> None:
        """Store a finished row, whole (a rename): a :class:`~fer_bench.bench.row.Row`, or one read back."""
        row = row.as_dict() if isinstance(row, Row) else row
        rows = self.path / "rows"
        rows.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rows / f"{safe_name(row['job'])}.json", json.dumps(row, default=str))

    def has_row(self, key: str) -> bool:
        return (self.path / "rows" / f"{safe_name(key)}.json").exists() or key in self._legacy[1]

    def read_rows(self) -> list[dict[str, Any]]:
        """Every finished job's row (and its cross-dataset rows), in the plan's order."""
        rows = list(self._legacy[0])
        seen = {r["job"] for r in rows}
        for p in sorted((self.path / "rows").glob("*.json")):
            try:
                row = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if row["job"] not in seen:
                rows.append(row)
                seen.add(row["job"])
        order = {}
        if (self.path / "plan.json").exists():
            order = {e["key"]: i for i, e in enumerate(json.loads((self.path / "plan.json").read_text())["jobs"])}
        return sorted(rows, key=lambda r: (order.get(r["job"].split("/cross:")[0], len(order)), r["job"]))

    @functools.cached_property
    def _legacy(self) -> tuple[list[dict[str, Any]], set[str]]:
        """``rows.jsonl`` of a run folder written before rows were one file per job (read once, never written)."""
        path = self.path / "rows.jsonl"
        out = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill: that job is run again
                    continue
        return out, {r["job"] for r in out}

    # --- claims -----------------------------------------------------------------------------
    def claim(self, key: str, worker: Worker) -> Claim | None:
        """Take the job's next attempt, or ``None``: done, held by a live worker, or lost to a racer."""
        if self.has_row(key):
            return None
        folder = self.job_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        n = latest_attempt(folder)
        if n:
            prev = folder / f"claim.{n}"
            info = read_claim(prev)
            if info.get("state") == "done":
                return None
            # our own earlier attempt (a requeued SLURM task keeps its id) may be taken over at once
            if info.get("worker") != worker.id and claim_alive(prev, info):
                return None
        path = folder / f"claim.{n + 1}"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        info = {"worker": worker.id, "host": worker.host, "pid": worker.pid, "pid_start": worker.pid_start,
                "attempt": n + 1, "state": "running", "started_at": now()}
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info))
            f.flush()
            os.fsync(f.fileno())
        claim = Claim(path=path, key=key, attempt=n + 1, info=info)
        if self.has_row(key):  # finished by the previous holder between our two looks
            claim.end("done")
            return None
        return claim

    def attempts(self, key: str) -> int:
        return latest_attempt(self.job_dir(key))

    # --- the DDP ranks of a worker follow its rank 0 ------------------------------------------
    def announce(self, worker: Worker, key: str | None, resume_from: str | None = None) -> None:
        """Rank 0 of ``worker`` starts job ``key`` (``None``: it takes no more)."""
        path = self.path / "workers" / f"{worker.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = json.loads(path.read_text()) if path.exists() else {"jobs": [], "finished": False}
        if key is None:
            doc["finished"] = True
        else:
            doc["jobs"].append({"key": key, "resume_from": resume_from})
        atomic_write_text(path, json.dumps(doc))

    def followed(self, worker_id: str, index: int, timeout_s: float = STALE_S) -> dict[str, Any] | None:
        """The ``index``-th job rank 0 of ``worker_id`` started, once it has; ``None`` when it takes no more."""
        path = self.path / "workers" / f"{worker_id}.json"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if path.exists():
                doc = json.loads(path.read_text())
                if len(doc["jobs"]) > index:
                    return doc["jobs"][index]
                if doc["finished"]:
                    return None
            time.sleep(0.2)
        raise TimeoutError(f"rank 0 of worker {worker_id} announced no job {index} within {timeout_s:.0f} s")

    # --- publication ------------------------------------------------------------------------
    def published(self) -> str | None:
        path = self.path / "leaderboard.txt"
        return path.read_text().strip() if path.exists() else None

    def reset_publication(self) -> None:
        for name in ("publishing", "leaderboard.txt"):
            (self.path / name).unlink(missing_ok=True)

    def take_publication(self) -> bool:
        """True for exactly one caller: the one that publishes the run's final leaderboard version."""
        try:
            os.close(os.open(self.path / "publishing", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            return False

    # --- what is where ----------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """One record per planned job: ``state`` done / failed / running / pending, attempts, who, detail."""
        plan = self.read_plan()
        rows = {r["job"]: r for r in self.read_rows()}
        out = []
        for job, _ in plan["entries"]:
            key = job.key
            n = self.attempts(key)
            rec = {"job": key, "method": job.row_method, "dataset": job.dataset, "fold": job.fold, "seed": job.seed,
                   "attempts": n, "worker": "", "detail": ""}
            info = read_claim(self.job_dir(key) / f"claim.{n}") if n else {}
            if key in rows:
                row = rows[key]
                rec["state"] = "done" if row.get("status") == "ok" else "failed"
                rec["detail"] = (f"WAR {100 * row['war']:.2f} UAR {100 * row['uar']:.2f}" if row.get("status") == "ok"
                                 else str(row.get("error", ""))[:120])
            elif n and claim_alive(self.job_dir(key) / f"claim.{n}", info):
                rec.update(state="running", worker=f"{info.get('worker', '?')} ({info.get('host', '?')})",
                           detail=f"attempt {n} since {info.get('started_at', '?')}")
            else:
                rec["state"] = "pending"
                resumable = (self.job_dir(key) / "checkpoints" / "last.ckpt").exists()
                if info.get("state") == "preempted":
                    rec["detail"] = f"attempt {n} pre-empted ({info.get('reason', '')})"
                elif n:
                    rec["detail"] = f"the worker of attempt {n} is gone ({info.get('worker', '?')})"
                if resumable:
                    rec["detail"] = (rec["detail"] + "; " if rec["detail"] else "") + "resumes from last.ckpt"
            out.append(rec)
        return out
