"""``fer-bench bench``, ``fer-bench leaderboard ...`` and ``fer-bench regress``."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from fer_bench.errors import UserError
from fer_bench.files import atomic_write_text


def _print_frame(df: pd.DataFrame, title: str) -> None:
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
    from fer_bench.bench import leaderboard as lb

    df = lb.read_version(folder, version)
    s = lb.summarise(df)
    cols = [c for c in ("method", "dataset", "war", "war_std", "paper_war", "diff_war", "uar", "uar_std",
                        "paper_uar", "diff_uar", "runs", "protocol", "status") if c in s.columns]
    _print_frame(s[cols], f"{folder.name} {df.attrs['version']} (%, mean ± std over seeds and folds)")


def cmd_bench(args: argparse.Namespace) -> int:
    from fer_bench.bench.runner import run_suite
    from fer_bench.bench.suite import apply_overrides, load_suite

    suite = load_suite(args.suite)
    if args.override:
        suite.jobs = apply_overrides(suite.jobs, dict(args.override))
    if args.seeds is not None:
        known = sorted({j.seed for j in suite.jobs})
        suite.jobs = [j for j in suite.jobs if j.seed in args.seeds]
        if not suite.jobs:
            raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: {args.suite} has seeds {known}")
    path = run_suite(suite, data_root=args.data_root, devices=args.devices, num_nodes=args.num_nodes,
                     accelerator=args.accelerator, only=args.only, resume=args.resume, run_dir=args.run_dir,
                     leaderboards=args.leaderboards, logger=args.logger, progress=not args.no_progress)
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
    lb.plot(folder, out, args.version)
    print(f"wrote {out}")
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    from fer_bench.bench import leaderboard as lb

    print(f"wrote {lb.write_papers_csv(Path(args.leaderboards))}")
    return 0


def regress_compare(current: pd.DataFrame, baseline: pd.DataFrame, z: float = 3.0,
                    min_tol: float = 0.03) -> list[str]:
    """Cells whose mean WAR or UAR dropped below the baseline's by more than the tolerance.

    The tolerance comes from the seed spread recorded in the baseline.  For a cell with
    ``n_b`` baseline seeds and ``n_c`` current seeds, the standard error of the difference of
    the two means is ``s * sqrt(1/n_b + 1/n_c)``; a drop beyond ``z`` (3) of those is flagged
    (a one-sided false alarm of about 0.1 % per cell and metric when the spread is normal).
    ``s`` is the larger of the cell's own std over seeds and the std pooled over every
    baseline cell (the root of the mean variance), so that a cell whose few seeds happened to
    agree does not get a tolerance of zero; ``min_tol`` (3 points) is the floor.  All values
    are fractions.  A baseline cell missing from the current run, or failed, is a regression too.
    """
    problems = []
    base_ok = baseline[baseline["status"] == "ok"]
    cur_ok = current[current["status"] == "ok"]
    groups = base_ok.groupby(["method", "dataset"])
    pooled = {}
    for metric in ("war", "uar"):
        var = groups[metric].var(ddof=1).dropna()
        pooled[metric] = float(var.mean() ** 0.5) if len(var) else 0.0
    for (m, d), g in groups:
        c = cur_ok[(cur_ok["method"] == m) & (cur_ok["dataset"] == d)]
        if c.empty:
            problems.append(f"{m}/{d}: no successful run (baseline has {len(g)})")
            continue
        for metric in ("war", "uar"):
            base_mean, cur_mean = g[metric].mean(), c[metric].mean()
            own = g[metric].std(ddof=1) if len(g) > 1 else 0.0
            spread = max(0.0 if pd.isna(own) else float(own), pooled[metric])
            tol = max(z * spread * (1 / len(g) + 1 / len(c)) ** 0.5, min_tol)
            if cur_mean < base_mean - tol:
                problems.append(f"{m}/{d}: {metric.upper()} {100 * cur_mean:.2f} < baseline {100 * base_mean:.2f}"
                                f" − tolerance {100 * tol:.2f}")
    return problems


def cmd_regress(args: argparse.Namespace) -> int:
    from fer_bench.bench import leaderboard as lb
    from fer_bench.bench.runner import run_suite
    from fer_bench.bench.suite import load_suite

    suite = load_suite(args.suite)
    baseline_path = Path(args.baseline)
    with tempfile.TemporaryDirectory(prefix="fer-regress-") as tmp:
        path = run_suite(suite, leaderboards=Path(tmp) / "leaderboards", run_dir=str(Path(tmp) / "run"),
                         progress=False, only=args.only)
        current = pd.read_csv(path)
        if args.write_baseline:
            atomic_write_text(baseline_path, current.to_csv(index=False))
            print(f"wrote {baseline_path} ({len(current)} rows)")
            return 0
    if not baseline_path.exists():
        print(f"fer-bench regress: {baseline_path} does not exist (create it with --write-baseline)", file=sys.stderr)
        return 2
    baseline = pd.read_csv(baseline_path)
    if args.only:
        import fnmatch

        keep = [any(fnmatch.fnmatch(f"{m}/{d}", p) for p in args.only) for m, d in zip(baseline["method"], baseline["dataset"])]
        baseline = baseline[keep]
    problems = regress_compare(current, baseline)
    _print_frame(lb.summarise(current)[["method", "dataset", "war", "war_std", "uar", "uar_std", "runs"]],
                 "regression run (%)")
    if problems:
        print("REGRESSION in " + str(len(problems)) + " cell(s):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"regress: {current[['method', 'dataset']].drop_duplicates().shape[0]} cells within tolerance of {baseline_path}")
    return 0


def add_bench_commands(sub) -> None:
    from fer_bench.cli import _kv

    p = sub.add_parser("bench", help="run a benchmark suite and publish a leaderboard version")
    p.add_argument("suite", help="suite YAML, e.g. benchmarks/static.yaml")
    p.add_argument("--data-root", help="folder holding <dataset>/ trees (default $FER_DATA)")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    p.add_argument("--only", nargs="+", metavar="METHOD/DATASET", help="run only these cells (globs allowed)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="run only these of the suite's seeds (a reduced check; give the same to --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish the jobs of an interrupted run")
    p.add_argument("--run-dir", help="run folder (give the same one to every torchrun/SLURM rank)")
    p.add_argument("--leaderboards", default="leaderboards")
    p.add_argument("--logger", default="csv", choices=["csv", "wandb"])
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--override", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="override every job, e.g. -o max_epochs=1 -o limit_per_class=4 -o data_args.frames=4")
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
    s = lsub.add_parser("papers", parents=[common], help="regenerate leaderboards/papers.csv from the methods' metadata")
    s.set_defaults(func=cmd_papers)

    p = sub.add_parser("regress", help="run the smoke suite and compare with the committed baseline")
    p.add_argument("--suite", default="benchmarks/smoke.yaml")
    p.add_argument("--baseline", default="leaderboards/smoke/baseline.csv")
    p.add_argument("--only", nargs="+")
    p.add_argument("--write-baseline", action="store_true")
    p.set_defaults(func=cmd_regress)
