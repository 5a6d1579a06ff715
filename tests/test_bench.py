import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fer_bench.bench import leaderboard as lb
from fer_bench.bench.regress import regress_compare
from fer_bench.bench.suite import load_suite
from fer_bench.errors import DataFormatError

from conftest import REPO, free_port, run_cli

TINY_SUITE = """
suite: tiny
defaults:
  max_epochs: 1
  batch_size: 16
  input_size: 32
  seeds: [0, 1]
cells:
  - method: resnet18_pretrained
    dataset: synthetic-static
    data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}
  - method: resnet18_pretrained
    dataset: synthetic-static
    data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}
    seeds: [0]
    weights: JUNK  # a file that is no state dict: it passes the suite check (it exists), the job fails loading it
  - method: resnet18_pretrained
    dataset: fer2013
"""


def _tiny_suite(tmp_path: Path, text: str = TINY_SUITE) -> Path:
    """``tmp_path/tiny.yaml``: ``text`` with its failing cell's weights file written beside it."""
    (tmp_path / "junk.pt").write_text("no weights\n")
    suite = tmp_path / "tiny.yaml"
    suite.write_text(text.replace("JUNK", str(tmp_path / "junk.pt")))
    return suite


def _row(i: int) -> dict:
    return {"suite": "s", "method": "m", "dataset": "d", "seed": i, "war": 0.5, "uar": 0.4, "status": "ok"}


def _publish(args):
    folder, i = args
    return lb.write_version(Path(folder), [_row(i)] * 50).name


def test_concurrent_writers_get_distinct_complete_versions(tmp_path):
    with mp.get_context("spawn").Pool(4) as pool:
        names = pool.map(_publish, [(str(tmp_path), i) for i in range(8)])
    assert sorted(names) == [f"v{i:03d}.csv" for i in range(1, 9)]
    seeds = sorted(pd.read_csv(tmp_path / n)["seed"].iloc[0] for n in names)
    assert seeds == list(range(8))  # none overwritten
    assert all(len(pd.read_csv(tmp_path / n)) == 50 for n in names)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_crash_while_writing_leaves_no_version(tmp_path, monkeypatch):
    lb.write_version(tmp_path, [_row(0)])

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        lb.write_version(tmp_path, [_row(1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v001.csv"]


def test_suite_errors_name_file_and_cell(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: x\ncells:\n  - method: resnet18_pretrained\n    dataset: synthetic-static\n"
                   "  - method: nope\n    dataset: ckplus\n")
    with pytest.raises(DataFormatError) as e:
        load_suite(bad)
    assert str(bad) in str(e.value) and "cell 2" in str(e.value) and "resnet18" in str(e.value)
    bad.write_text("suite: x\ncells:\n  - method: resnet18_pretrained\n    dataset: ckplus\n    epochs: 3\n")
    with pytest.raises(DataFormatError, match="epochs"):
        load_suite(bad)


def test_shipped_suites_load_and_cover_every_builtin_method():
    """Every built-in method is in the shipped suites (a plugin's methods need not be: its own suite runs them)."""
    from fer_bench.methods import METHODS
    from fer_bench.registry import BUILTIN

    static = load_suite(REPO / "benchmarks/static.yaml")
    dynamic = load_suite(REPO / "benchmarks/dynamic.yaml")
    smoke = load_suite(REPO / "benchmarks/smoke.yaml")
    s_methods = {j.method for j in static.jobs}
    d_methods = {j.method for j in dynamic.jobs}
    assert s_methods == {n for n, c in METHODS.items() if METHODS.source(n) == BUILTIN and c.modality == "static"}
    assert d_methods == {n for n, c in METHODS.items() if METHODS.source(n) == BUILTIN and c.modality == "dynamic"}
    assert {j.dataset for j in static.jobs} == {"fer2013", "ferplus", "ckplus", "rafdb", "affectnet"}
    assert {j.dataset for j in dynamic.jobs} == {"dfew", "ferv39k"}
    assert {j.method for j in smoke.jobs} == {n for n in METHODS.names() if METHODS.source(n) == BUILTIN}
    for suite in (static, dynamic):
        for cell in {j.cell for j in suite.jobs}:
            assert len({j.seed for j in suite.jobs if j.cell == cell}) >= 3
    ck = {j.fold for j in static.jobs if j.dataset == "ckplus"}
    assert ck == set(range(10))
    # the literature's baselines, each on the datasets its lineage runs
    assert {j.dataset for j in static.jobs if j.method == "resnet18_cifar"} == {"fer2013", "ckplus", "ferplus"}
    assert {j.dataset for j in static.jobs if j.method == "resnet18_pretrained"} == {"rafdb", "affectnet", "ferplus"}
    assert {j.fold for j in dynamic.jobs if j.dataset == "dfew"} == {1, 2, 3, 4, 5}


def _cells(**wars) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "dataset": "d", "seed": i, "war": w, "uar": 0.5, "status": "ok"}
                         for m, ws in wars.items() for i, w in enumerate(ws)])


def test_regress_flags_drops_beyond_seed_spread():
    # WAR std: a 0.01414, b 0 -> pooled sqrt((0.0002 + 0) / 2) = 0.01
    base = _cells(a=[0.60, 0.62], b=[0.80, 0.80])
    # a: 3 * 0.01414 * sqrt(1/2 + 1/2) = 0.0424 ; b: its own std is 0, the pooled 0.01 gives 0.03
    assert regress_compare(_cells(a=[0.57, 0.57], b=[0.78, 0.78]), base, min_tol=0.01) == []
    problems = regress_compare(_cells(a=[0.56, 0.57], b=[0.76, 0.77]), base, min_tol=0.01)
    assert [p.split(":")[0] for p in problems] == ["a/d", "b/d"]
    assert "WAR 56.50 < baseline 61.00" in problems[0] and "tolerance 4.24" in problems[0]
    # with the 3-point floor b's drop of 2.5 points is within tolerance, a's 4.5 is not
    assert [p.split(":")[0] for p in regress_compare(_cells(a=[0.56, 0.57], b=[0.77, 0.78]), base)] == ["a/d"]
    assert regress_compare(base, base) == []
    assert "no successful run" in regress_compare(_cells(a=[0.6]), base)[0]


@pytest.mark.slow
def test_bench_versions_failures_missing_data_and_diff(tmp_path):
    suite = _tiny_suite(tmp_path)
    boards = tmp_path / "boards"
    (tmp_path / "data").mkdir()  # an existing data root without fer2013/: its cell is skipped, the others run
    proc = run_cli("bench", str(suite), "--leaderboards", str(boards), "--no-progress",
                   "--run-dir", str(tmp_path / "run1"), "--data-root", str(tmp_path / "data"))
    assert "skip: dataset fer2013 not found" in proc.stdout
    v1 = pd.read_csv(boards / "tiny/v001.csv")
    assert len(v1) == 3  # 2 seeds + 1 failing cell; the missing dataset has no row
    ok, failed = v1[v1.status == "ok"], v1[v1.status == "failed"]
    assert len(ok) == 2 and sorted(ok.seed) == [0, 1]
    assert len(failed) == 1 and "junk.pt" in failed.error.iloc[0] and "no torch.save file" in failed.error.iloc[0]
    for col in ("recall_angry", "recall_neutral", "git_commit", "config_hash", "n_test", "params", "selection",
                "torch_version", "started_at", "finished_at", "input_size", "fold", "classes", "accelerator"):
        assert col in v1.columns, col
    assert (ok.n_test == 35).all() and (ok.selection == "val/war").all()
    # the columns are the Row's fields, in order; each trained row points to its job's bundle
    from fer_bench.bench.row import Row

    assert [c for c in v1.columns if not c.startswith("recall_")] == Row.columns()
    assert all(Path(b).name == "bundle.pt" and Path(b).is_file() for b in ok.bundle)
    assert failed.bundle.isna().all()
    assert ((ok.war >= 0) & (ok.war <= 1)).all()
    readme = (boards / "tiny/README.md").read_text()
    assert "v001.csv" in readme and "| resnet18_pretrained | synthetic-static |" in readme
    run_cli("bench", str(suite), "--leaderboards", str(boards), "--no-progress", "--run-dir", str(tmp_path / "run2"),
            "--only", "resnet18_pretrained/synthetic-static", "--seeds", "1")
    v2 = pd.read_csv(boards / "tiny/v002.csv")  # --seeds 1: the failing cell (seed 0 only) is not run
    assert list(v2.seed) == [1] and list(v2.status) == ["ok"]
    d = run_cli("leaderboard", "diff", "tiny", "v001", "v002", "--leaderboards", str(boards))
    assert "resnet18" in d.stdout
    run_cli("leaderboard", "plot", "tiny", "--leaderboards", str(boards), "--out", str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 5000
    shown = run_cli("leaderboard", "show", "tiny", "--version", "v001", "--leaderboards", str(boards))
    assert "v001" in shown.stdout


@pytest.mark.slow
def test_killed_suite_resumes_every_job_exactly_once(tmp_path):
    suite = _tiny_suite(tmp_path, TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    run_dir, boards = tmp_path / "run", tmp_path / "boards"
    cmd = [sys.executable, "-m", "fer_bench", "bench", str(suite), "--leaderboards", str(boards), "--no-progress",
           "--run-dir", str(run_dir), "--only", "resnet18_pretrained/synthetic-static"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    rows = run_dir / "rows"
    # the event: the runner prints "[k/N] ...: WAR ..." (or FAILED) only after job k's row is written
    finished = re.compile(r"^\[1/\d+\] .*: (WAR|FAILED)")
    seen = []
    for line in p.stdout:
        seen.append(line)
        if finished.match(line):
            break
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    assert any(finished.match(line) for line in seen), "".join(seen[-20:])
    n_before = len(list(rows.glob("*.json")))
    assert 1 <= n_before < 4, "the kill should land mid-suite"
    assert not (boards / "tiny").exists() or not list((boards / "tiny").glob("v*.csv"))
    proc = run_cli("bench", str(suite), "--leaderboards", str(boards), "--no-progress", "--resume", str(run_dir),
                   "--only", "resnet18_pretrained/synthetic-static")
    assert f"{n_before} already done" in proc.stdout
    jobs = [json.loads(p.read_text())["job"] for p in rows.glob("*.json")]
    assert len(jobs) == 4 and len(set(jobs)) == 4  # 3 seeds + the failing cell, each exactly once
    # the job the kill landed in was resumed or restarted as its second attempt; the others took one
    attempts = sorted(json.loads(p.read_text())["attempts"] for p in rows.glob("*.json"))
    assert attempts in ([1, 1, 1, 1], [1, 1, 1, 2]), attempts
    assert len(pd.read_csv(boards / "tiny/v001.csv")) == 4


@pytest.mark.slow
def test_two_node_torchrun_row_matches_single_process_eval(tmp_path):
    """2 nodes x 1 process (gloo) through torchrun's own launcher, on this one machine."""
    import lightning as L

    from fer_bench.methods import METHODS
    from fer_bench.train import TrainConfig, build

    suite = tmp_path / "one.yaml"
    suite.write_text(
        "suite: one\ndefaults: {max_epochs: 1, batch_size: 8, input_size: 32, seeds: [4],"
        " data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}}\n"
        "cells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n")
    torchrun = Path(sys.executable).with_name("torchrun")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(r),
                          "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "fer_bench", "bench",
                          str(suite), "--devices", "1", "--num-nodes", "2", "--no-progress",
                          "--run-dir", str(tmp_path / "run"), "--leaderboards", str(tmp_path / "boards")],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    row = pd.read_csv(tmp_path / "boards/one/v001.csv").iloc[0]
    assert row.status == "ok" and row.nodes == 2 and row.n_test == 35
    job = json.loads(next((tmp_path / "run/rows").glob("*.json")).read_text())["job"]
    metrics = json.loads(next((tmp_path / "run/jobs").glob("*/metrics.json")).read_text())
    assert metrics["world_size"] == 2 and job
    cfg = TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", input_size=32, seed=4,
                      data_args={"train_per_class": 6, "val_per_class": 3, "test_per_class": 5})
    dm, _ = build(cfg)
    model = METHODS.get("resnet18_pretrained").load_from_checkpoint(metrics["checkpoint"], map_location="cpu")
    L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False).test(model, datamodule=dm,
                                                                                          verbose=False)
    assert row.war == pytest.approx(model.test_scores.war, abs=1e-6)
    assert row.uar == pytest.approx(model.test_scores.uar, abs=1e-6)


@pytest.mark.slow
def test_two_device_ddp_suite_matches_single_device_eval(tmp_path):
    """Lightning re-launches the bench command per rank; every rank walks the same jobs."""
    import lightning as L

    from fer_bench.methods import METHODS
    from fer_bench.train import TrainConfig, build

    data = {"train_per_class": 6, "val_per_class": 3, "test_per_class": 5}
    suite = tmp_path / "ddp2.yaml"
    suite.write_text("suite: ddp2\ndefaults: {max_epochs: 1, batch_size: 8, input_size: 32, seeds: [0, 1],"
                     " data_args: {train_per_class: 6, val_per_class: 3, test_per_class: 5}}\n"
                     "cells:\n  - {method: resnet18_pretrained, dataset: synthetic-static}\n")
    run_cli("bench", str(suite), "--devices", "2", "--no-progress", "--run-dir", str(tmp_path / "run"),
            "--leaderboards", str(tmp_path / "boards"))
    rows = pd.read_csv(tmp_path / "boards/ddp2/v001.csv")
    assert len(rows) == 2 and (rows.status == "ok").all() and (rows.devices == 2).all()
    for _, row in rows.iterrows():
        metrics = next(json.loads(p.read_text()) for p in (tmp_path / "run/jobs").glob(f"*seed{row.seed}/metrics.json"))
        assert metrics["world_size"] == 2 and metrics["n_test"] == 35  # odd: padded by the sampler
        dm, _ = build(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", input_size=32, seed=int(row.seed),
                                  data_args=data))
        model = METHODS.get("resnet18_pretrained").load_from_checkpoint(metrics["checkpoint"], map_location="cpu")
        L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False).test(
            model, datamodule=dm, verbose=False)
        assert row.war == pytest.approx(model.test_scores.war, abs=1e-6)
        assert row.uar == pytest.approx(model.test_scores.uar, abs=1e-6)


def test_write_baseline_with_only_replaces_just_those_cells(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "suite: tiny\n"
        "defaults: {seeds: [0], max_epochs: 1, batch_size: 8, input_size: 32,\n"
        "           data_args: {train_per_class: 3, val_per_class: 2, test_per_class: 2}}\n"
        "cells:\n"
        "  - {method: resnet18_pretrained, dataset: synthetic-static}\n"
        "  - {method: angular_sknet, dataset: synthetic-static}\n")
    baseline = tmp_path / "baseline.csv"
    old = pd.DataFrame({"method": ["resnet18_pretrained", "angular_sknet", "gone"], "dataset": ["synthetic-static"] * 3,
                        "war": [0.91, 0.92, 0.93], "uar": [0.5, 0.5, 0.5], "seed": [0, 0, 0]})
    old.to_csv(baseline, index=False)
    proc = run_cli("regress", "--suite", str(suite), "--baseline", str(baseline), "--only", "angular_sknet/*",
                   "--write-baseline")
    assert "(3 rows; 2 of other cells kept)" in proc.stdout
    new = pd.read_csv(baseline)
    assert sorted(new["method"]) == ["angular_sknet", "gone", "resnet18_pretrained"]
    kept = new.set_index("method")
    assert kept.loc["resnet18_pretrained", "war"] == 0.91 and kept.loc["gone", "war"] == 0.93
    assert kept.loc["angular_sknet", "war"] != 0.92 and kept.loc["angular_sknet", "status"] == "ok"
