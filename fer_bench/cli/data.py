"""``fer-bench data check`` and ``fer-bench data synth``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fer_bench.errors import DataFormatError, UnreadableSample, UserError


def check_dataset(name: str, root: str | None, fold: int | None = None, decode: bool = True,
                  **data_args: Any) -> dict[str, Any]:
    """Counts per split and class, and every problem file, of a dataset folder.

    Raises :class:`DataFormatError` when the layout itself is wrong (missing label file,
    wrong columns, label out of range): nothing can be counted then.
    """
    from fer_bench.data import DATASETS

    dm = DATASETS.get(name)(root, fold=fold, **data_args)
    dm.setup()
    counts: dict[str, dict[str, int]] = {}
    problems: list[dict[str, str]] = []
    seen_bases: set[int] = set()
    for split, ds in dm.splits.items():
        labels = ds.labels
        counts[split] = {c: int((labels == k).sum()) for k, c in enumerate(dm.classes)}
        if not decode or id(ds.base) in seen_bases:
            continue
        seen_bases.add(id(ds.base))
        for pos in range(len(ds.base)):
            try:
                ds.base[pos]
            except UnreadableSample as e:
                kind = "missing" if "missing" in e.reason else "zero-byte" if "0 bytes" in e.reason else "unreadable"
                problems.append({"split": split, "file": e.path, "problem": kind, "detail": e.reason})
    return {"dataset": name, "root": root, "fold": fold, "counts": counts, "problems": problems}


def cmd_check(args: argparse.Namespace) -> int:
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
    from fer_bench.settings import key_value as _kv

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
