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
import re
import sys
from collections.abc import Sequence

#: argparse's own messages, reworded to say what was expected (:meth:`Parser.error`)
_ARGPARSE_MESSAGES = (
    (re.compile(r"invalid choice: (?P<got>.+) \(choose from (?P<choices>.+)\)$"),
     "expected one of {choices}, got {got}"),
    (re.compile(r"invalid (?P<type>\w+) value: (?P<got>.+)$"), "expected {type}, got {got}"),
    (re.compile(r"^the following arguments are required: (?P<names>.+)$"), "expected {names} (required)"),
    (re.compile(r"^one of the arguments (?P<names>.+) is required$"), "expected one of {names} (required)"),
    (re.compile(r"^unrecognized arguments: (?P<got>.+)$"), "unrecognized arguments {got}: expected only the "
                                                           "arguments of the command"),
    (re.compile(r"^ambiguous option: (?P<got>\S+) could match (?P<names>.+)$"), "ambiguous option {got}: expected "
                                                                                "one of {names} in full"),
)
_TYPE_NAMES = {"int": "an integer", "float": "a number"}


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``prog: error: message``), exit 2; argparse's
    own messages (an invalid choice or number, a missing or unknown argument) say what was expected."""

    def error(self, message: str):  # type: ignore[override]
        for pattern, template in _ARGPARSE_MESSAGES:
            m = pattern.search(message)
            if m:
                parts = m.groupdict()
                if "type" in parts:
                    parts["type"] = _TYPE_NAMES.get(parts["type"], f"a {parts['type']}")
                message = message[:m.start()] + template.format(**parts)
                break
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    from fer_bench.cli.bench import add_bench_commands
    from fer_bench.cli.data import add_data_commands
    from fer_bench.cli.new import add_new_commands
    from fer_bench.cli.predict import add_predict_commands
    from fer_bench.cli.run import add_run_commands
    from fer_bench.cli.score import add_score_commands

    parser = Parser(prog="fer-bench", description="Facial expression recognition benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_commands(sub)
    add_bench_commands(sub)
    add_data_commands(sub)
    add_new_commands(sub)
    add_score_commands(sub)
    add_predict_commands(sub)
    _add_import_flag(parser)
    return parser


def _add_import_flag(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable) on every command: user code that registers methods or
    datasets (:func:`fer_bench.registry.import_modules`), imported before the command runs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                _add_import_flag(child)
            return
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable): a dotted module name, a .py file or a package "
                             "folder that registers methods or datasets (installed plugins need nothing: their "
                             "entry points in fer_bench.methods / fer_bench.datasets are found)")


def main(argv: Sequence[str] | None = None) -> int:
    from fer_bench.errors import UserError
    from fer_bench.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    try:
        if args.imports:
            from fer_bench.registry import import_modules

            import_modules(args.imports)
        return int(args.func(args) or 0)
    except (UnknownNameError, UserError) as e:
        print(f"fer-bench: error: {e}", file=sys.stderr)
        return 2
    except NotImplementedError as e:  # a hook of one's own method or dataset not yet written (fer-bench new)
        print(f"fer-bench: error: not implemented: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
