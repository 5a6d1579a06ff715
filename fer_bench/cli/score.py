"""``fer-bench score``: predictions made by another codebase, scored on a dataset's test split."""
from __future__ import annotations

import argparse
import json
from typing import Any


def print_scores(result: dict[str, Any]) -> None:
    """WAR, UAR and per-class recall with the bootstrap intervals, and ECE / NLL when given
    (the table of ``fer-bench train``)."""
    from rich.console import Console
    from rich.table import Table

    fold = f", fold {result['fold']}" if result.get("fold") is not None else ""
    t = Table(title=f"{result['input']} on {result['dataset']}{fold} (test, external {result['input_kind']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("95 % interval", justify="right")
    for key, name in (("war", "WAR"), ("uar", "UAR")):
        ci = (f"[{100 * result[f'{key}_ci_low']:.2f}, {100 * result[f'{key}_ci_high']:.2f}]"
              if f"{key}_ci_low" in result else "")
        t.add_row(name, f"{100 * result[key]:.2f}", ci)
    for c, r in result["per_class_recall"].items():
        t.add_row(f"recall {c}", "n/a (no samples)" if r is None else f"{100 * r:.2f}", "")
    if "ece" in result:
        t.add_row("ECE (15 bins)", f"{100 * result['ece']:.2f}", "")
        t.add_row("NLL", f"{result['nll']:.4f}", "")
    t.add_row("n test", str(result["n_test"]), "")
    console = Console()
    if not console.is_terminal:  # pipes and logs: do not fold paths into 80 columns
        console = Console(width=200)
    console.print(t)


def cmd_score(args: argparse.Namespace) -> int:
    from fer_bench.errors import check_out_folder
    from fer_bench.score import score_predictions

    if args.out:
        check_out_folder(args.out)
    res = score_predictions(args.dataset, args.root, args.predictions, fold=args.fold,
                            data_args=dict(args.data_arg or []), out=args.out)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print_scores(res)
    if args.out:
        print(f"wrote {args.out}/metrics.json")
    return 0


def add_score_commands(sub) -> None:
    from fer_bench.cli.flags import key_value

    p = sub.add_parser(
        "score", help="score predictions made elsewhere on a dataset's test split (WAR, UAR, recall, intervals)",
        description="Score a csv (id + label/pred, or id + one probability column per class) or npz (a run's "
                    "predictions.npz, or ids + preds and/or probs) of per-sample predictions on the test split of "
                    "DATASET, keyed by the sample ids of a run's predictions.npz. Every test sample needs exactly one "
                    "row; anything else is refused before scoring (exit 2).")
    p.add_argument("predictions", metavar="PREDICTIONS", help="the csv or npz file of predictions")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", help="dataset folder as distributed")
    p.add_argument("--fold", type=int)
    p.add_argument("-d", "--data-arg", type=key_value, action="append", metavar="KEY=VALUE",
                   help="a dataset protocol argument, as for train (-d classes=8)")
    p.add_argument("--out", metavar="DIR", help="folder for metrics.json and predictions.npz (a run's layout)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_score)
