"""Bad input ends as one line on stderr and exit status 2, never a traceback, and changes no file.

One table (``CASES``) runs every command and sub-command of the CLI in a subprocess in ``tmp_path``
(issue 19): weights files, checkpoints, bundles, suite files, run folders, leaderboard versions,
baselines, label files and prediction files that are missing, empty, truncated, edited or not what
the command needs; unknown names; YAML syntax errors; out-of-range numbers; output paths under a
file.  Each is refused before any work starts: exit 2, exactly one stderr line naming the thing and
saying what was expected, no file or folder in ``tmp_path`` changed or made.  argparse's own errors
are such lines too (``fer_bench.cli.Parser.error`` words them).  One exception: ``data check`` exits 1
on what it finds in an existing folder (a malformed label file, like an unreadable image): that is
the check's result, not a misuse.

The last test checks that a run's output is free of two notices of Lightning and torch.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import run_cli

M, D = "resnet18_cifar", "synthetic-static"
T = ["train", "--method", M, "--dataset", D]
FAST = ["--max-epochs", "1", "--limit-per-class", "2", "--input-size", "16", "--no-progress", "--out", "out"]
TRAIN = [*T, "--max-epochs", "1", "--out", "out", "--weights"]
EVAL = ["eval", "--dataset", D, "--checkpoint"]
PREDICT = ["predict", "--model"]
HEADER = "suite,method,dataset,seed,war,uar\n"
GOOD_ROW = f"s,{M},{D},0,0.5,0.5\n"
SUITE_YAML = f"suite: bad\ncells:\n  - method: {M}\n    dataset: [synthetic-static\n  - method: b\n"
GOOD_SUITE = f"suite: s\ncells:\n  - {{method: {M}, dataset: {D}}}\n"
TINY_SUITE = GOOD_SUITE.replace("cells:", "defaults: {max_epochs: 1, limit_per_class: 2, input_size: 16}\ncells:")
BOARDS = ["--leaderboards", "boards"]
BAD_FER2013 = "emotion,pixels,Usage\n9,0 0 0,Training\n"  # label 9 at line 2 (0..6 expected)


def _torch_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _state_dict():
    import torch

    return torch.nn.Linear(8, 4).state_dict()


def _file(kind: str):
    """The bytes of a bad file of ``kind``."""
    if kind == "text":
        return b"these are not weights\n"
    if kind == "empty":
        return b""
    if kind == "truncated":  # the first half of a real state dict saved with torch.save
        whole = _torch_bytes(_state_dict())
        return whole[: len(whole) // 2]
    if kind == "list":
        return _torch_bytes([1, 2])
    if kind == "state_dict":  # a real state dict, of no fer_bench method
        return _torch_bytes(_state_dict())
    if kind == "lightning_without_method":  # a Lightning checkpoint that does not say which fer_bench method
        return _torch_bytes({"state_dict": _state_dict(), "pytorch-lightning_version": "2.6.6", "hyper_parameters": {}})
    raise ValueError(kind)


def _checkpoint(tmp: Path) -> None:
    """``good.ckpt``: a checkpoint of the untrained resnet18_cifar, as eval reads it (no training)."""
    from fer_bench.methods import METHODS

    m = METHODS.get(M).from_defaults()
    (tmp / "good.ckpt").write_bytes(_torch_bytes({"state_dict": m.state_dict(), "pytorch-lightning_version": "2.6.6",
                                                  "hyper_parameters": dict(m.hparams), "fer_bench_method": M}))


def _leaderboards(tmp: Path) -> None:
    """``boards/broken/v001.csv``: a header and one broken line; ``boards/badwar/v001.csv``: a WAR that is
    no number; ``boards/good/v001.csv``: a valid version; ``boards/pred/v001.csv``: two methods whose
    predictions files are a valid and a truncated npz."""
    import numpy as np

    for suite, text in (("broken", HEADER + "s,garbage\n"), ("badwar", HEADER + "s,m,d,0,abc,0.5\n"),
                        ("good", HEADER + GOOD_ROW),
                        ("pred", "suite,method,dataset,fold,seed,war,uar,status,predictions\n"
                                 f"s,{M},{D},,0,0.5,0.5,ok,a.npz\ns,angular_sknet,{D},,0,0.5,0.5,ok,b.npz\n")):
        (tmp / "boards" / suite).mkdir(parents=True)
        (tmp / "boards" / suite / "v001.csv").write_text(text)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp / "a.npz", index=np.arange(6), label=y, pred=y, probs=np.eye(3)[y])
    (tmp / "b.npz").write_bytes((tmp / "a.npz").read_bytes()[:100])


def _metafile_plugin(tmp: Path) -> None:
    """A plugin method (``fer-bench new method``) whose metafile has a YAML syntax error at line 2."""
    from fer_bench.skeletons import write_skeleton

    write_skeleton("method", "badmeta", tmp / "plug")
    (tmp / "plug" / "badmeta.yaml").write_text("method: badmeta\nkind: [paper\ncitation: x\n")


def _bundles(tmp: Path) -> None:
    """``good.pt``: a bundle that reads (format, meta, SHA-256 of its weights), though its weights fit no
    method (every case is refused before a model is built); ``edited.pt``: its meta's SHA-256 is of other
    weights; ``face.png``: an input; ``empty/``: a folder without images or videos."""
    import json

    from fer_bench.bundle import FORMAT, weights_sha256

    sd = _state_dict()
    meta = {"method": M, "hparams": {}, "modality": "static", "classes": ["a", "b", "c", "d"],
            "preprocessing": {"input_size": 8, "in_chans": 3, "normalization": "none", "resize": None, "crop": True,
                              "tta": "none"}, "weights_sha256": weights_sha256(sd)}
    other = {k: v + 1 for k, v in sd.items()}
    for fname, digest in (("good.pt", meta["weights_sha256"]), ("edited.pt", weights_sha256(other))):
        (tmp / fname).write_bytes(_torch_bytes({"format": FORMAT, "meta": json.dumps({**meta, "weights_sha256": digest}),
                                                "state_dict": sd}))
    (tmp / "face.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # never read: every case is refused before
    (tmp / "empty").mkdir()


def case(id: str, argv: list[str], name: str, also: str = "", *, files: dict | None = None, texts: dict | None = None,
         setup=None, rc: int = 2, env: dict | None = None):
    """One row: ``files`` {name: bad kind (_file)}, ``texts`` {path: text}, ``setup(tmp)``, ``env`` {variable:
    value under tmp}; the line must hold ``name``, "expected" and ``also``."""
    return pytest.param(files or {}, texts or {}, setup, env or {}, argv, name, also, rc, id=id)


CASES = [
    # list
    case("list-recipe-unknown", ["list", "--recipe", "nosuch"], "nosuch"),
    case("list-import-missing", ["list", "--import", "nosuch.py"], "nosuch.py"),
    case("list-flag-unknown", ["list", "--jsn"], "--jsn"),
    case("metafile-yaml-syntax", ["list", "--recipe", "badmeta", "--import", "plug/badmeta.py"], "badmeta.yaml",
         "line 3, column 9", setup=_metafile_plugin),
    # train
    *[case(f"train-weights-{k}", [*TRAIN, f"w_{k}.pt"], f"w_{k}.pt", "state dict", files={f"w_{k}.pt": k})
      for k in ("text", "empty", "truncated", "list")],
    case("train-weights-other-model", [*TRAIN, "w.pt"], "w.pt", "ResNet18CIFAR", files={"w.pt": "state_dict"}),
    case("train-weights-missing", [*TRAIN, "nosuch.pt"], "nosuch.pt"),
    case("train-method-unknown", ["train", "--method", "nosuch", "--dataset", D], "nosuch"),
    case("train-dataset-unknown", ["train", "--method", M, "--dataset", "nosuch"], "nosuch"),
    case("train-dataset-missing", ["train", "--method", M], "--dataset", "required"),
    case("train-max-epochs-negative", [*T, "--max-epochs", "-1"], "--max-epochs", ">= 1"),
    case("train-max-epochs-not-int", [*T, "--max-epochs", "abc"], "--max-epochs", "'abc'"),
    case("train-precision-unknown", [*T, "--precision", "fp8"], "--precision", "bf16-mixed"),
    case("train-lr-not-a-number", [*T, "-m", "lr=abc"], "-m lr", "'abc'"),
    case("train-lr-negative", [*T, "-m", "lr=-1", *FAST], "-m lr", "-1"),
    case("train-method-arg-unknown", [*T, "-m", "nosuch=1"], "-m nosuch"),
    case("train-method-arg-no-value", [*T, "-m", "lr"], "--method-arg", "KEY=VALUE"),
    case("train-root-missing", ["train", "--method", M, "--dataset", "fer2013", "--root", "nosuch", "--out", "out"],
         "nosuch", "no such"),
    case("train-label-file-malformed", ["train", "--method", M, "--dataset", "fer2013", "--root", "f", "--out", "out"],
         "fer2013.csv", "line 2", texts={"f/fer2013.csv": BAD_FER2013}),
    case("train-fold-single-split", [*T, "--fold", "3", *FAST], "--fold 3", "single official split"),
    case("train-fold-missing", ["train", "--method", M, "--dataset", "ckplus", "--root", "."], "no --fold", "0..9"),
    case("train-out-is-a-file", [*T, "--out", "afile"], "afile", "a file", texts={"afile": "x"}),
    # eval
    case("eval-missing", [*EVAL, "nosuch.ckpt"], "nosuch.ckpt", "no such file"),
    *[case(f"eval-{k}", [*EVAL, f"c_{k}.ckpt"], f"c_{k}.ckpt", "checkpoint", files={f"c_{k}.ckpt": k})
      for k in ("text", "empty", "truncated", "list", "state_dict", "lightning_without_method")],
    case("eval-not-this-method", [*EVAL, "c.ckpt", "--method", M], "c.ckpt", M,
         files={"c.ckpt": "lightning_without_method"}),
    case("eval-dataset-unknown", ["eval", "--dataset", "nosuch", "--checkpoint", "good.ckpt"], "nosuch",
         setup=_checkpoint),
    case("eval-batch-size-zero", [*EVAL, "good.ckpt", "--batch-size", "0"], "--batch-size", ">= 1", setup=_checkpoint),
    case("eval-out-is-a-file", [*EVAL, "good.ckpt", "--out", "afile/x"], "afile", "a file", texts={"afile": "x"},
         setup=_checkpoint),
    case("eval-data-arg-unknown", [*EVAL, "good.ckpt", "-d", "nosuch=1"], "-d nosuch", setup=_checkpoint),
    case("eval-fold-single-split", [*EVAL, "good.ckpt", "--fold", "3"], "--fold 3", setup=_checkpoint),
    case("eval-root-missing", ["eval", "--dataset", "fer2013", "--root", "nosuch", "--checkpoint", "good.ckpt"],
         "nosuch", "no such", setup=_checkpoint),
    # bench
    case("bench-suite-missing", ["bench", "nosuch.yaml"], "nosuch.yaml", "no such file"),
    *[case(f"bench-suite-{k}", ["bench", "s.yaml"], "s.yaml", "mapping", texts={"s.yaml": text})
      for k, text in (("empty", ""), ("not-a-mapping", "- a\n- b\n"), ("cells-not-a-list", "suite: s\ncells: 3\n"))],
    case("suite-yaml-syntax", ["bench", "bad.yaml"], "bad.yaml", "line 5, column 11", texts={"bad.yaml": SUITE_YAML}),
    case("suite-not-utf8", ["bench", "latin.yaml"], "latin.yaml", "offset 10, not UTF-8",
         setup=lambda t: (t / "latin.yaml").write_bytes("suite: caf\xe9\ncells: []\n".encode("latin-1"))),
    *[case(f"bench-cell-{k}", ["bench", "s.yaml"], "s.yaml", also, texts={"s.yaml": GOOD_SUITE.replace(old, new)})
      for k, old, new, also in (("method-unknown", M, "nosuch", "'nosuch'"), ("dataset-unknown", D, "nosuch", "'nosuch'"),
                                ("key-unknown", "}", ", max_epoch: 1}", "max_epoch"),
                                ("out-of-range", "}", ", max_epochs: -1}", ">= 1"))],
    case("bench-resume-missing", ["bench", "s.yaml", "--resume", "nosuch"], "nosuch", "run folder",
         texts={"s.yaml": GOOD_SUITE}),
    case("bench-resume-not-a-run", ["bench", "s.yaml", "--resume", "d"], "--resume d", "run folder",
         texts={"s.yaml": GOOD_SUITE, "d/x.txt": "x"}),
    *[case(f"bench-{flag}-not-a-run", ["bench", f"--{flag}", "d"], "d", "run folder", texts={"d/x.txt": "x"})
      for flag in ("collect", "status")],
    *[case(f"bench-parallel-{n}", ["bench", "s.yaml", "--parallel", n], "--parallel", ">= 1", texts={"s.yaml": GOOD_SUITE})
      for n in ("0", "-2")],
    case("bench-launcher-unknown", ["bench", "s.yaml", "--launcher", "pbs"], "--launcher", "slurm",
         texts={"s.yaml": GOOD_SUITE}),
    case("bench-override-out-of-range", ["bench", "s.yaml", "-o", "max_epochs=-1"], "-o max_epochs", ">= 1",
         texts={"s.yaml": GOOD_SUITE}),
    case("bench-override-unknown", ["bench", "s.yaml", "-o", "nosuch=1"], "-o nosuch", texts={"s.yaml": GOOD_SUITE}),
    case("bench-only-no-cell", ["bench", "s.yaml", "--only", "nosuch/x"], "nosuch/x", texts={"s.yaml": GOOD_SUITE}),
    case("bench-seeds-not-in-suite", ["bench", "s.yaml", "--seeds", "7"], "--seeds 7", texts={"s.yaml": GOOD_SUITE}),
    case("bench-data-root-missing", ["bench", "s.yaml", "--data-root", "nosuch"], "nosuch",
         texts={"s.yaml": GOOD_SUITE.replace(D, "fer2013")}),
    case("bench-fer-data-missing", ["bench", "s.yaml"], "$FER_DATA", "existing folder", env={"FER_DATA": "nosuch"},
         texts={"s.yaml": GOOD_SUITE.replace(D, "fer2013")}),
    # leaderboard
    *[case(f"leaderboard-{cmd}-no-suite", ["leaderboard", cmd, "nosuch"], "nosuch", "vNNN.csv") for cmd in ("show", "plot")],
    *[case(f"leaderboard-{argv[0]}-broken-line", ["leaderboard", *argv, *BOARDS], "v001.csv", "line 2", setup=_leaderboards)
      for argv in (["show", "broken"], ["diff", "broken", "v001", "v001"], ["plot", "broken"],
                   ["compare", "broken", M, "angular_sknet"], ["page", "broken"])],
    case("leaderboard-show-war-not-a-number", ["leaderboard", "show", "badwar", *BOARDS], "v001.csv", "line 2",
         setup=_leaderboards),
    *[case(f"leaderboard-{argv[0]}-no-version", ["leaderboard", *argv, *BOARDS], "v999", "v001", setup=_leaderboards)
      for argv in (["show", "good", "--version", "v999"], ["diff", "good", "v999", "v001"],
                   ["plot", "good", "--version", "v999"], ["compare", "good", M, "angular_sknet", "--version", "v999"],
                   ["page", "good", "--version", "v999"])],
    case("leaderboard-subcommand-unknown", ["leaderboard", "shw"], "shw", "show"),
    case("leaderboard-plot-out-under-a-file", ["leaderboard", "plot", "good", "--out", "afile/p.png", *BOARDS], "afile",
         setup=_leaderboards, texts={"afile": "x"}),
    case("leaderboard-compare-resamples-zero", ["leaderboard", "compare", "pred", M, "angular_sknet", "--resamples", "0",
                                                *BOARDS], "--resamples", ">= 1", setup=_leaderboards),
    case("leaderboard-compare-method-unknown", ["leaderboard", "compare", "pred", M, "nosuch", *BOARDS], "nosuch",
         setup=_leaderboards),
    case("leaderboard-compare-predictions-truncated", ["leaderboard", "compare", "pred", M, "angular_sknet", *BOARDS],
         "b.npz", setup=_leaderboards),
    case("leaderboard-papers-folder-is-a-file", ["leaderboard", "papers", "--leaderboards", "afile"], "afile",
         texts={"afile": "x"}),
    # regress
    case("regress-suite-missing", ["regress", "--suite", "nosuch.yaml"], "nosuch.yaml", "no such file"),
    case("regress-suite-yaml-syntax", ["regress", "--suite", "bad.yaml"], "bad.yaml", "line 5", texts={"bad.yaml": SUITE_YAML}),
    case("regress-only-no-cell", ["regress", "--suite", "s.yaml", "--only", "nosuch/x"], "nosuch/x",
         texts={"s.yaml": GOOD_SUITE}),
    case("regress-baseline-missing", ["regress", "--suite", "s.yaml", "--baseline", "nosuch.csv"], "nosuch.csv",
         "no such file", texts={"s.yaml": TINY_SUITE}),
    case("regress-baseline-not-a-leaderboard", ["regress", "--suite", "s.yaml", "--baseline", "b.csv"], "b.csv",
         texts={"s.yaml": TINY_SUITE, "b.csv": "garbage\n"}),
    # data check / synth
    case("data-check-root-missing", ["data", "check", "fer2013", "--root", "nosuch"], "nosuch", "no such"),
    case("data-check-dataset-unknown", ["data", "check", "nosuch", "--root", "."], "nosuch"),
    case("data-check-label-file-malformed", ["data", "check", "fer2013", "--root", "f"], "fer2013.csv", "line 2",
         texts={"f/fer2013.csv": BAD_FER2013}, rc=1),
    case("data-check-fold-out-of-range", ["data", "check", "ckplus", "--root", ".", "--fold", "12"], "--fold 12", "0..9"),
    case("data-check-data-arg-unknown", ["data", "check", "fer2013", "--root", ".", "-d", "nosuch=1"], "-d nosuch"),
    case("data-synth-name-unknown", ["data", "synth", "nosuch", "--root", "o"], "nosuch"),
    case("data-synth-layout-unknown", ["data", "synth", "rafdb", "--root", "o", "-d", "layout=nosuch"], "nosuch"),
    *[case(f"data-synth-{flag}-{n}", ["data", "synth", "rafdb", "--root", "o", f"--{flag}", n], f"--{flag}", f">= {lo}")
      for flag, n, lo in (("per-class", "0", 1), ("per-class", "-3", 1), ("seed", "-1", 0))],
    case("data-synth-root-is-a-file", ["data", "synth", "rafdb", "--root", "afile"], "afile", "a file",
         texts={"afile": "x"}),
    # new
    *[case(f"new-name-{k}", ["new", "method", name], repr(name), "identifier") for k, name in (("not-identifier", "My-Method"),
                                                                                        ("keyword", "class"))],
    case("new-name-registered", ["new", "method", M], M, "already registered"),
    case("new-target-exists", ["new", "method", "mine", "--out", "p"], "p/mine.py", "exist", texts={"p/mine.py": "x"}),
    case("new-out-is-a-file", ["new", "dataset", "mine", "--out", "afile"], "afile", "a file", texts={"afile": "x"}),
    case("new-kind-unknown", ["new", "model", "mine"], "'model'", "method"),
    # score
    case("score-missing", ["score", "nosuch.csv", "--dataset", D], "nosuch.csv", "no such file"),
    case("score-folder", ["score", "d", "--dataset", D], "d", "a folder", texts={"d/x.txt": "x"}),
    case("score-csv-wrong-columns", ["score", "p.csv", "--dataset", D], "p.csv", "'id'", texts={"p.csv": "a,b\n1,2\n"}),
    *[case(f"score-npz-{k}", ["score", f"p_{k}.npz", "--dataset", D], f"p_{k}.npz", "npz", files={f"p_{k}.npz": k})
      for k in ("empty", "truncated")],
    case("score-dataset-unknown", ["score", "p.csv", "--dataset", "nosuch"], "nosuch", texts={"p.csv": "id,label\n"}),
    case("score-out-is-a-file", ["score", "p.csv", "--dataset", D, "--out", "afile"], "afile", "a file",
         texts={"p.csv": "id,label\n", "afile": "x"}),
    case("score-fold-single-split", ["score", "p.csv", "--dataset", D, "--fold", "-1"], "--fold -1",
         texts={"p.csv": "id,label\n"}),
    case("score-data-arg-unknown", ["score", "p.csv", "--dataset", D, "-d", "nosuch=1"], "-d nosuch",
         texts={"p.csv": "id,label\n"}),
    # predict
    case("predict-model-missing", [*PREDICT, "nosuch.pt", "face.png"], "nosuch.pt", "no such file", setup=_bundles),
    *[case(f"predict-model-{k}", [*PREDICT, "m.pt", "face.png"], "m.pt", "bundle", files={"m.pt": k}, setup=_bundles)
      for k in ("text", "empty", "truncated", "state_dict")],
    case("predict-model-edited", [*PREDICT, "edited.pt", "face.png"], "edited.pt", "SHA-256", setup=_bundles),
    case("predict-out-not-csv-json", [*PREDICT, "good.pt", "face.png", "--out", "x.txt"], "--out x.txt", ".csv",
         setup=_bundles),
    case("predict-out-under-a-file", [*PREDICT, "good.pt", "face.png", "--out", "afile/r.csv"], "afile", "a file",
         texts={"afile": "x"}, setup=_bundles),
    case("predict-out-is-a-folder", [*PREDICT, "good.pt", "face.png", "--out", "r.csv"], "--out r.csv", "a folder",
         texts={"r.csv/x": "x"}, setup=_bundles),
    case("predict-detector-unknown", [*PREDICT, "good.pt", "face.png", "--detector", "nosuch"], "--detector", "mtcnn",
         setup=_bundles),
    case("predict-every-zero", [*PREDICT, "good.pt", "face.png", "--every", "0"], "--every", ">= 1", setup=_bundles),
    case("predict-device-unknown", [*PREDICT, "good.pt", "face.png", "--device", "nosuch"], "--device nosuch", "cpu",
         setup=_bundles),
    case("predict-no-inputs", [*PREDICT, "good.pt", "empty"], "empty", "image or video files", setup=_bundles),
    # export
    case("export-missing", ["export", "nosuch"], "nosuch", "no such file"),
    case("export-not-a-run-folder", ["export", "d"], "d", "config.yaml", texts={"d/x.txt": "x"}),
    case("export-text-file", ["export", "notes.txt"], "notes.txt", "run folder", texts={"notes.txt": "x"}),
    case("export-text-file-pt", ["export", "m.pt", "--onnx", "m.onnx"], "m.pt", "bundle", files={"m.pt": "text"}),
    case("export-bundle-without-onnx", ["export", "good.pt"], "good.pt", "--onnx", setup=_bundles),
    case("export-out-under-a-file", ["export", "d", "--out", "afile/b.pt"], "afile", "a file",
         texts={"afile": "x", "d/x.txt": "x"}),
    case("command-unknown", ["trian"], "trian", "train"),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))
            if "__pycache__" not in p.parts}


@pytest.mark.parametrize(("files", "texts", "setup", "env", "argv", "name", "also", "rc"), CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, monkeypatch, files, texts, setup, env, argv, name,
                                                          also, rc):
    for fname, kind in files.items():
        (tmp_path / fname).write_bytes(_file(kind))
    for fname, text in texts.items():
        (tmp_path / fname).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / fname).write_text(text)
    if setup is not None:
        setup(tmp_path)
    for var, value in env.items():
        monkeypatch.setenv(var, str(tmp_path / value))
    before = _snapshot(tmp_path)
    proc = run_cli(*argv, cwd=tmp_path, timeout=300, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == rc, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-3000:]
    assert name in lines[0] and "expected" in lines[0] and also in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # nothing changed, no file or folder written


def test_a_run_prints_neither_the_litlogger_tip_nor_the_leafspec_warning(tmp_path):
    proc = run_cli("train", "--method", "resnet18_cifar", "--dataset", "synthetic-static", "--max-epochs", "1",
                   "--limit-per-class", "4", "--input-size", "24", "--no-progress", "--out", str(tmp_path / "run"),
                   timeout=300)
    text = proc.stdout + proc.stderr
    assert "litlogger" not in text and "LeafSpec" not in text, text[-3000:]
    assert (tmp_path / "run" / "metrics.json").exists()
