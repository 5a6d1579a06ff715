"""``fer-bench data check`` and ``fer-bench data synth``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fer_bench.cli.flags import at_least, check_data_args
from fer_bench.errors import DataFormatError, UserError, check_out_folder


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0: the folder is as distributed; 1: the check found problem files or a broken layout (a
    malformed label file); 2: it could not check (no such folder, an unknown name, a bad argument)."""
    from fer_bench.data.check import check_dataset

    check_data_args(args.name, dict(args.data_arg))  # the name and -d first
    if not Path(args.root).exists():
        raise UserError(f"--root {args.root}: expected the folder of {args.name} as distributed, found no such "
                        "file or folder")
    try:
        report = check_dataset(args.name, args.root, args.fold, decode=not args.no_decode, **dict(args.data_arg))
    except DataFormatError as e:
        if args.json:
            print(json.dumps({"dataset": args.name, "root": args.root, "error": str(e)}, indent=2))
        print(f"fer-bench data check: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        counts = report["counts"]
        classes = list(next(iter(counts.values())))
        t = Table(title=f"{args.name} at {args.root}" + (f", fold {args.fold}" if args.fold is not None else ""))
        t.add_column("split")
        for c in classes:
            t.add_column(c, justify="right")
        t.add_column("total", justify="right")
        for split, row in counts.items():
            t.add_row(split, *(str(row[c]) for c in classes), str(sum(row.values())))
        Console().print(t)
        for p in report["problems"]:
            print(f"{p['problem']}: {p['file']} ({p['detail']})")
        print(f"{len(report['problems'])} problem file(s)")
    return 1 if report["problems"] else 0


def cmd_synth(args: argparse.Namespace) -> int:
    from fer_bench.synth import write_layout

    check_out_folder(args.root, "--root")
    write_layout(args.name, args.root, per_class=args.per_class, seed=args.seed, **dict(args.data_arg))
    print(f"wrote synthetic {args.name} layout under {args.root}")
    return 0


def add_data_commands(sub) -> None:
    from fer_bench.cli.flags import key_value as _kv

    p = sub.add_parser("data", help="check a dataset folder or write a synthetic one")
    dsub = p.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="validate a dataset folder and count it")
    c.add_argument("name")
    c.add_argument("--root", required=True)
    c.add_argument("--fold", type=int)
    c.add_argument("--json", action="store_true")
    c.add_argument("--no-decode", action="store_true", help="count only; do not decode every file")
    c.add_argument("-d", "--data-arg", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=cmd_check)
    s = dsub.add_parser("synth", help="write synthetic faces in a dataset's on-disk layout")
    s.add_argument("name")
    s.add_argument("--root", required=True)
    s.add_argument("--per-class", type=at_least(1), default=10)
    s.add_argument("--seed", type=at_least(0), default=0)
    s.add_argument("-d", "--data-arg", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=cmd_synth)
