"""Behaviour every registered dataset with a synthetic layout writer must have, one test each.

Parametrised over ``fer_bench.data.DATASETS`` x ``fer_bench.synth.WRITERS``: registering a
dataset and its writer is enough to be covered.  Each case writes the dataset's default layout
(with the writer's own defaults, plus the speed-only options of :data:`FAST`) and checks

(a) one training epoch end to end gives valid metrics;
(b) a corrupt sample file is skipped and counted by the run, not fatal;
(c) a malformed label file is a :class:`~fer_bench.errors.DataFormatError` naming the file
    (and the line where the parser knows it).
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from fer_bench.data import DATASETS
from fer_bench.errors import DataFormatError
from fer_bench.synth import write_layout, writer_names

NAMES = sorted(set(DATASETS.names()) & set(writer_names()))
PER_CLASS = 3  # ckplus needs >= 2 (10 subject-disjoint folds), ferv39k >= 3 (a test clip per class)
#: speed-only writer options (smaller frames, shorter clips); nothing here changes a layout
FAST: dict[str, dict] = {
    "dfew": dict(size=32, min_frames=4, max_frames=8),
    "ferv39k": dict(size=32, min_frames=4, max_frames=8),
    "rafdb": dict(size=48),
}
#: the smallest method of each modality
METHOD = {"static": "resnet18", "dynamic": "resnet18_lstm"}


def test_every_writer_has_a_registered_dataset():
    assert set(writer_names()) <= set(DATASETS.names())
    assert NAMES  # the parametrisation below is not empty


@pytest.fixture(scope="module", params=NAMES)
def written(request, tmp_path_factory):
    """(name, tree root, SynthLayout) of the dataset's default synthetic layout, written once."""
    name = request.param
    root = tmp_path_factory.mktemp(name) / "tree"
    return name, root, write_layout(name, root, per_class=PER_CLASS, seed=0, **FAST.get(name, {}))


def _copy(written, tmp_path: Path):
    """A private copy of the tree and the layout's files mapped into it."""
    name, root, layout = written
    dst = tmp_path / "tree"
    shutil.copytree(root, dst)
    move = lambda ps: [dst / Path(p).relative_to(root) for p in ps]  # noqa: E731
    return name, dst, move(layout.label_files), move(layout.sample_files)


def _config(name: str, root: Path, out: Path, **kw):
    from fer_bench.train import TrainConfig

    cls = DATASETS.get(name)
    modality = cls.info.modality
    return TrainConfig(method=METHOD[modality], dataset=name, root=str(root), fold=cls.folds[0] if cls.folds else None,
                       max_epochs=1, batch_size=16, input_size=32, num_workers=0, progress=False, out=str(out),
                       data_args={"frames": 4} if modality == "dynamic" else {}, **kw)


def _run(cfg) -> dict:
    from fer_bench.train import run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few batches, Haar fallbacks, ...
        run(cfg)
    return json.loads((Path(cfg.out) / "metrics.json").read_text())


def test_layout_lists_existing_files(written):
    name, root, layout = written
    assert Path(layout.root) == root
    for p in [*layout.label_files, *layout.sample_files]:
        assert Path(p).is_file() and Path(p).stat().st_size > 0, p
        assert root in Path(p).parents


def test_one_epoch_end_to_end(written, tmp_path):
    name, root, _ = written
    m = _run(_config(name, root, tmp_path / "out", limit_per_class=2))
    assert m["n_train"] > 0 and m["n_val"] > 0 and m["n_test"] > 0
    assert 0.0 <= m["war"] <= 1.0 and 0.0 <= m["uar"] <= 1.0
    assert list(m["per_class_recall"]) == m["classes"] == list(DATASETS.get(name).classes)
    recall = [r for r in m["per_class_recall"].values() if r is not None]  # None: class absent from test
    assert recall and all(0.0 <= r <= 1.0 for r in recall)
    assert m["skipped_files"] == []


def test_corrupt_sample_is_skipped_and_counted(written, tmp_path):
    name, root, _, samples = _copy(written, tmp_path)
    if not samples:
        pytest.skip(f"{name}'s default layout holds its samples inside the label file (no sample files)")
    bad = samples[0]
    bad.write_bytes(b"\x00garbage, not an image or a video\xff" * 4)
    m = _run(_config(name, root, tmp_path / "out", max_unreadable=1.0))
    hits = [s for s in m["skipped_files"] if s.startswith(str(bad))]
    assert len(hits) == 1 and len(m["skipped_files"]) == 1, m["skipped_files"]
    assert m["n_test"] > 0


def _malform(path: Path) -> int | None:
    """Overwrite one line of a text label file (the second, or the only one) with garbage; a
    binary file (``.npy``) is overwritten whole.  Returns the 1-based line changed, if any."""
    if path.suffix == ".npy":
        path.write_bytes(b"not a numpy file\n")
        return None
    lines = path.read_text().splitlines(keepends=True)
    k = 1 if len(lines) >= 2 else 0
    lines[k] = "not,a valid;label line\n"
    path.write_text("".join(lines))
    return k + 1


def test_malformed_label_file_names_file_and_line(written, tmp_path):
    name, root, labels, _ = _copy(written, tmp_path)
    if not labels:
        pytest.skip(f"{name}'s layout has no label file (labels are folder names)")
    bad = labels[0]
    line = _malform(bad)
    cls = DATASETS.get(name)
    with pytest.raises(DataFormatError) as e:
        dm = cls(str(root), fold=cls.folds[0] if cls.folds else None, num_workers=0)
        dm.setup("fit")
    assert str(bad) in str(e.value)
    assert e.value.line is None or e.value.line == line, (e.value.line, line, str(e.value))


# -- the writer registry -----------------------------------------------------------------
def test_unknown_writer_lists_the_valid_names(tmp_path):
    from fer_bench.errors import UserError

    with pytest.raises(UserError, match="no synthetic layout writer for 'nope': expected one of affectnet, ckplus"):
        write_layout("nope", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_writer_options_are_checked(name, tmp_path):
    from fer_bench.errors import UserError

    with pytest.raises(UserError, match="option"):
        write_layout(name, tmp_path / "a", per_class=PER_CLASS, no_such_option=1)
    if name not in ("ferv39k", "imagefolder"):  # the writers with a layout choice
        with pytest.raises(UserError, match=f"{name} synth: layout: expected one of .*, got 'nope'"):
            write_layout(name, tmp_path / "b", per_class=PER_CLASS, layout="nope")


def test_importing_the_registry_is_lazy():
    import subprocess
    import sys

    code = ("import sys, fer_bench.synth as s; s.WRITERS; s.SynthLayout; "
            "print(sorted(m for m in ('cv2', 'decord', 'pandas', 'torch', 'fer_bench.data') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
