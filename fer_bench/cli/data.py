"""``fer-bench data check`` and ``fer-bench data synth``."""
from __future__ import annotations

import argparse
import json
import sys

from fer_bench.errors import DataFormatError


def cmd_check(args: argparse.Namespace) -> int:
    from fer_bench.data.check import check_dataset

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
    s.add_argument("--per-class", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-d", "--data-arg", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=cmd_synth)
