"""``fer-bench predict`` (a bundle's model on one's own images and videos) and ``fer-bench export``
(a run folder's or checkpoint's bundle, and its ONNX network)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_bench.errors import DataFormatError, UserError, check_out_folder, verify_choice


def _check_out_file(path: str, flag: str) -> None:
    """Refuse, before any work, an output file that is a folder or lies under a file."""
    check_out_folder(Path(path).parent, flag)
    if Path(path).is_dir():
        raise UserError(f"{flag} {path}: expected a file name, found a folder")


def _run_folder_of(given: Path) -> tuple[Path, Path | None]:
    """(run folder, checkpoint or None) of a run folder or a checkpoint inside one."""
    if given.is_dir():
        missing = [f for f in ("config.yaml", "metrics.json") if not (given / f).is_file()]
        if missing:
            raise DataFormatError(given, "a run folder of fer-bench train / bench (with config.yaml and metrics.json)",
                                  found=f"no {' or '.join(missing)}")
        return given, None
    if not given.exists():
        raise DataFormatError(given, "a run folder of fer-bench train / bench, or a checkpoint inside one",
                              found="no such file or folder")
    for parent in given.resolve().parents[:2]:
        if (parent / "config.yaml").exists():
            return parent, given
    raise DataFormatError(given, "a checkpoint inside a run folder (its config.yaml says how the model was fed)",
                          found="no config.yaml in the two folders above it")


def cmd_export(args: argparse.Namespace) -> int:
    from fer_bench.bundle import BUNDLE_FILE, read_bundle, write_bundle

    source = Path(args.source)
    for flag in ("out", "onnx"):
        if getattr(args, flag):
            _check_out_file(getattr(args, flag), f"--{flag}")
    if source.is_file() and source.name.endswith(".pt") and not source.name.endswith(".ckpt"):
        bundle = read_bundle(source)  # a bundle already: --onnx from it
        if not args.onnx:
            raise UserError(f"{source}: a bundle already; expected --onnx FILE to export its network, or a run "
                            "folder or checkpoint to write a bundle from")
    else:
        run_dir, checkpoint = _run_folder_of(source)
        default = (Path(checkpoint).parent if checkpoint else run_dir / "checkpoints") / BUNDLE_FILE
        bundle_path = write_bundle(run_dir, checkpoint, args.out or default)
        print(f"wrote {bundle_path}")
        bundle = read_bundle(bundle_path) if args.onnx else None
    if args.onnx:
        from fer_bench.onnx_export import export_onnx

        print(f"wrote {export_onnx(bundle, args.onnx)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from fer_bench.bundle import read_bundle
    from fer_bench.predict import Failure, Predictor, check_device, expand_inputs, write_results

    if args.out:  # every argument checked before the model is read: exit 2, one line, nothing written
        if Path(args.out).suffix.lower() not in (".csv", ".json"):
            raise UserError(f"--out {args.out}: expected a .csv or .json file name")
        _check_out_file(args.out, "--out")
    if not args.no_detect:
        from fer_bench.data.detect import DETECTORS

        verify_choice(args.detector, "--detector", DETECTORS)
    device = check_device(args.device)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise UserError(f"{' '.join(args.inputs)}: expected image or video files, or folders holding some; found none")
    bundle = read_bundle(args.model)
    predictor = Predictor(bundle, device=device, detect=not args.no_detect,
                          detector=args.detector, min_score=args.min_score, batch_size=args.batch_size,
                          every=args.every)
    results, failures = [], []
    show = len(paths) > 1 and not args.no_progress
    for item in tqdm(predictor.run(paths), total=len(paths), disable=not show, desc="predict", unit="input",
                     file=sys.stderr):
        if isinstance(item, Failure):
            failures.append(item)
            print(f"fer-bench predict: {item.input}: {item.reason}", file=sys.stderr)
        else:
            results += item
    if args.out:
        print(f"wrote {write_results(results, args.out)} ({len(results)} results)")
    else:
        _print(results, bundle.classes, Console(width=None if sys.stdout.isatty() else 200))
    done = len(paths) - len(failures)
    print(f"{done} of {len(paths)} inputs predicted, {len(failures)} failed", file=sys.stderr if failures else sys.stdout)
    return 1 if failures else 0


def _print(results, classes: list[str], console) -> None:
    from rich.table import Table

    t = Table(show_header=True, header_style="bold")
    for col in ("input", "kind", "frame", "face", "box", "class", *classes):
        t.add_column(col, justify="right" if col in classes else "left")
    for r in results:
        box = "" if r.box is None else ",".join(f"{v:.0f}" for v in r.box)
        frame = "" if r.frame is None else str(r.frame)
        face = "" if r.face is None else str(r.face)
        t.add_row(Path(r.input).name, r.kind + (f" (n={r.n})" if r.n else ""), frame, face, box, r.label,
                  *(f"{100 * p:.1f}" for p in r.probs))
    console.print(t)


def add_predict_commands(sub) -> None:
    from fer_bench.cli.flags import at_least

    p = sub.add_parser("predict", help="a trained model (its bundle) on faces in images, folders and videos")
    p.add_argument("--model", required=True, metavar="BUNDLE",
                   help="a bundle: RUN/checkpoints/bundle.pt, written by every train / bench job, or fer-bench export")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders holding some")
    p.add_argument("--no-detect", action="store_true", help="the inputs are face crops already: no detection")
    p.add_argument("--detector", default="mtcnn", help="mtcnn (boxes and 5 landmarks; default) or haar (boxes)")
    p.add_argument("--min-score", type=float, default=0.9, help="the detector's confidence threshold (default 0.9)")
    p.add_argument("--every", type=at_least(1), default=1, metavar="N",
                   help="a static model on a video: every N-th frame (default 1)")
    p.add_argument("--batch-size", type=at_least(1), default=32)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when there is one)")
    p.add_argument("--out", help="write the results as csv or json (by the file name) instead of a table")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("export", help="the bundle of a run folder or checkpoint (weights and how to feed them), "
                                      "and its ONNX network")
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT|BUNDLE",
                   help="a run folder of fer-bench train / bench (its selected checkpoint), a checkpoint inside one, "
                        "or a bundle (with --onnx)")
    p.add_argument("--out", help="the bundle file (default: beside the checkpoint, bundle.pt)")
    p.add_argument("--onnx", metavar="FILE", help="also write the network as ONNX, with the bundle's metadata")
    p.set_defaults(func=cmd_export)
