"""``fer-bench list`` and ``fer-bench train``: the catalogue and one run."""
from __future__ import annotations

import argparse
import json
from typing import Any

from fer_bench.cli.flags import add_setting_args, at_least, check_data_args, config_from_args, key_value
from fer_bench.errors import check_out_folder


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """Every registered method and dataset, as ``fer-bench list --json`` prints them."""
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS
    from fer_bench.nn.complexity import complexity

    methods = []
    for name, cls in METHODS.items():
        model = cls.from_defaults()
        cost = complexity(model)
        meta = cls.metafile().as_dict()  # citation, kind, every reported number with its protocol, recipe, fidelity
        methods.append({
            "name": name,
            "source": METHODS.source(name),  # built-in, an installed entry point, --import or a module
            "modality": cls.modality,
            **{k: v for k, v in meta.items() if k != "method"},
            "metafile": str(cls.metafile().path),
            "input": f"{model.in_chans}x{model.input_size}x{model.input_size}",
            "params": cost["params"],
            "macs": cost["macs"],  # multiply-accumulates of one forward at the method's input size
        })
    datasets = [
        {"name": name, "source": DATASETS.source(name), "modality": cls.info.modality, "classes": list(cls.classes),
         "protocol": cls.info.protocol}
        for name, cls in DATASETS.items()
    ]
    return {"methods": methods, "datasets": datasets}


def print_recipe(method: str) -> None:
    """``fer-bench list --recipe METHOD``: every recipe field with its status and source."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fer_bench.methods import METHODS

    meta = METHODS.get(method).metafile()
    recipe = meta.recipe
    console = Console() if Console().is_terminal else Console(width=200)

    def show(title: str, items: dict) -> None:
        t = Table(title=escape(title))
        for col in ("field", "value", "status", "source"):
            t.add_column(col, overflow="fold")
        for k, item in items.items():
            source = item.source + (f" (fer_bench: {item.ours})" if item.ours else "")
            t.add_row(k, escape(str(item.value)), item.status, escape(source))
        console.print(t)

    show(f"{method}: recipe ({meta.path})", recipe.fields)
    for dataset, fields in recipe.datasets.items():
        show(f"{method}: recipe on {dataset}", fields)
    for rep in meta.reported:
        numbers = ", ".join(f"{k.upper()} {v}" for k, v in rep.values.items())
        kind = f"anchor by {rep.by}" if meta.kind == "baseline" else "reported"
        show(f"{method}: {kind} on {rep.dataset}: {numbers} ({rep.source}); its protocol", rep.protocol)


def cmd_list(args: argparse.Namespace) -> int:
    if args.recipe and not args.json:
        print_recipe(args.recipe)
        return 0
    cat = catalogue()
    if args.recipe:
        cat = {"methods": [m for m in cat["methods"] if m["name"] == args.recipe]}
        if not cat["methods"]:
            from fer_bench.methods import METHODS

            METHODS.get(args.recipe)  # unknown name: the registry's error lists the valid ones
    if args.json:
        print(json.dumps(cat, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # pipes and logs: do not fold names into 80 columns
        console = Console(width=200)
    t = Table(title="methods")
    for col in ("name", "kind", "modality", "input", "params", "MACs", "reported (%)", "citation", "source"):
        t.add_column(col, overflow="fold")
    for m in cat["methods"]:
        rep = "; ".join(f"{r['dataset']}" + (f"-{r['classes']}" if r["classes"] else "") + ": "
                        + ", ".join(f"{k.upper()} {r[k]}" for k in ("war", "uar") if k in r)
                        + (f" ({r['by']})" if r["by"] else "") for r in m["reported"])
        cite = m["citation"] + (" [reconstruction]" if m["reconstructed"] else "")
        t.add_row(m["name"], m["kind"], m["modality"], m["input"], f"{m['params'] / 1e6:.2f}M",
                  f"{m['macs'] / 1e9:.3f}G", rep or "-", cite, m["source"])
    console.print(t)
    t = Table(title="datasets")
    for col in ("name", "modality", "classes", "protocol", "source"):
        t.add_column(col, overflow="fold")
    for d in cat["datasets"]:
        t.add_row(d["name"], d["modality"], ", ".join(d["classes"]), d["protocol"], d["source"])
    console.print(t)
    return 0


def print_scores(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{result['method']} on {result['dataset']} (test, checkpoint of epoch {result['best_epoch']}"
                    f" chosen on {result['selection']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("WAR", f"{100 * result['war']:.2f}")
    t.add_row("UAR", f"{100 * result['uar']:.2f}")
    for c, r in result["per_class_recall"].items():
        t.add_row(f"recall {c}", "n/a (no samples)" if r is None else f"{100 * r:.2f}")
    t.add_row("n train / val / test", f"{result['n_train']} / {result['n_val']} / {result['n_test']}")
    Console().print(t)


def cmd_train(args: argparse.Namespace) -> int:
    from fer_bench.train import run
    from fer_bench.validation import validate

    cfg = config_from_args(args)
    validate(cfg)  # names, types and hyper-parameters: before any data is read
    check_out_folder(cfg.out_dir())
    result = run(cfg)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        print_scores(result)
        print(f"wrote {cfg.out_dir() / 'metrics.json'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fer_bench.transfer import evaluate

    if args.out:
        check_out_folder(args.out)
    data_args = dict(args.data_arg or [])
    check_data_args(args.dataset, data_args, ("root", "fold", "batch_size", "seed", "input_size", "in_chans"))
    res = evaluate(args.checkpoint, args.dataset, args.root, method=args.method, out=args.out, fold=args.fold,
                   data_args=data_args, batch_size=args.batch_size)
    excl = res["excluded_dataset_classes"] + [f"{c} (model only)" for c in res["excluded_model_classes"]]
    print(f"{res['method']} on {args.dataset} (test): WAR {100 * res['war']:.2f} UAR {100 * res['uar']:.2f} over "
          f"{res['n_test']} samples of the shared classes {', '.join(res['classes'])}; excluded: "
          f"{', '.join(excl) or 'none'} ({res['n_excluded']} samples)")
    if args.out:
        print(f"wrote {args.out}/metrics.json")
    return 0


def add_run_commands(sub) -> None:
    p = sub.add_parser("list", help="registered methods and datasets")
    p.add_argument("--json", action="store_true")
    p.add_argument("--recipe", metavar="METHOD", help="the method's training recipe, each field published or "
                   "reconstructed with its source")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("train", help="train one method on one dataset")
    add_setting_args(p, ("job", "protocol", "run", "speed", "launch"), required=("method", "dataset"))
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="evaluate a trained checkpoint on another dataset's test split (cross-dataset)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by fer-bench train / bench")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", help="dataset folder as distributed")
    p.add_argument("--fold", type=int)
    p.add_argument("--method", help="the checkpoint's method (default: recorded in the checkpoint)")
    p.add_argument("--batch-size", type=at_least(1), default=64)
    p.add_argument("--out", help="folder for metrics.json and predictions.npz")
    p.add_argument("-d", "--data-arg", type=key_value, action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_eval)
