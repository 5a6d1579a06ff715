"""``fer-bench new method NAME`` / ``fer-bench new dataset NAME``: the skeleton of one's own
method (module + metafile) or dataset (reader + synthetic writer) in a folder
(:mod:`fer_bench.skeletons`)."""
from __future__ import annotations

import argparse


def cmd_new(args: argparse.Namespace) -> int:
    from fer_bench.skeletons import MARK, write_skeleton

    files = write_skeleton(args.kind, args.name, args.out, force=args.force)
    module = files[0]
    print(f"wrote {', '.join(str(f) for f in files)}")
    print(f"fill in what is marked {MARK!r}, then:")
    if args.kind == "method":
        print(f"  fer-bench train --import {module} --method {args.name} --dataset synthetic-static --max-epochs 1")
    else:
        print(f"  fer-bench data synth {args.name} --root /tmp/{args.name} --import {module}")
        print(f"  fer-bench data check {args.name} --root /tmp/{args.name} --import {module}")
    return 0


def add_new_commands(sub) -> None:
    p = sub.add_parser("new", help="write the skeleton of a new method or dataset (code outside fer_bench)")
    p.add_argument("kind", choices=("method", "dataset"))
    p.add_argument("name", help="the registered name, a lower-case identifier (e.g. my_method)")
    p.add_argument("--out", default=".", help="folder to write into (default: the current folder)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.set_defaults(func=cmd_new)
