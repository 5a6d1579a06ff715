"""``fer-bench`` command line: list, train, bench, leaderboard, regress, data.

One module per group of commands (:mod:`.run`: list and train; :mod:`.bench`: bench,
leaderboard and regress; :mod:`.data`: data check and synth), each adding its sub-commands
to the parser built here.  They import only :mod:`fer_bench.settings` and the standard
library at the top; the heavy libraries (torch, Lightning, pandas) load inside the command
that needs them, so ``fer-bench --help`` and the leaderboard commands start fast.

Errors reach the user as one line and exit status 2: a bad flag value (argparse, checked by
:mod:`fer_bench.settings`) or a :class:`~fer_bench.errors.UserError` raised before any data
is read (an unknown name, a mistyped suite key, a method hyper-parameter of the wrong type).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``prog: error: message``), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    from fer_bench.cli.bench import add_bench_commands
    from fer_bench.cli.data import add_data_commands
    from fer_bench.cli.run import add_run_commands

    parser = Parser(prog="fer-bench", description="Facial expression recognition benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_commands(sub)
    add_bench_commands(sub)
    add_data_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from fer_bench.errors import UserError
    from fer_bench.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UnknownNameError, UserError) as e:
        print(f"fer-bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
