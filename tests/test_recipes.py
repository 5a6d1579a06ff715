"""Recipes as data: every field marked, suites follow them, rows say how they deviate."""
import hashlib
import json

import pandas as pd
import pytest
import torch

from conftest import run_cli
from fer_bench.bench import leaderboard as lb
from fer_bench.bench.runner import paper_protocol, with_paper_init
from fer_bench.bench.suite import Job, apply_overrides, load_suite
from fer_bench.errors import DataFormatError, UserError
from fer_bench.methods import METHODS
from fer_bench.methods.recipe import FIELDS, deviations, parse_recipe
from fer_bench.train import run_deviations
from fer_bench.weights import WeightsChecksumError, WeightsMissing, resolve


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_has_a_recipe_with_every_field_marked(name):
    cls = METHODS.get(name)
    recipe = cls.recipe()
    for field in ("init", "input_size", "in_chans", "normalization", "optimizer", "lr", "weight_decay",
                  "scheduler", "epochs", "batch_size", "augmentation", "sampler", "tta", "selection"):
        assert field in recipe.fields, field
    for item in list(recipe.fields.values()) + [i for p in recipe.protocols.values() for i in p.values()]:
        assert item.status in ("published", "reconstructed", "not stated")
        if item.status != "not stated":
            assert item.source, item
    if cls.modality == "dynamic":
        assert "frames" in recipe.fields and "test_frames" in recipe.fields
    # the architecture constants in code agree with the recipe; the training defaults come from it
    assert recipe.value("input_size") == cls.default_input_size
    assert recipe.value("in_chans") == cls.default_in_chans
    assert cls.defaults()["max_epochs"] == recipe.value("epochs")
    assert cls.defaults()["optimizer"] == recipe.value("optimizer")
    # every number a paper reports has the protocol it states (or "not stated")
    for dataset in cls.paper.reported:
        assert set(recipe.protocols[dataset]) == {"classes", "split", "metric"}


def test_a_published_field_without_a_source_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("method: m\nrecipe:\n  lr: {value: 0.1, status: published}\n")
    with pytest.raises(DataFormatError, match=r"m\.yaml: expected recipe\.lr: a source"):
        parse_recipe(path)
    path.write_text("method: m\nrecipe:\n  lr: {value: 0.1, status: guessed, source: x}\n")
    with pytest.raises(DataFormatError, match="status one of published, reconstructed"):
        parse_recipe(path)
    path.write_text("method: m\nrecipe:\n  learning_rate: {value: 0.1, status: published, source: x}\n")
    with pytest.raises(DataFormatError, match="found learning_rate"):
        parse_recipe(path)


def test_deviations_name_each_field_ours_and_the_recipes():
    recipe = METHODS.get("ial_gca").recipe()
    actual = {"epochs": 40, "lr": 0.001, "loss_weights": {"aux2_weight": 0.05, "aux3_weight": 0.0, "ial_weight": 0.2},
              "selection": "val"}
    assert deviations(recipe, actual) == ["epochs 40≠70", "ial_weight 0.2≠0.1"]  # selection is never compared


def _cells(suite):
    seen = {}
    for j in suite.jobs:
        seen.setdefault((j.method, j.dataset), j)
    return seen


def test_paper_cells_of_the_shipped_suites_run_the_recipe(repo):
    """For every (method, dataset) with a paper number: no deviation but, without weights, the init."""
    for name in ("static", "dynamic"):
        for (method, dataset), job in _cells(load_suite(repo / "benchmarks" / f"{name}.yaml")).items():
            if dataset not in METHODS.get(method).paper.reported:
                continue
            devs = [d for d in run_deviations(job.config()) if not d.startswith("init scratch≠")]
            assert devs == [], (method, dataset, devs)


def test_a_reduced_run_names_its_overridden_epochs(repo):
    jobs = apply_overrides(load_suite(repo / "benchmarks" / "dynamic.yaml").jobs, {"max_epochs": 1})
    job = next(j for j in jobs if j.method == "ial_gca")
    assert "epochs 1≠70" in run_deviations(job.config())


def test_paper_protocol_says_when_the_paper_does_not_state_it():
    ccl = METHODS.get("multiscale_ccl")
    assert paper_protocol(ccl, "rafdb", 7) == "stated"
    assert paper_protocol(ccl, "rafdb", 6) == "differs (classes 6≠7)"
    assert paper_protocol(ccl, "affectnet", 7) == "not stated (classes)"
    assert paper_protocol(ccl, "ckplus", 7) == ""  # no paper number there


def _row(method, dataset, war, devs="", proto="stated"):
    return {"suite": "s", "method": method, "dataset": dataset, "seed": 0, "war": war, "uar": war,
            "status": "ok", "deviations": devs, "paper_protocol": proto}


def test_readme_marks_every_difference_that_is_not_a_reproduction(tmp_path):
    papers = {("multiscale_ccl", "rafdb", "war"): 89.63, ("multiscale_ccl", "affectnet", "war"): 61.82,
              ("ial_gca", "dfew", "war"): 69.24}
    df = pd.DataFrame([_row("multiscale_ccl", "rafdb", 0.88),
                       _row("multiscale_ccl", "affectnet", 0.60, proto="not stated (classes)"),
                       _row("ial_gca", "dfew", 0.65, devs="epochs 1≠70")])
    table = lb.markdown_table(lb.summarise(df, papers))
    rows = {line.split("|")[1].strip() + "/" + line.split("|")[2].strip(): line for line in table.splitlines()[2:]}
    assert "| -1.63 |" in rows["multiscale_ccl/rafdb"]  # a reproduction: unmarked
    assert "-1.82 ‡" in rows["multiscale_ccl/affectnet"] and "paper protocol not stated" in rows["multiscale_ccl/affectnet"]
    assert "-4.24 †" in rows["ial_gca/dfew"] and "deviates: epochs 1≠70" in rows["ial_gca/dfew"]


def _weights_file(folder, name, payload):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(payload, path)
    return path


def test_missing_and_corrupt_weights_files_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_WEIGHTS", str(tmp_path / "w"))
    (tmp_path / "w").mkdir()
    with pytest.raises(WeightsMissing) as e:
        resolve("imagenet-resnet18")
    msg = str(e.value)
    assert "\n" not in msg and "resnet18-f37072fd.pth" in msg and str(tmp_path / "w") in msg
    assert "download.pytorch.org" in msg  # where it is published
    (tmp_path / "w" / "resnet18-f37072fd.pth").write_bytes(b"not the torchvision file")
    with pytest.raises(WeightsChecksumError, match="refusing it") as e:
        resolve("imagenet-resnet18")
    assert "\n" not in str(e.value)
    # the same through the command line: exit 2, one line, before any data is read
    env_args = ("train", "--method", "resnet18", "--dataset", "rafdb", "--root", str(tmp_path / "no-data"),
                "--weights", "imagenet-resnet18")
    import os

    old = os.environ.get("FER_WEIGHTS")
    os.environ["FER_WEIGHTS"] = str(tmp_path / "w")
    try:
        proc = run_cli(*env_args, check=False, timeout=120)
    finally:
        if old is None:
            os.environ.pop("FER_WEIGHTS")
        else:
            os.environ["FER_WEIGHTS"] = old
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing it" in lines[0] and "Traceback" not in proc.stderr


def test_unpinned_weights_are_accepted_and_named_by_their_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_WEIGHTS", str(tmp_path))
    path = _weights_file(tmp_path, "resnet18_msceleb.pth", {"state_dict": {"conv1.weight": torch.zeros(64, 3, 7, 7)}})
    r = resolve("msceleb-resnet18")
    assert r.path == path and r.tag == "msceleb-resnet18@" + hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def test_paper_init_uses_available_weights_or_skips_when_required(tmp_path, monkeypatch, repo):
    jobs = [j for j in load_suite(repo / "benchmarks" / "static.yaml").jobs
            if j.method in ("tcl_selective", "resnet18") and j.dataset == "rafdb" and j.seed == 0]
    monkeypatch.setenv("FER_WEIGHTS", str(tmp_path))
    said = []
    assert len(with_paper_init(jobs, "required", said.append)) == 1  # resnet18 only: its recipe is scratch
    assert said and all("msceleb-resnet18" in s and "\n" not in s for s in said)
    default = with_paper_init(jobs, "if-available", said.append)
    assert len(default) == len(jobs) and all(not j.settings.get("weights") for j in default)
    tcl = next(j for j in default if j.method == "tcl_selective")
    assert "init scratch≠msceleb-resnet18" in run_deviations(tcl.config())
    _weights_file(tmp_path, "resnet18_msceleb.pth", {"state_dict": {}})
    used = with_paper_init(jobs, "required", said.append)
    tcl = next(j for j in used if j.method == "tcl_selective")
    assert tcl.settings["weights"] == "msceleb-resnet18"
    assert not any(d.startswith("init") for d in run_deviations(tcl.config()))
    assert tcl.key != next(j for j in default if j.method == "tcl_selective").key  # never mixed with scratch runs


def test_list_json_carries_the_recipe():
    proc = run_cli("list", "--json", "--recipe", "ial_gca", timeout=300)
    cat = json.loads(proc.stdout)
    (m,) = cat["methods"]
    assert m["recipe"]["fields"]["lr"] == {"value": 0.001, "status": "published", "source": "main.py: --lr default 0.001"}
    assert set(m["recipe"]["fields"]) <= set(FIELDS)


def test_bad_job_weights_name_is_refused_at_suite_load(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ncells:\n  - {method: resnet18, dataset: synthetic-static, weights: no-such-weights}\n")
    with pytest.raises(UserError, match="no-such-weights"):
        load_suite(suite)
    assert Job("resnet18", "synthetic-static", None, 0).config().weights is None
