"""``fer-bench bench``, ``fer-bench leaderboard ...`` and ``fer-bench regress``.

The leaderboard commands read CSV files only (the versions and ``leaderboards/papers.csv``):
they import pandas, never torch or a method.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fer_bench.cli.flags import add_setting_args, at_least, given_settings, key_value
from fer_bench.errors import UserError, check_out_folder
from fer_bench.files import atomic_write_text


def _print_frame(df, title: str) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(title))
    for c in df.columns:
        t.add_column(str(c), overflow="fold")
    for _, r in df.iterrows():
        # escape: "method[variant]" must not be read as rich markup
        t.add_row(*("" if pd.isna(v) else f"{v:.2f}" if isinstance(v, float) else escape(str(v)) for v in r))
    console = Console()
    if not console.is_terminal:  # logs and pipes: do not fold names into 80 columns
        console = Console(width=200)
    console.print(t)


def show_summary(folder: Path, version: str | None = None) -> None:
    """The summary of a leaderboard version, each difference to a paper's number with its marks
    (:func:`fer_bench.bench.leaderboard.cell_marks`) and the notes that say why, then the legend."""
    import pandas as pd

    from fer_bench.bench import leaderboard as lb

    df = lb.read_version(folder, version)
    s = lb.summarise(df, lb.read_papers(folder.parent))
    shown = []
    for _, r in s.iterrows():
        rec = {"method": r["method"], "dataset": r["dataset"]}
        if r.get("runs", 0) == 0:
            shown.append({**rec, "status": r.get("status")})
            continue
        for m in ("war", "uar"):
            rec[m.upper()] = lb._fmt(r[m], r[f"{m}_std"])
            rec[f"paper {m.upper()}"] = lb.paper_cell(r, m)
            rec[f"Δ {m.upper()}"] = lb.diff_cell(r, m)
        rec.update(runs=r["runs"], protocol=r["protocol"], notes=lb._text(r.get("notes")))
        if lb._text(r.get("test_gap_war")):
            rec["test-selected WAR (gap)"] = f"{r['best_test_war']:.2f} (+{r['test_gap_war']:.2f})"
        shown.append(rec)
    _print_frame(pd.DataFrame(shown), f"{folder.name} {df.attrs['version']} (%, mean ± std over seeds and folds)")
    print(lb.legend(), end="")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.status or args.collect:
        if args.suite:
            raise UserError("--status / --collect RUN_DIR take no suite file")
        return show_status(Path(args.status)) if args.status else collect_run(Path(args.collect))
    if not args.suite:
        raise UserError("fer-bench bench: give a suite file (e.g. benchmarks/static.yaml), or --status / --collect RUN_DIR")
    if args.dry_run and args.launcher != "slurm":
        raise UserError("--dry-run writes the SLURM script: give it with --launcher slurm")
    if args.parallel > 1 and args.launcher != "none":
        raise UserError(f"--parallel {args.parallel}: with --launcher {args.launcher} the array parallelism is "
                        "--array-parallelism")
    from fer_bench.bench.runner import run_suite
    from fer_bench.bench.suite import apply_overrides, load_suite

    suite = load_suite(args.suite)
    if args.override:
        suite.jobs = apply_overrides(suite.jobs, dict(args.override))
    speed = given_settings(args, ("speed",))
    if args.seeds is not None:
        known = sorted({j.seed for j in suite.jobs})
        suite.jobs = [j for j in suite.jobs if j.seed in args.seeds]
        if not suite.jobs:
            raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: expected seeds of {args.suite} "
                            f"({', '.join(map(str, known))})")
    from fer_bench.settings import SlurmSettings

    launch = SlurmSettings(**{**suite.launcher, **given_settings(args, ("slurm",))})
    path = run_suite(suite, data_root=args.data_root, devices=args.devices, num_nodes=args.num_nodes,
                     accelerator=args.accelerator, only=args.only, resume=args.resume, run_dir=args.run_dir,
                     leaderboards=args.leaderboards, logger=args.logger, progress=args.progress, speed=speed,
                     paper_init=args.paper_init, parallel=args.parallel, launcher=args.launcher, slurm=launch,
                     dry_run=args.dry_run)
    if path is not None:
        show_summary(path.parent, path.stem)
    return 0


def show_status(run_dir: Path) -> int:
    """``fer-bench bench --status RUN_DIR``: each job done / failed / running / pending, with its attempts."""
    import json

    import pandas as pd

    from fer_bench.bench.runfolder import RunFolder

    rf = RunFolder(run_dir)
    recs = rf.status()
    df = pd.DataFrame(recs)[["method", "dataset", "fold", "seed", "state", "attempts", "worker", "detail"]]
    df["fold"] = df["fold"].map(lambda f: "" if f is None or pd.isna(f) else str(int(f)))
    _print_frame(df, f"{run_dir}")
    counts = df.state.value_counts()
    print(", ".join(f"{state} {int(counts.get(state, 0))}" for state in ("done", "failed", "running", "pending"))
          + f" (of {len(df)})")
    submitted = run_dir / "slurm" / "submitted.json"
    if submitted.exists():
        info = json.loads(submitted.read_text())
        print(f"SLURM array job {info['array_job_id']} ({info['tasks']} tasks, submitted {info['submitted_at']}): "
              f"squeue -j {info['array_job_id']}; logs under {submitted.parent}")
    if rf.published():
        print(f"published: {rf.published()}")
    return 0


def collect_run(run_dir: Path) -> int:
    from fer_bench.bench.publish import collect

    path = collect(run_dir)
    if path is not None:
        show_summary(path.parent, path.stem)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    show_summary(Path(args.leaderboards) / args.suite, args.version)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from fer_bench.bench import leaderboard as lb

    d = lb.diff(Path(args.leaderboards) / args.suite, args.va, args.vb)
    _print_frame(d, f"{args.suite}: {args.vb} − {args.va} (percentage points; beyond = |Δ| > seed std)")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from fer_bench.bench import leaderboard as lb

    folder = Path(args.leaderboards) / args.suite
    out = Path(args.out) if args.out else folder / "plot.png"
    check_out_folder(out.parent, "--out" if args.out else "--leaderboards")
    lb.plot(folder, out, args.version)
    print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from fer_bench.bench import leaderboard as lb
    from fer_bench.bench.compare import compare

    df = lb.read_version(Path(args.leaderboards) / args.suite, args.version)
    recs = compare(df, args.method_a, args.method_b, dataset=args.dataset, resamples=args.resamples)
    cols = ["dataset", "pairs", "war_a", "war_b", "diff_war", "war_ci_low", "war_ci_high", "verdict_war",
            "uar_a", "uar_b", "diff_uar", "uar_ci_low", "uar_ci_high", "verdict_uar"]
    _print_frame(pd.DataFrame(recs)[cols], f"{args.suite} {df.attrs['version']}: {args.method_a} (A) − "
                 f"{args.method_b} (B), %, paired bootstrap over test samples within each seed, then over seeds "
                 f"(95 %, {args.resamples} resamples)")
    for r in recs:
        print(f"{r['dataset']}: WAR {r['verdict_war']} ({r['diff_war']:+.2f} [{r['war_ci_low']:+.2f}, "
              f"{r['war_ci_high']:+.2f}]); UAR {r['verdict_uar']} ({r['diff_uar']:+.2f} [{r['uar_ci_low']:+.2f}, "
              f"{r['uar_ci_high']:+.2f}])")
        if r.get("note"):  # an external model: how it was paired
            print(f"  {r['note']}")
    return 0


def cmd_page(args: argparse.Namespace) -> int:
    from fer_bench.bench.page import write_page

    print(f"wrote {write_page(Path(args.leaderboards) / args.suite, args.suite, args.version)}")
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    from fer_bench.bench import leaderboard as lb

    check_out_folder(args.leaderboards, "--leaderboards")
    print(f"wrote {lb.write_papers_csv(Path(args.leaderboards))}")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    import pandas as pd

    from fer_bench.bench import leaderboard as lb
    from fer_bench.bench.plan import check_only
    from fer_bench.bench.regress import read_baseline, regress_compare, select_cells
    from fer_bench.bench.runner import run_suite
    from fer_bench.bench.suite import load_suite

    suite = load_suite(args.suite)
    check_only(suite, args.only)
    baseline_path = Path(args.baseline)
    old = None  # the baseline, where it is read, is read and checked before anything runs
    if not args.write_baseline:
        old = read_baseline(baseline_path)
    else:
        check_out_folder(baseline_path.parent, "--baseline")
        if args.only and baseline_path.exists():
            old = read_baseline(baseline_path, ("method", "dataset"))
    with tempfile.TemporaryDirectory(prefix="fer-regress-") as tmp:
        path = run_suite(suite, leaderboards=Path(tmp) / "leaderboards", run_dir=str(Path(tmp) / "run"),
                         progress=False, only=args.only, paper_init="never")
        current = pd.read_csv(path)
        if args.write_baseline:
            kept = 0
            if old is not None:  # --only: replace the selected cells' rows, keep the others'
                others = old.drop(select_cells(old, args.only).index)
                kept = len(others)
                current = pd.concat([others, current], ignore_index=True)
            atomic_write_text(baseline_path, current.to_csv(index=False))
            print(f"wrote {baseline_path} ({len(current)} rows" + (f"; {kept} of other cells kept)" if kept else ")"))
            return 0
    baseline = select_cells(old, args.only)
    problems = regress_compare(current, baseline)
    _print_frame(lb.summarise(current)[["method", "dataset", "war", "war_std", "uar", "uar_std", "runs"]],
                 "regression run (%)")
    if problems:
        print("REGRESSION in " + str(len(problems)) + " cell(s):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"regress: {current[['method', 'dataset']].drop_duplicates().shape[0]} cells within tolerance of {baseline_path}")
    return 0


def add_bench_commands(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark suite and publish a leaderboard version")
    p.add_argument("suite", nargs="?", help="suite YAML, e.g. benchmarks/static.yaml")
    p.add_argument("--data-root", help="folder holding <dataset>/ trees (default $FER_DATA)")
    add_setting_args(p, ("launch",), exclude=("root", "out"))
    speed = p.add_argument_group("speed settings for every job (over the suite's; outside the config hash)")
    add_setting_args(speed, ("speed",), defaults_none=True)
    p.add_argument("--only", nargs="+", metavar="METHOD/DATASET", help="run only these cells (globs allowed)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="run only these of the suite's seeds (a reduced check; give the same to --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish the jobs of an interrupted run")
    p.add_argument("--run-dir", help="run folder (give the same one to every torchrun/SLURM rank)")
    p.add_argument("--leaderboards", default="leaderboards")
    p.add_argument("--paper-init", default="if-available", choices=["if-available", "required", "never"],
                   help="cells whose recipe pre-trains: use the weights under $FER_WEIGHTS when there; when not, "
                        "run from scratch with the deviation recorded (if-available) or skip the cell (required); "
                        "never: always from scratch (what regress uses)")
    p.add_argument("-o", "--override", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="override every job, e.g. -o max_epochs=1 -o limit_per_class=4 -o data_args.frames=4")
    runs = p.add_argument_group("where the jobs run (see README, Running on a cluster)")
    runs.add_argument("--parallel", type=at_least(1), default=1, metavar="N",
                      help="N jobs at once on this machine, each in its own process on its own GPUs / cores")
    runs.add_argument("--launcher", default="none", choices=["none", "slurm", "submitit-local"],
                      help="slurm: submit the unfinished jobs as one SLURM array job through submitit; "
                           "submitit-local: the same array on this machine (submitit's LocalExecutor)")
    runs.add_argument("--dry-run", action="store_true", help="with --launcher slurm: write and print the script only")
    slurm = p.add_argument_group("SLURM resources (default: the suite's launcher: section, else the value shown "
                                 "in fer_bench.settings.SlurmSettings)")
    add_setting_args(slurm, ("slurm",), exclude=("setup",), defaults_none=True)
    runs.add_argument("--status", metavar="RUN_DIR", help="show each job of a run: done / failed / running / pending")
    runs.add_argument("--collect", metavar="RUN_DIR",
                      help="publish a run's leaderboard version by hand (once; a partial one while jobs are left)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("leaderboard", help="show, diff or plot leaderboard versions")
    lsub = p.add_subparsers(dest="lb_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--leaderboards", default="leaderboards")
    per_suite = argparse.ArgumentParser(add_help=False, parents=[common])
    per_suite.add_argument("suite")
    s = lsub.add_parser("show", parents=[per_suite])
    s.add_argument("--version")
    s.set_defaults(func=cmd_show)
    s = lsub.add_parser("diff", parents=[per_suite])
    s.add_argument("va")
    s.add_argument("vb")
    s.set_defaults(func=cmd_diff)
    s = lsub.add_parser("plot", parents=[per_suite])
    s.add_argument("--version")
    s.add_argument("--out")
    s.set_defaults(func=cmd_plot)
    s = lsub.add_parser("compare", parents=[per_suite], help="is method A's difference from method B real? "
                        "(paired bootstrap on the kept test predictions)")
    s.add_argument("method_a")
    s.add_argument("method_b")
    s.add_argument("--dataset")
    s.add_argument("--version")
    s.add_argument("--resamples", type=at_least(1), default=1000, metavar="N")
    s.set_defaults(func=cmd_compare)
    s = lsub.add_parser("page", parents=[per_suite], help="write leaderboards/<suite>/index.html (self-contained)")
    s.add_argument("--version")
    s.set_defaults(func=cmd_page)
    s = lsub.add_parser("papers", parents=[common], help="regenerate leaderboards/papers.csv from the methods' metadata")
    s.set_defaults(func=cmd_papers)

    p = sub.add_parser("regress", help="run the smoke suite and compare with the committed baseline")
    p.add_argument("--suite", default="benchmarks/smoke.yaml")
    p.add_argument("--baseline", default="leaderboards/smoke/baseline.csv")
    p.add_argument("--only", nargs="+", metavar="METHOD/DATASET",
                   help="run and compare only these cells (globs allowed); with --write-baseline, replace only their "
                        "rows of the baseline (a new or changed cell without rerunning the others)")
    p.add_argument("--write-baseline", action="store_true", help="write the run as the baseline instead of comparing")
    p.set_defaults(func=cmd_regress)
