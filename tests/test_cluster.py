"""Suites across processes and machines: parallel workers, SLURM arrays through submitit, pre-emption.

The trainings here are tiny (ResNet-18 at 32 px on a few synthetic faces) and single-threaded;
what is checked is that every job runs and is written exactly once, whoever runs it, and that
a resumed job ends bit for bit where the uninterrupted one does.
"""
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from fer_bench.bench.launch import Launch
from fer_bench.bench.runfolder import RunFolder, Worker
from fer_bench.bench.suite import Job

from conftest import REPO, run_cli

FOUR_JOBS = """
suite: four
defaults:
  max_epochs: 2
  batch_size: 8
  input_size: 32
  seeds: [0, 1]
  num_workers: 0
  data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}
cells:
  - {method: resnet18_pretrained, dataset: synthetic-static}
  - {method: resnet18_pretrained, dataset: synthetic-static, label: lr3, method_args: {lr: 0.003}}
"""

METRICS = ["war", "uar", "nll", "ece", "best_epoch"]


def _bench(suite, run_dir, boards, *extra, check=True, timeout=600):
    return run_cli("bench", str(suite), "--no-progress", "--run-dir", str(run_dir), "--leaderboards", str(boards),
                   *extra, check=check, timeout=timeout)


def _rows(run_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run_dir / "rows").glob("*.json")]


def _two_cores():
    cores = sorted(os.sched_getaffinity(0))[:2]
    return lambda: os.sched_setaffinity(0, cores)


@pytest.mark.slow
def test_parallel_workers_give_each_row_once_with_the_sequential_metrics(tmp_path):
    suite = tmp_path / "four.yaml"
    suite.write_text(FOUR_JOBS)
    _bench(suite, tmp_path / "seq", tmp_path / "b-seq")  # one thread (conftest)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # on two cores: one core, hence one torch thread, per worker, as the sequential run had
    proc = subprocess.run([sys.executable, "-m", "fer_bench", "bench", str(suite), "--no-progress", "--parallel", "2",
                           "--run-dir", str(tmp_path / "par"), "--leaderboards", str(tmp_path / "b-par")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, preexec_fn=_two_cores())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(set(re.findall(r"^worker \d \(pid \d+\) on core (\d+)", proc.stdout, re.M))) == 2, proc.stdout
    seq = pd.read_csv(tmp_path / "b-seq/four/v001.csv").set_index("job").sort_index()
    par = pd.read_csv(tmp_path / "b-par/four/v001.csv").set_index("job").sort_index()
    assert len(par) == 4 and par.index.is_unique and list(par.index) == list(seq.index)
    assert (par.status == "ok").all() and (par.attempts == 1).all()
    pd.testing.assert_frame_equal(par[METRICS], seq[METRICS])
    # both workers took jobs (each logs its own)
    logs = [(tmp_path / "par/logs" / f"worker-{i}.log").read_text() for i in (0, 1)]
    assert all(re.search(r"^\[1/\d\] .*: WAR", log, re.M) for log in logs)
    assert len(list((tmp_path / "b-par/four").glob("v*.csv"))) == 1  # published once


def _wait_for(pattern: str, timeout: float = 120) -> None:
    from glob import glob

    deadline = time.time() + timeout
    while not glob(pattern):
        assert time.time() < deadline, f"{pattern} did not appear"
        time.sleep(0.05)


ONE_JOB = """
suite: one
defaults: {max_epochs: 4, batch_size: 8, input_size: 32, seeds: [5], num_workers: 0,
           data_args: {train_per_class: 30, val_per_class: 3, test_per_class: 5}}
cells:
  - {method: resnet18_pretrained, dataset: synthetic-static}
"""


@pytest.mark.slow
def test_sigterm_mid_training_checkpoints_and_the_resumed_job_matches_an_uninterrupted_one(tmp_path):
    suite = tmp_path / "one.yaml"
    suite.write_text(ONE_JOB)
    run_dir, boards = tmp_path / "run", tmp_path / "boards"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "fer_bench", "bench", str(suite), "--no-progress", "--run-dir",
                          str(run_dir), "--leaderboards", str(boards)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    _wait_for(str(run_dir / "jobs/*/checkpoints/last.ckpt"))  # written at the end of epoch 0
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 75, out[-3000:]  # "requeue"
    assert "stopped (SIGTERM)" in out
    assert not (run_dir / "rows").exists() and not (boards / "one").exists()
    claim = json.loads(next(run_dir.glob("jobs/*/claim.1")).read_text())
    assert claim["state"] == "preempted" and claim["reason"] == "SIGTERM"
    status = run_cli("bench", "--status", str(run_dir)).stdout
    assert "pending" in status and "pre-empted" in status and "resumes from last.ckpt" in status
    # the next attempt goes on from the checkpoint, not from epoch 0
    resumed = _bench(suite, run_dir, boards, "--resume", str(run_dir)).stdout
    assert "attempt 2, resuming from" in resumed
    row = pd.read_csv(boards / "one/v001.csv").iloc[0]
    assert row.status == "ok" and row.attempts == 2 and 1 <= row.resumed_at_epoch < 4
    _bench(suite, tmp_path / "whole", tmp_path / "b-whole")
    whole = pd.read_csv(tmp_path / "b-whole/one/v001.csv").iloc[0]
    assert whole.attempts == 1 and whole.resumed_at_epoch == 0
    for m in METRICS:
        assert row[m] == whole[m], m
    # the last epoch's logged training loss and validation scores (full precision) agree too
    resumed_log = pd.read_csv(next(run_dir.glob("jobs/*/logs-2/metrics.csv")))
    whole_log = pd.read_csv(next((tmp_path / "whole").glob("jobs/*/logs/metrics.csv")))
    cols = [c for c in whole_log.columns if c.startswith(("train/", "val/")) and c in resumed_log.columns]
    assert "val/loss" in cols or "val/war" in cols, whole_log.columns
    last_r = resumed_log.groupby("epoch")[cols].last().loc[3]
    last_w = whole_log.groupby("epoch")[cols].last().loc[3]
    assert (last_r == last_w).all(), (last_r, last_w)
    assert not list(run_dir.glob("jobs/*/checkpoints/last.ckpt"))  # removed once the row is written


@pytest.mark.slow
def test_killing_one_of_two_parallel_workers_then_resume_runs_every_job_once(tmp_path):
    suite = tmp_path / "four.yaml"
    suite.write_text(FOUR_JOBS.replace("max_epochs: 2", "max_epochs: 3").replace("train_per_class: 6",
                                                                                 "train_per_class: 20"))
    run_dir, boards = tmp_path / "run", tmp_path / "boards"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "fer_bench", "bench", str(suite), "--no-progress", "--parallel", "2",
                          "--run-dir", str(run_dir), "--leaderboards", str(boards)], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_two_cores())
    pids = {}
    for line in p.stdout:
        found = re.match(r"worker (\d) \(pid (\d+)\)", line)
        if found:
            pids[int(found.group(1))] = int(found.group(2))
        if len(pids) == 2:
            break
    # once worker 1 holds a job and has trained one epoch of it, kill it outright
    _wait_for(str(run_dir / "jobs/*/checkpoints/last.ckpt"))
    deadline = time.time() + 120
    while True:
        held = [c for c in run_dir.glob("jobs/*/claim.*") if json.loads(c.read_text() or "{}").get("pid") == pids[1]]
        if held and json.loads(held[0].read_text()).get("state") == "running":
            break
        assert time.time() < deadline, "worker 1 never held a job"
        time.sleep(0.05)
    os.kill(pids[1], signal.SIGKILL)
    out = p.communicate(timeout=600)[0]
    assert "worker 1 ended with signal SIGKILL" in out, out[-3000:]
    _bench(suite, run_dir, boards, "--resume", str(run_dir))
    rows = _rows(run_dir)
    keys = [r["job"] for r in rows]
    assert len(keys) == 4 and len(set(keys)) == 4 and all(r["status"] == "ok" for r in rows)
    killed = held[0].parent
    row = next(r for r in rows if RunFolder(run_dir).job_dir(r["job"]) == killed)
    assert row["attempts"] == 2  # the killed attempt, then the one that finished it
    assert len(pd.read_csv(next((boards / "four").glob("v*.csv")))) == 4
    assert len(list((boards / "four").glob("v*.csv"))) == 1
    again = run_cli("bench", "--collect", str(run_dir)).stdout
    assert "already published" in again and len(list((boards / "four").glob("v*.csv"))) == 1


@pytest.mark.slow
def test_submitit_local_executor_runs_the_suite_end_to_end(tmp_path):
    suite = tmp_path / "two.yaml"
    suite.write_text(FOUR_JOBS.replace("suite: four", "suite: two").replace("seeds: [0, 1]", "seeds: [0]"))
    run_dir, boards = tmp_path / "run", tmp_path / "boards"
    out = _bench(suite, run_dir, boards, "--launcher", "submitit-local", "--gpus-per-job", "0", "--cpus-per-job", "1",
                 "--array-parallelism", "2").stdout
    assert "submitit local: 2 task(s) started" in out
    v = pd.read_csv(boards / "two/v001.csv")
    assert len(v) == 2 and (v.status == "ok").all() and v.job.is_unique
    assert len(list((run_dir / "slurm-local").glob("*_result.pkl"))) == 2  # submitit's own records, one per task


def test_slurm_dry_run_script_names_the_array_the_resources_and_the_command(tmp_path):
    suite = tmp_path / "three.yaml"
    suite.write_text("suite: three\ndefaults: {max_epochs: 1, seeds: [0, 1, 2]}\n"
                     "launcher: {partition: from-yaml, time_min: 30, mem_gb: 16, setup: ['module load cuda']}\n"
                     "cells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n")
    run_dir = tmp_path / "run"
    args = ["--launcher", "slurm", "--dry-run", "--partition", "gpu-a", "--gpus-per-job", "2", "--cpus-per-job", "8"]
    out = _bench(suite, run_dir, tmp_path / "b", *args).stdout
    script = (run_dir / "slurm/dry-run.sbatch").read_text()
    assert script in out
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu-a", "#SBATCH --time=30", "#SBATCH --mem=16GB",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --requeue", "#SBATCH --signal=USR2@120", "module load cuda"):
        assert line in script, line
    assert re.search(r"srun .* -m submitit\.core\._submit .*/run/slurm", script)
    assert "task 0: resnet18_pretrained/synthetic-static/" in script and "task 2: " in script
    assert not (tmp_path / "b").exists()  # nothing ran
    # one job done: the array covers the two left
    rf = RunFolder(run_dir)
    first = rf.read_plan()["entries"][0][0]
    rf.write_row({"job": first.key, "status": "ok", "war": 0.5, "uar": 0.5})
    out = _bench(suite, run_dir, tmp_path / "b", *args, "--resume", str(run_dir)).stdout
    assert "#SBATCH --array=0-1%2" in out and first.key not in out


def test_a_bad_launcher_section_is_refused_naming_the_file_and_key(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("suite: bad\nlauncher: {gpus: 2}\ncells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n")
    proc = run_cli("bench", str(suite), "--launcher", "slurm", "--dry-run", check=False)
    assert proc.returncode == 2 and str(suite) in proc.stderr and "found gpus" in proc.stderr, proc.stderr
    suite.write_text("suite: bad\nlauncher: {time_min: soon}\ncells:\n"
                     "  - {method: resnet18_pretrained, dataset: synthetic-static}\n")
    proc = run_cli("bench", str(suite), "--launcher", "slurm", "--dry-run", check=False)
    assert proc.returncode == 2 and "launcher time_min: an integer >= 0, found 'soon'" in proc.stderr, proc.stderr


# --- exactly once, without training: many workers on one run folder ------------------------

def _plan(run_dir, n: int) -> RunFolder:
    rf = RunFolder(run_dir)
    jobs = [Job("resnet18_pretrained", "synthetic-static", None, seed) for seed in range(n)]
    rf.write_plan("race", [(j, None) for j in jobs], Launch(suite="race"))
    return rf


def _fake_job(rf, launch, job, root, attempt=1, resume_from=None, stop_requested=None, rank0=True, echo=None):
    with open(rf.path / "ran.log", "a") as f:  # O_APPEND: one line per run, from any process
        f.write(f"{job.key} {os.getpid()}\n")
    time.sleep(0.01)
    return [{"job": job.key, "method": job.method, "dataset": job.dataset, "seed": job.seed, "status": "ok",
             "war": 0.5, "uar": 0.5, "attempts": attempt}]


def _race(run_dir: str) -> None:
    from fer_bench.bench import publish as publishing
    from fer_bench.bench import worker

    def publish(rf, echo=print):  # count publications instead of writing leaderboards
        with open(rf.path / "published.log", "a") as f:
            f.write(f"{os.getpid()}\n")

    publishing.publish = publish
    worker.work(run_dir, run_job=_fake_job, echo=lambda *_: None)


def test_workers_racing_on_one_run_folder_never_run_a_job_twice(tmp_path):
    rf = _plan(tmp_path / "run", 40)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_race, args=(str(rf.path),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    ran = (rf.path / "ran.log").read_text().split("\n")[:-1]
    keys = [line.split()[0] for line in ran]
    assert len(keys) == 40 and len(set(keys)) == 40
    assert len({line.split()[1] for line in ran}) > 1  # the work was shared
    assert sorted(r["job"] for r in rf.read_rows()) == sorted(keys)
    assert len((rf.path / "published.log").read_text().split()) == 1  # published once, by the last writer
    assert (rf.path / "leaderboard.txt").exists()


def test_a_claim_is_taken_over_only_when_its_attempt_ended_or_its_worker_is_gone(tmp_path, monkeypatch):
    rf = _plan(tmp_path / "run", 1)
    key = rf.read_plan()["entries"][0][0].key
    me = Worker.here()
    folder = rf.job_dir(key)
    folder.mkdir(parents=True)

    def held_by(attempt, **info):
        base = {"worker": "other", "host": socket.gethostname(), "pid": os.getpid(), "pid_start": me.pid_start,
                "state": "running"}
        (folder / f"claim.{attempt}").write_text(json.dumps({**base, **info}))
        return folder / f"claim.{attempt}"

    held_by(1)  # a live process of this host (this one)
    assert rf.claim(key, me) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    held_by(1, pid=dead.pid, pid_start="")  # a process of this host that is gone
    c = rf.claim(key, me)
    assert c is not None and c.attempt == 2 and json.loads((folder / "claim.2").read_text())["worker"] == me.id
    assert rf.claim(key, me) is not None  # our own attempt (a requeued SLURM task keeps its id) is retaken
    (folder / "claim.3").unlink()
    elsewhere = held_by(2, host="another-node", pid=1)
    assert rf.claim(key, me) is None  # another machine, heartbeat fresh
    old = time.time() - 3600
    os.utime(elsewhere, (old, old))
    assert rf.claim(key, me).attempt == 3  # silent for an hour: taken over
    held_by(3, state="preempted")
    assert rf.claim(key, me).attempt == 4  # pre-empted: the next attempt resumes it
    rf.write_row({"job": key, "status": "ok", "war": 0.5, "uar": 0.5})
    held_by(4, state="preempted")
    assert rf.claim(key, me) is None  # a row ends the job
    assert next(r for r in rf.status() if r["job"] == key)["state"] == "done"


def test_a_first_stop_signal_asks_for_a_stop_and_a_second_interrupts_at_once():
    from fer_bench.bench.worker import StopRequest

    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        assert stop() is None
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert stop() == "SIGUSR1"  # the job ends at its next batch
        with pytest.raises(KeyboardInterrupt, match="SIGTERM again"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGUSR1) is before  # handlers restored
