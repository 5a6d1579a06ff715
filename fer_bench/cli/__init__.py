"""``fer-bench`` command line: list, train, bench, leaderboard, data."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import yaml


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.replace("-", "_"), yaml.safe_load(v)


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """Every registered method and dataset, as ``fer-bench list --json`` prints them."""
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS, count_params

    methods = []
    for name, cls in METHODS.items():
        model = cls.from_defaults()
        methods.append({
            "name": name,
            "modality": cls.modality,
            "citation": cls.paper.citation,
            "doi": cls.paper.doi,
            "reported": cls.paper.reported,
            "reconstructed": cls.paper.reconstructed,
            "fidelity": cls.paper.fidelity,
            "input": f"{model.in_chans}x{model.input_size}x{model.input_size}",
            "params": count_params(model),
        })
    datasets = [
        {"name": name, "modality": cls.info.modality, "classes": list(cls.classes), "protocol": cls.info.protocol}
        for name, cls in DATASETS.items()
    ]
    return {"methods": methods, "datasets": datasets}


def cmd_list(args: argparse.Namespace) -> int:
    cat = catalogue()
    if args.json:
        print(json.dumps(cat, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="methods")
    for col in ("name", "modality", "input", "params", "reported (%)", "citation"):
        t.add_column(col, overflow="fold")
    for m in cat["methods"]:
        rep = "; ".join(f"{d}: " + ", ".join(f"{k.upper()} {v}" for k, v in r.items()) for d, r in m["reported"].items())
        cite = m["citation"] + (" [reconstruction]" if m["reconstructed"] else "")
        t.add_row(m["name"], m["modality"], m["input"], f"{m['params'] / 1e6:.2f}M", rep or "-", cite)
    console.print(t)
    t = Table(title="datasets")
    for col in ("name", "modality", "classes", "protocol"):
        t.add_column(col, overflow="fold")
    for d in cat["datasets"]:
        t.add_row(d["name"], d["modality"], ", ".join(d["classes"]), d["protocol"])
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


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", help="dataset folder as distributed")
    p.add_argument("--fold", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default="32-true",
                   choices=["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"],
                   help="32-true (default); bf16-mixed / 16-mixed autocast on GPU (16-mixed needs CUDA)")
    p.add_argument("--channels-last", action="store_true",
                   help="model and 4-D batches in channels_last memory format (faster convolutions on GPU)")
    p.add_argument("--limit-per-class", type=int, help="at most N samples per class in each split")
    p.add_argument("--logger", default="csv", choices=["csv", "wandb"])
    p.add_argument("--out", help="output folder (default runs/<method>/<dataset>/seed<S>)")
    p.add_argument("--weights", help="local state dict to start from (weights_only load)")
    p.add_argument("--input-size", type=int)
    p.add_argument("--in-chans", type=int, choices=[1, 3])
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader workers (default: chosen from the machine, 0 on <= 2 CPUs)")
    p.add_argument("--cache-images", default="auto", choices=["auto", "on", "off"],
                   help="in-memory decoded-image cache for image-file datasets (auto: when it fits "
                        "--cache-budget-mb)")
    p.add_argument("--cache-budget-mb", type=float, help="auto image-cache budget (default: RAM/4, at most 8 GiB)")
    p.add_argument("--clip-cache", metavar="DIR", help="on-disk uint8 cache of decoded video frames (built once, "
                   "reused, rebuilt when a source changes)")
    p.add_argument("--monitor", default="war", choices=["war", "uar"], help="validation metric that picks the checkpoint")
    p.add_argument("-m", "--method-arg", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="method hyper-parameter, e.g. -m lr=0.01 -m strategy=prediction_based")
    p.add_argument("-d", "--data-arg", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset protocol argument, e.g. -d classes=8 -d label_mode=probability")
    p.add_argument("--max-unreadable", type=float, default=0.01,
                   help="stop when more than this fraction of a split is unreadable (default 0.01 = 1 %%)")
    p.add_argument("--no-progress", action="store_true")


def cmd_train(args: argparse.Namespace) -> int:
    from fer_bench.train import TrainConfig, run

    cfg = TrainConfig(
        method=args.method, dataset=args.dataset, root=args.root, fold=args.fold, seed=args.seed,
        max_epochs=args.max_epochs, batch_size=args.batch_size, devices=args.devices,
        accelerator=args.accelerator, num_nodes=args.num_nodes, precision=args.precision,
        limit_per_class=args.limit_per_class, logger=args.logger, out=args.out, weights=args.weights,
        input_size=args.input_size, in_chans=args.in_chans, num_workers=args.num_workers, monitor=args.monitor,
        method_args=dict(args.method_arg), data_args=dict(args.data_arg), progress=not args.no_progress,
        max_unreadable=args.max_unreadable, cache_images=args.cache_images,
        cache_budget_mb=args.cache_budget_mb, clip_cache=args.clip_cache, channels_last=args.channels_last,
    )
    result = run(cfg)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        print_scores(result)
        print(f"wrote {cfg.out_dir() / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-bench", description="Facial expression recognition benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered methods and datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("train", help="train one method on one dataset")
    add_train_args(p)
    p.set_defaults(func=cmd_train)
    from fer_bench.bench.cli import add_bench_commands
    from fer_bench.data.cli import add_data_commands

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
