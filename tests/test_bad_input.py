"""Bad input ends as one line on stderr and exit status 2, never a traceback, and changes no file.

Each case builds its bad files in ``tmp_path`` and runs the command line in a subprocess there
(issue 19): weights files and checkpoints that are text, empty, truncated or not what the command
needs; a leaderboard suite or version that does not exist or holds a broken line; a suite file and
a metafile with a YAML syntax error.  The last test checks that a run's output is free of two
notices of Lightning and torch that say nothing about the run.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import run_cli

TRAIN = ["train", "--method", "resnet18_cifar", "--dataset", "synthetic-static", "--max-epochs", "1",
         "--out", "out", "--weights"]
EVAL = ["eval", "--dataset", "synthetic-static", "--checkpoint"]
HEADER = "suite,method,dataset,seed,war,uar\n"
GOOD_ROW = "s,resnet18_cifar,synthetic-static,0,0.5,0.5\n"
SUITE_YAML = "suite: bad\ncells:\n  - method: resnet18_cifar\n    dataset: [synthetic-static\n  - method: b\n"


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


def _leaderboards(tmp: Path) -> None:
    """``boards/broken/v001.csv``: a header and one broken line; ``boards/badwar/v001.csv``: a WAR that is
    no number; ``boards/good/v001.csv``: a valid version."""
    for suite, text in (("broken", HEADER + "s,garbage\n"), ("badwar", HEADER + "s,m,d,0,abc,0.5\n"),
                        ("good", HEADER + GOOD_ROW)):
        (tmp / "boards" / suite).mkdir(parents=True)
        (tmp / "boards" / suite / "v001.csv").write_text(text)


def _metafile_plugin(tmp: Path) -> None:
    """A plugin method (``fer-bench new method``) whose metafile has a YAML syntax error at line 2."""
    from fer_bench.skeletons import write_skeleton

    write_skeleton("method", "badmeta", tmp / "plug")
    (tmp / "plug" / "badmeta.yaml").write_text("method: badmeta\nkind: [paper\ncitation: x\n")


BOARDS = ["--leaderboards", "boards"]
# (id, files to write {name: kind}, set-up, argv, the name the line must contain, more text it must contain)
CASES = [
    *[(f"train-weights-{k}", {f"w_{k}.pt": k}, None, [*TRAIN, f"w_{k}.pt"], f"w_{k}.pt", "state dict")
      for k in ("text", "empty", "truncated", "list")],
    ("train-weights-other-model", {"w.pt": "state_dict"}, None, [*TRAIN, "w.pt"], "w.pt", "ResNet18CIFAR"),
    ("eval-missing", {}, None, [*EVAL, "nosuch.ckpt"], "nosuch.ckpt", "no such file"),
    *[(f"eval-{k}", {f"c_{k}.ckpt": k}, None, [*EVAL, f"c_{k}.ckpt"], f"c_{k}.ckpt", "checkpoint")
      for k in ("text", "empty", "truncated", "list", "state_dict", "lightning_without_method")],
    ("eval-not-this-method", {"c.ckpt": "lightning_without_method"}, None,
     [*EVAL, "c.ckpt", "--method", "resnet18_cifar"], "c.ckpt", "resnet18_cifar"),
    ("leaderboard-show-no-suite", {}, None, ["leaderboard", "show", "nosuch"], "nosuch", "vNNN.csv"),
    *[(f"leaderboard-{cmd}-broken-line", {}, _leaderboards, ["leaderboard", *argv, *BOARDS], "v001.csv", "line 2")
      for cmd, argv in (("show", ["show", "broken"]), ("diff", ["diff", "broken", "v001", "v001"]),
                        ("compare", ["compare", "broken", "resnet18_cifar", "angular_sknet"]),
                        ("page", ["page", "broken"]))],
    ("leaderboard-show-war-not-a-number", {}, _leaderboards, ["leaderboard", "show", "badwar", *BOARDS],
     "v001.csv", "line 2"),
    *[(f"leaderboard-{cmd}-no-version", {}, _leaderboards, ["leaderboard", *argv, *BOARDS], "v999", "v001")
      for cmd, argv in (("show", ["show", "good", "--version", "v999"]), ("diff", ["diff", "good", "v999", "v001"]),
                        ("compare", ["compare", "good", "resnet18_cifar", "angular_sknet", "--version", "v999"]),
                        ("page", ["page", "good", "--version", "v999"]))],
    ("suite-yaml-syntax", {}, lambda t: (t / "bad.yaml").write_text(SUITE_YAML), ["bench", "bad.yaml"],
     "bad.yaml", "line 5, column 11"),
    ("suite-not-utf8", {}, lambda t: (t / "latin.yaml").write_bytes("suite: caf\xe9\ncells: []\n".encode("latin-1")),
     ["bench", "latin.yaml"], "latin.yaml", "offset 10, not UTF-8"),
    ("metafile-yaml-syntax", {}, _metafile_plugin, ["list", "--recipe", "badmeta", "--import", "plug/badmeta.py"],
     "badmeta.yaml", "line 3, column 9"),
]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("files", "setup", "argv", "name", "also"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, files, setup, argv, name, also):
    for fname, kind in files.items():
        (tmp_path / fname).write_bytes(_file(kind))
    if setup is not None:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    proc = run_cli(*argv, cwd=tmp_path, timeout=300, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-3000:]
    assert name in lines[0] and "expected" in lines[0] and also in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # nothing changed, nothing written


def test_a_run_prints_neither_the_litlogger_tip_nor_the_leafspec_warning(tmp_path):
    proc = run_cli("train", "--method", "resnet18_cifar", "--dataset", "synthetic-static", "--max-epochs", "1",
                   "--limit-per-class", "4", "--input-size", "24", "--no-progress", "--out", str(tmp_path / "run"),
                   timeout=300)
    text = proc.stdout + proc.stderr
    assert "litlogger" not in text and "LeafSpec" not in text, text[-3000:]
    assert (tmp_path / "run" / "metrics.json").exists()
