"""Recipes as data: every field marked, suites follow them, rows say how they deviate."""
import hashlib
import json

import pandas as pd
import pytest
import torch

from fer_bench.bench import leaderboard as lb
from fer_bench.bench.runner import paper_protocol, with_paper_init
from fer_bench.bench.suite import Job, apply_overrides, load_suite
from fer_bench.errors import DataFormatError, UserError
from fer_bench.methods import METHODS
from fer_bench.methods.recipe import FIELDS, deviations, parse_recipe
from fer_bench.train import run_deviations
from fer_bench.weights import WeightsChecksumError, WeightsMissing, resolve

from conftest import run_cli


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
    assert with_paper_init(jobs, "never") == jobs  # regress: from scratch even with the file there
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


# -- augmentation, normalisation and test frames owned by the method ------------------------------
def test_default_augmentation_is_unchanged_and_ial_is_the_official_one():
    from torchvision.transforms import v2

    from fer_bench.data.transforms import MatchChannels, build_transform

    x = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    old = v2.Compose([MatchChannels(3), v2.RandomResizedCrop(48, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
                      v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])
    torch.manual_seed(5)
    a = old(x)
    torch.manual_seed(5)
    assert torch.equal(build_transform(train=True, input_size=48, in_chans=3)(x), a)
    ial = build_transform(train=True, input_size=48, in_chans=3, augmentation="ial").transforms
    crop = next(t for t in ial if isinstance(t, v2.RandomResizedCrop))
    assert crop.scale == (0.85, 1.0) and crop.ratio == pytest.approx((3 / 5, 5 / 3))
    assert any(isinstance(t, v2.ColorJitter) and t.brightness == pytest.approx((0.4, 1.6)) for t in ial)
    assert any(isinstance(t, v2.RandomRotation) and list(t.degrees) == [-4.0, 4.0] for t in ial)
    # one draw per clip: a clip of identical frames stays identical frame to frame
    clip = x[None].repeat(4, 1, 1, 1)
    out = build_transform(train=True, input_size=48, in_chans=3, augmentation="ial")(clip)
    assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
    norm = build_transform(train=False, input_size=48, in_chans=3, normalization="imagenet")(x)
    plain = build_transform(train=False, input_size=48, in_chans=3)(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(norm, (plain - mean) / std, atol=1e-6)


def test_segment_centre_test_frames_are_the_official_ones():
    from fer_bench.data.video import sample_indices

    for n in range(17, 120):
        tick = n / 16.0
        official = [int(tick / 2.0 + tick * k) for k in range(16)]
        assert sample_indices(n, 16, train=False, eval_frames="segment-centre").tolist() == official, n
    assert sample_indices(32, 16, train=False, eval_frames="segment-centre").tolist() == list(range(1, 32, 2))
    assert sample_indices(32, 16, train=False).tolist() != list(range(1, 32, 2))  # linspace stays the default


def test_the_datamodule_applies_the_methods_recipe(tmp_path):
    from fer_bench.settings import TrainConfig
    from fer_bench.synth import write_layout
    from fer_bench.train import build

    write_layout("dfew", str(tmp_path / "dfew"), per_class=1, seed=0)
    dm, _ = build(TrainConfig(method="ial_gca", dataset="dfew", root=str(tmp_path / "dfew"), fold=1, input_size=32))
    assert (dm.augmentation, dm.test_frames, dm.normalization) == ("ial", "segment-centre", "none")
    assert dm.protocol_args()["test_frames"] == "segment-centre"
    dm, _ = build(TrainConfig(method="resnet18_lstm", dataset="dfew", root=str(tmp_path / "dfew"), fold=1,
                              input_size=32))
    assert (dm.augmentation, dm.test_frames) == ("default", "linspace")
    dm, _ = build(TrainConfig(method="multiscale_ccl", dataset="synthetic-static", input_size=48,
                              data_args={"train_per_class": 2, "val_per_class": 1, "test_per_class": 1}))
    assert dm.normalization == "imagenet"
    # a data argument overrides the recipe, and the row says so
    cfg = TrainConfig(method="ial_gca", dataset="dfew", root=str(tmp_path / "dfew"), fold=1,
                      data_args={"augmentation": "default"})
    dm, _ = build(cfg)
    assert dm.augmentation == "default" and "augmentation default≠ial" in run_deviations(cfg)
