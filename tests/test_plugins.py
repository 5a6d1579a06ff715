"""Methods and datasets from outside the package: --import, a suite's imports:, installed entry
points, the example plugin, `fer-bench new`.  Everything that registers runs in a subprocess, so
the test process's registries hold the built-in names only."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

PLUGIN = REPO / "examples" / "plugin"


def fer_bench(*args: str, cwd: Path = REPO, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "fer_bench", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"fer-bench {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def methods_listed(*args: str, env: dict | None = None) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads(fer_bench("list", "--json", *args, env=env).stdout)["methods"]}


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example plugin installed as a distribution (pip, from a copy of examples/plugin) into a
    folder that PYTHONPATH then names: its entry point is what the packaging standard makes it."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)], check=True,
                   capture_output=True, text=True, timeout=300)
    return site


def test_import_registers_a_method_with_its_metafile_beside_it():
    cat = methods_listed("--import", str(PLUGIN / "fer_bench_example"))
    m = cat["mini_vgg"]
    assert m["source"] == f"--import {PLUGIN / 'fer_bench_example'}"
    assert m["metafile"] == str(PLUGIN / "fer_bench_example" / "mini_vgg.yaml")
    assert m["input"] == "1x48x48" and m["reported"] == [] and m["reconstructed"]
    assert cat["resnet18_cifar"]["source"] == "built-in"
    assert "mini_vgg" not in methods_listed()  # nothing leaks into a run without the flag


def test_an_installed_entry_point_is_found_without_any_flag(installed):
    cat = methods_listed(env={"PYTHONPATH": str(installed)})
    assert cat["mini_vgg"]["source"] == "entry point mini_vgg (fer_bench_example.mini_vgg) of " \
                                        "fer-bench-example-plugin 0.1.0"
    assert Path(cat["mini_vgg"]["metafile"]).parent == installed / "fer_bench_example"


def test_a_name_two_sources_register_is_refused_naming_both(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        from fer_bench.methods import METHODS
        from fer_bench.methods.resnet18 import ResNet18CIFAR

        @METHODS.register("resnet18_cifar")
        class Mine(ResNet18CIFAR):
            pass
    """))
    line = one_line_error(fer_bench("list", "--import", str(tmp_path / "mine.py"), check=False))
    assert "method 'resnet18_cifar' is registered twice: by built-in and by --import" in line and "mine.py" in line
    # two user modules with the same dataset name
    for n in ("a", "b"):
        (tmp_path / f"ds_{n}.py").write_text(textwrap.dedent("""
            from fer_bench.data import DATASETS, FERDataModule

            @DATASETS.register("my_faces")
            class MyFaces(FERDataModule):
                pass
        """))
    line = one_line_error(fer_bench("list", "--import", str(tmp_path / "ds_a.py"), "--import",
                                    str(tmp_path / "ds_b.py"), check=False))
    assert re.search(r"dataset 'my_faces' is registered twice: by --import \S*ds_a\.py and by --import \S*ds_b\.py", line)


@pytest.mark.parametrize("spec, expected", [
    ("no_such_module_xyz", "--import no_such_module_xyz: no module of that name"),
    ("missing/file.py", "--import missing/file.py: expected an existing .py file or package folder, found none"),
    ("broken.py", "--import {tmp}/broken.py: importing it failed: ZeroDivisionError: division by zero"),
])
def test_an_import_that_fails_is_one_line_before_any_work(tmp_path, spec, expected):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    if spec == "broken.py":
        spec = str(tmp_path / "broken.py")
    line = one_line_error(fer_bench("train", "--import", spec, "--method", "resnet18_cifar", "--dataset",
                                    "synthetic-static", "--out", str(tmp_path / "run"), check=False))
    assert expected.format(tmp=tmp_path) in line
    assert not (tmp_path / "run").exists()


def test_a_suites_imports_are_relative_to_the_suite_and_reach_its_workers(tmp_path):
    folder = tmp_path / "suites"
    folder.mkdir()
    shutil.copy(PLUGIN / "fer_bench_example" / "mini_vgg.py", folder / "my_vgg.py")
    shutil.copy(PLUGIN / "fer_bench_example" / "mini_vgg.yaml", folder / "mini_vgg.yaml")
    (folder / "s.yaml").write_text(textwrap.dedent("""
        suite: own
        imports: [my_vgg.py]
        defaults: {seeds: [0], max_epochs: 1, batch_size: 8, data_args: {train_per_class: 4, val_per_class: 2, test_per_class: 3}}
        cells:
          - {method: mini_vgg, dataset: synthetic-static}
    """))
    out = fer_bench("bench", str(folder / "s.yaml"), "--leaderboards", str(tmp_path / "lb"), "--run-dir",
                    str(tmp_path / "run"), "--parallel", "1", "--no-progress", cwd=tmp_path)
    assert "mini_vgg/synthetic-static" in out.stdout
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["imports"] == [{"module": "my_vgg", "path": str(folder), "spec": "my_vgg.py"}]
    rows = (tmp_path / "lb" / "own" / "v001.csv").read_text()
    assert rows.count("\nown,mini_vgg,synthetic-static,") == 1
    # a bad entry names the suite file and the key
    (folder / "bad.yaml").write_text("suite: bad\nimports: [nothere.py]\ncells: []\n")
    line = one_line_error(fer_bench("bench", str(folder / "bad.yaml"), check=False))
    assert f"{folder / 'bad.yaml'}: imports: nothere.py: expected an existing .py file or package folder" in line


@pytest.mark.slow
def test_the_example_suite_runs_installed_and_imported_and_compares(tmp_path, installed):
    reduced = ["-o", "max_epochs=1", "-o", "data_args.train_per_class=12", "-o", "data_args.val_per_class=4",
               "-o", "data_args.test_per_class=8", "--no-progress", "--paper-init", "never"]
    suite = str(PLUGIN / "suite.yaml")
    # installed: the entry point, nothing named on the command line
    fer_bench("bench", suite, "--leaderboards", str(tmp_path / "lb"), "--run-dir", str(tmp_path / "run1"), *reduced,
              env={"PYTHONPATH": str(installed)})
    v1 = (tmp_path / "lb" / "plugin-example" / "v001.csv").read_text()
    assert v1.count(",mini_vgg,synthetic-static,") == 2 and v1.count(",resnet18_pretrained,synthetic-static,") == 2
    cmp = fer_bench("leaderboard", "compare", "plugin-example", "mini_vgg", "resnet18_pretrained", "--dataset",
                    "synthetic-static", "--leaderboards", str(tmp_path / "lb"), "--resamples", "200")
    verdict = r"synthetic-static: WAR (mini_vgg better|resnet18_pretrained better|no detectable difference)"
    assert re.search(verdict, cmp.stdout), cmp.stdout
    # not installed: --import, and two parallel workers that import it from the plan
    fer_bench("bench", suite, "--import", str(PLUGIN / "fer_bench_example"), "--only", "mini_vgg/*",
              "--leaderboards", str(tmp_path / "lb2"), "--run-dir", str(tmp_path / "run2"), "--parallel", "2", *reduced)
    v2 = (tmp_path / "lb2" / "plugin-example" / "v001.csv").read_text()
    assert v2.count(",mini_vgg,synthetic-static,") == 2


def test_new_method_trains_once_its_marks_are_filled(tmp_path):
    out = fer_bench("new", "method", "my_method", "--out", str(tmp_path / "m"))
    module, meta = tmp_path / "m" / "my_method.py", tmp_path / "m" / "my_method.yaml"
    assert f"wrote {module}, {meta}" in out.stdout
    train = ["train", "--import", str(module), "--method", "my_method", "--dataset", "synthetic-static",
             "--max-epochs", "1", "--limit-per-class", "4", "--no-progress", "--out", str(tmp_path / "run")]
    # unfilled: the metafile names what is left, then the code does
    line = one_line_error(fer_bench(*train, check=False))
    assert "still 'FILL IN' at citation, fidelity, recipe.architecture.value" in line
    text = meta.read_text()
    text = text.replace('"FILL IN: authors, title, venue, year"', '"A. Author, My method, 2026"')
    text = text.replace("FILL IN: what of this method is the paper's and what is your reading of it.", "All of it.")
    meta.write_text(text.replace('"FILL IN: the network in one line"', '"conv-ReLU-GAP-linear"'))
    line = one_line_error(fer_bench(*train, check=False))
    assert line.endswith("not implemented: my_method: build the network in __init__ (my_method.py, between the "
                         "FILL IN marks)")
    code = module.read_text()
    blocks = re.findall(r"        # >>> FILL IN.*?# <<< FILL IN\n", code, flags=re.S)
    assert len(blocks) == 2
    code = code.replace(blocks[0], "        self.net = nn.Sequential(nn.Conv2d(self.in_chans, 8, 3, padding=1), nn.ReLU(), "
                                   "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, self.num_classes))\n")
    module.write_text(code.replace(blocks[1], "        return self.net(x)\n"))
    fer_bench(*train)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["method"] == "my_method" and metrics["n_test"] == 28 and 0.0 <= metrics["war"] <= 1.0
    # a second `new` does not overwrite, nor may a name be a built-in one
    assert "exist(s); nothing written" in one_line_error(fer_bench("new", "method", "my_method", "--out",
                                                                   str(tmp_path / "m"), check=False))
    assert "already registered (built-in)" in one_line_error(fer_bench("new", "method", "resnet18_cifar", "--out",
                                                                       str(tmp_path / "x"), check=False))


def test_new_dataset_writes_a_reader_and_a_synthetic_writer_that_agree(tmp_path):
    fer_bench("new", "dataset", "my_faces", "--out", str(tmp_path))
    module = tmp_path / "my_faces.py"
    root = tmp_path / "data"
    line = one_line_error(fer_bench("data", "synth", "my_faces", "--root", str(root), "--import", str(module),
                                    check=False))
    assert "not implemented: my_faces: write write_synthetic()" in line
    # the examples in both blocks read and write labels.csv: keeping them is deleting the raise lines
    module.write_text("\n".join(l for l in module.read_text().splitlines() if "raise NotImplementedError" not in l) + "\n")
    fer_bench("data", "synth", "my_faces", "--root", str(root), "--per-class", "3", "--import", str(module))
    assert (root / "labels.csv").read_text().count("\n") == 1 + 3 * 7 * 3
    report = json.loads(fer_bench("data", "check", "my_faces", "--root", str(root), "--json", "--import",
                                  str(module)).stdout)
    assert report["dataset"] == "my_faces" and report["problems"] == []
    assert {split: sum(c.values()) for split, c in report["counts"].items()} == {"train": 21, "val": 21, "test": 21}
    # a malformed label file names the file and the line
    (root / "labels.csv").write_text("file,label,split\nimages/x.png,joy,train\n")
    proc = fer_bench("data", "check", "my_faces", "--root", str(root), "--import", str(module), check=False)
    assert proc.returncode != 0 and "labels.csv" in proc.stderr and "line 2" in proc.stderr and "'joy'" in proc.stderr
