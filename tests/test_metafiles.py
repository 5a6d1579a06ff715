"""Metafiles as data: every field marked with a source a reviewer can check, suites follow each
method's recipe for each dataset, rows say how they differ, and the leaderboard marks every
difference to a paper's number that is not a reproduction, with the reason."""
import re

import pandas as pd
import pytest
import torch

from fer_bench.bench import leaderboard as lb
from fer_bench.bench.job import paper_protocol, planned_row
from fer_bench.bench.plan import with_paper_init
from fer_bench.bench.suite import Job, apply_overrides, load_suite
from fer_bench.errors import DataFormatError, UserError
from fer_bench.methods import METHODS
from fer_bench.methods.metafile import FIELDS, PROTOCOL_ITEMS, REQUIRED, deviations, parse_metafile
from fer_bench.resolve import resolve
from fer_bench.settings import TrainConfig

from conftest import run_cli

# what a `published` source may cite: the paper itself, or a file of the official code
PAPER_WORDS = re.compile(r"\b(abstract|paper|README)\b")
CODE_FILE = re.compile(r"[\w+./*-]+\.(py|yaml|txt|md)\b")
NOT_A_SOURCE = re.compile(r"papers\.md|datasets\.md|fact of the dataset|fer_bench's", re.IGNORECASE)


def _all_items(meta):
    for name, item in meta.recipe.fields.items():
        yield f"recipe.{name}", item
    for dataset, fields in meta.recipe.datasets.items():
        for name, item in fields.items():
            yield f"datasets.{dataset}.{name}", item
    for rep in meta.reported:
        for name, item in rep.protocol.items():
            yield f"reported.{rep.dataset}.{name}", item


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_has_a_metafile_with_every_field_marked(name):
    cls = METHODS.get(name)
    meta = cls.metafile()
    assert meta.method == name and meta.citation and meta.fidelity
    assert meta.path.parent.name == "metafiles" and meta.path.stem == name
    recipe = meta.recipe
    assert set(REQUIRED) <= set(recipe.fields)
    if cls.modality == "dynamic":
        assert {"frames", "test_frames"} <= set(recipe.fields)
    # the architecture constants in code agree with the general recipe; the training defaults come from it
    assert recipe.value("input_size") == cls.default_input_size
    assert recipe.value("in_chans") == cls.default_in_chans
    assert cls.defaults()["max_epochs"] == recipe.value("epochs")
    assert cls.defaults()["optimizer"] == recipe.value("optimizer")
    for rep in meta.reported:  # every reported number carries every protocol item
        assert set(rep.protocol) == set(PROTOCOL_ITEMS) and rep.values


@pytest.mark.parametrize("name", METHODS.names())
def test_a_published_item_cites_the_paper_or_its_official_code(name):
    """No field is `published` with a source that is not the paper or its official code: not our own
    notes, not a fact about a dataset, and a method without public code can only cite its paper."""
    meta = METHODS.get(name).metafile()
    for where, item in _all_items(meta):
        if item.status != "published":
            continue
        assert not NOT_A_SOURCE.search(item.source), (name, where, item.source)
        cites_code = bool(CODE_FILE.search(item.source)) and bool(meta.code)
        assert PAPER_WORDS.search(item.source) or cites_code, (name, where, item.source)
    if meta.kind == "paper" and not meta.code:
        assert all(item.status != "published" for where, item in _all_items(meta) if where.startswith("recipe")), name


def test_list_json_gives_every_number_its_protocol_with_sources():
    proc = run_cli("list", "--json", timeout=600)
    import json

    cat = {m["name"]: m for m in json.loads(proc.stdout)["methods"]}
    assert set(cat) == set(METHODS.names())
    numbers = 0
    for m in cat.values():
        for rep in m["reported"]:
            numbers += 1
            assert set(rep["protocol"]) == set(PROTOCOL_ITEMS)
            assert all(item["source"] and item["status"] in ("published", "reconstructed", "not stated")
                       for item in rep["protocol"].values())
    assert numbers == 12  # angular_sknet 2, multiscale_ccl 3, ial_gca 2; anchors: resnet18_cifar 2, _pretrained 2, _lstm 1
    lstm = cat["resnet18_lstm"]
    assert [r["dataset"] for r in lstm["reported"]] == ["ferv39k"]  # the secondary DFEW 51.32 is not listed
    assert lstm["recipe"]["fields"]["optimizer"] == {
        "value": "adam", "status": "published", "source": "Performer.py: optim.Adam(params, lr=args.lr_init)"}


def test_a_bad_metafile_is_refused_naming_the_file_and_the_item(tmp_path):
    base = ("method: m\nkind: paper\ncitation: c\nfidelity: f\nreported: []\nrecipe:\n" + "".join(
        f"  {k}: {{value: 1, status: reconstructed, source: x}}\n" for k in REQUIRED))
    path = tmp_path / "m.yaml"
    path.write_text(base)
    assert parse_metafile(path).recipe.value("lr") == 1
    path.write_text(base.replace("  lr: {value: 1, status: reconstructed, source: x}",
                                 "  lr: {value: 0.1, status: published}"))
    with pytest.raises(DataFormatError, match=r"m\.yaml: expected recipe\.lr: a source"):
        parse_metafile(path)
    path.write_text(base + "  learning_rate: {value: 0.1, status: published, source: x}\n")
    with pytest.raises(DataFormatError, match="found learning_rate"):
        parse_metafile(path)
    path.write_text(base.replace("reported: []", "reported:\n  - {dataset: d, war: 70.1, source: s, protocol: "
                                                 "{classes: {value: 7, status: published, source: s}}}"))
    with pytest.raises(DataFormatError, match=r"reported\[0\]\.protocol: exactly the items classes, split"):
        parse_metafile(path)
    path.write_text(base.replace("kind: paper", "kind: guess"))
    with pytest.raises(DataFormatError, match="kind: one of paper, baseline"):
        parse_metafile(path)
    path.write_text(base.replace("citation: c", "citation: [c"))
    with pytest.raises(DataFormatError, match=r"m\.yaml, line \d+, column \d+: expected valid YAML"):
        parse_metafile(path)


def test_deviations_name_each_relevant_field_ours_and_the_recipes():
    recipe = METHODS.get("ial_gca").recipe()
    actual = {"epochs": 40, "lr": 0.001, "loss_weights": {"aux2_weight": 0.05, "aux3_weight": 0.0, "ial_weight": 0.2}}
    assert deviations(recipe, actual) == ["epochs 40≠70", "loss_weights.ial_weight 0.2≠0.1"]
    # momentum means nothing to Adam: the DFEW ResNet-LSTM's recipe never compares it
    lstm = METHODS.get("resnet18_lstm").recipe()
    assert "momentum" not in lstm.relevant() and deviations(lstm, {"momentum": 0.5}) == []


def _cells(suite):
    seen = {}
    for j in suite.jobs:
        seen.setdefault((j.method, j.dataset, j.label), j)
    return seen


def test_paper_cells_of_the_shipped_suites_run_the_recipe(repo):
    """For every (method, dataset) with a reported number: no deviation but, without weights, the init."""
    for name in ("static", "dynamic"):
        for (method, dataset, _), job in _cells(load_suite(repo / "benchmarks" / f"{name}.yaml")).items():
            if not any(r.dataset == dataset for r in METHODS.get(method).metafile().reported):
                continue
            devs = [d for d in resolve(job.config()).deviations if not d.startswith("init scratch≠")]
            assert devs == [], (method, dataset, devs)


def test_rows_record_the_recipe_for_their_dataset(repo):
    jobs = {(j.method, j.dataset): j for j in load_suite(repo / "benchmarks" / "static.yaml").jobs}
    rafdb = planned_row("static", jobs["resnet18_pretrained", "rafdb"], jobs["resnet18_pretrained", "rafdb"].config(),
                        METHODS.get("resnet18_pretrained")).as_dict()
    assert (rafdb["input_size"], rafdb["in_chans"], rafdb["resize"], rafdb["normalization"]) == (224, 3, 256, "dacl")
    assert (rafdb["epochs"], rafdb["batch_size"], rafdb["tta"]) == (60, 64, "none")
    fer = planned_row("static", jobs["resnet18_cifar", "fer2013"], jobs["resnet18_cifar", "fer2013"].config(),
                      METHODS.get("resnet18_cifar")).as_dict()
    assert (fer["input_size"], fer["resize"], fer["tta"], fer["epochs"], fer["batch_size"]) == (44, 48, "tencrop", 250, 128)
    ck = resolve(jobs["resnet18_cifar", "ckplus"].config())
    assert (ck.max_epochs, ck.batch_size, ck.hparams["step_start"], ck.hparams["gamma"]) == (60, 32, 20, 0.8)
    # a small network on RAF-DB reads its aligned 100x100 RGB faces, not 48 px grey; AffectNet gets fewer epochs
    assert (resolve(jobs["angular_sknet", "rafdb"].config()).input_size,
            resolve(jobs["angular_sknet", "rafdb"].config()).in_chans) == (100, 3)
    assert resolve(jobs["angular_sknet", "affectnet"].config()).max_epochs == 10
    assert resolve(jobs["angular_sknet", "fer2013"].config()).max_epochs == 100
    # multiscale_ccl runs AffectNet as two cells, 7 and 8 classes
    labels = {j.label: j.settings["data_args"]["classes"] for j in load_suite(repo / "benchmarks" / "static.yaml").jobs
              if j.method == "multiscale_ccl" and j.dataset == "affectnet"}
    assert labels == {"7cls": 7, "8cls": 8}


def test_an_input_size_of_ones_own_keeps_the_recipes_resize_ratio():
    r = resolve(TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", input_size=48))
    assert r.data_args["resize"] == 55  # 256 * 48 / 224
    assert "resize 55≠256" in r.deviations and "input_size 48≠224" in r.deviations


def test_a_reduced_run_names_its_overridden_epochs(repo):
    jobs = apply_overrides(load_suite(repo / "benchmarks" / "dynamic.yaml").jobs, {"max_epochs": 1})
    job = next(j for j in jobs if j.method == "ial_gca")
    assert "epochs 1≠70" in resolve(job.config()).deviations


def test_paper_protocol_says_what_differs_and_what_is_not_stated():
    ccl = METHODS.get("multiscale_ccl")
    # RAF-DB's 7 classes and split are facts of the dataset, not the abstract's statement
    assert paper_protocol(ccl, "rafdb", 7) == "not stated (classes, split, folds, tta, selection)"
    assert paper_protocol(ccl, "affectnet", 8).startswith("not stated (classes, split")
    assert paper_protocol(ccl, "ckplus", 7) == ""  # no paper number there
    dacl = METHODS.get("resnet18_pretrained")
    assert paper_protocol(dacl, "rafdb", 7) == "differs (selection validation≠best test epoch)"
    assert paper_protocol(dacl, "rafdb", 6) == ""  # its number is for 7 classes: a 6-class cell has none to compare
    assert paper_protocol(dacl, "affectnet", 8) == ""  # its anchor is for 7 classes
    cifar = METHODS.get("resnet18_cifar")
    assert paper_protocol(cifar, "ckplus", 7) == "differs (selection validation≠best test epoch, folds, metric)"


def _row(method, dataset, war, devs="", proto="stated", recon="", classes=7):
    return {"suite": "s", "method": method, "dataset": dataset, "seed": 0, "war": war, "uar": war, "classes": classes,
            "status": "ok", "deviations": devs, "paper_protocol": proto, "reconstructed": recon}


PAPERS = {("m", "d", None, "war"): {"value": 80.0, "kind": "paper", "by": ""},
          ("b", "d", 7, "war"): {"value": 70.0, "kind": "anchor", "by": "DACL"}}


@pytest.mark.parametrize("row,marks,note", [
    (_row("m", "d", 0.78), "", ""),  # published, matched, stated: a reproduction
    (_row("m", "d", 0.78, devs="epochs 1≠70"), "†", "† deviates: epochs 1≠70"),
    (_row("m", "d", 0.78, devs="epochs 1≠70", recon="epochs"), "§", "deviates from reconstructed fields: epochs 1≠70"),
    (_row("m", "d", 0.78, proto="not stated (split, tta)"), "‡", "‡ paper protocol not stated: split, tta"),
    (_row("m", "d", 0.78, recon="lr; epochs"), "§", "§ reconstructed: lr, epochs"),
    (_row("m", "d", 0.78, proto="differs (selection validation≠best test epoch)"), "†",
     "† deviates: selection validation≠best test epoch"),
    (_row("m", "d", 0.78, devs="loss_weights.ial_weight 0.2≠0.1", proto="differs (classes 8≠7); not stated (tta)",
          recon="architecture; lr; epochs; batch_size; optimizer; tta"), "†‡§",
     "§ reconstructed: architecture, lr, epochs, batch_size + 2 more"),
])
def test_each_mark_says_why_a_difference_is_not_a_reproduction(row, marks, note):
    s = lb.summarise(pd.DataFrame([row]), PAPERS).iloc[0]
    assert s["marks"] == marks and note in s["notes"]
    assert bool(s["reproduction"]) == (marks == "")
    table = lb.markdown_table(lb.summarise(pd.DataFrame([row]), PAPERS))
    assert f"| -2.00 {marks} |".replace("  ", " ") in table


def test_an_older_row_without_reconstructed_counts_every_deviation_as_published():
    row = _row("m", "d", 0.78, devs="epochs 1≠70")
    del row["reconstructed"]
    assert lb.summarise(pd.DataFrame([row]), PAPERS).iloc[0]["marks"] == "†"


def test_a_baseline_anchor_is_shown_with_its_source_and_only_for_its_class_count():
    s = lb.summarise(pd.DataFrame([_row("b", "d", 0.72), _row("b[8]", "d", 0.6, classes=8)]), PAPERS)
    seven, eight = s.iloc[0], s.iloc[1]
    assert lb.paper_cell(seven, "war") == "70.00 (DACL)" and lb.diff_cell(seven, "war") == "2.00"
    assert pd.isna(eight["paper_war"]) and lb.diff_cell(eight, "war") == ""


def test_leaderboard_show_and_readme_print_the_marks_and_the_legend(tmp_path):
    """A constructed all-reconstructed cell shows the reconstruction mark in every place a reader looks."""
    boards = tmp_path / "boards"
    (boards / "s").mkdir(parents=True)
    lb.write_papers_csv(boards)
    rows = [_row("multiscale_ccl", "rafdb", 0.85, proto=paper_protocol(METHODS.get("multiscale_ccl"), "rafdb", 7),
                 recon="; ".join(METHODS.get("multiscale_ccl").recipe().reconstructed())),
            _row("resnet18_pretrained", "rafdb", 0.86, proto="differs (selection validation≠best test epoch)",
                 recon="face_crop")]
    lb.write_version(boards / "s", rows)
    readme = lb.write_readme(boards / "s", "s").read_text()
    assert "| -4.63 ‡§ |" in readme and "| -0.54 †§ |" in readme and "86.54 (DACL)" in readme
    for mark in ("†", "‡", "§"):
        assert f"- {mark} = " in readme
    proc = run_cli("leaderboard", "show", "s", "--leaderboards", str(boards), timeout=120)
    assert "-4.63 ‡§" in proc.stdout and "-0.54 †§" in proc.stdout and "86.54 (DACL)" in proc.stdout
    assert "‡ paper protocol not stated: classes, split, folds, tta, selection" in proc.stdout
    assert "§ = a recipe field the number depends on is fer_bench's reconstruction" in proc.stdout
    from fer_bench.bench.page import write_page

    page = write_page(boards / "s", "s").read_text()
    assert "‡§" in page and "§ reconstructed: architecture" in page


def test_papers_csv_is_generated_from_the_metafiles_with_each_numbers_protocol(tmp_path, repo):
    df = pd.read_csv(lb.write_papers_csv(tmp_path))
    expected = sum(len(r.values) for _, c in METHODS.items() for r in c.metafile().reported)
    assert len(df) == expected
    anchor = df[(df.method == "resnet18_pretrained") & (df.dataset == "affectnet")]
    assert anchor[["classes", "metric", "value", "kind", "by"]].values.tolist() == [[7, "war", 63.86, "anchor", "DACL"]]
    assert "selection=best test epoch [published]" in anchor["protocol"].iloc[0]
    assert not ((df.method == "resnet18_lstm") & (df.dataset == "dfew")).any()
    committed = pd.read_csv(repo / "leaderboards/papers.csv")
    key = ["method", "dataset", "metric"]
    assert committed.sort_values(key).reset_index(drop=True).equals(df.sort_values(key).reset_index(drop=True))


# -- initialisation ------------------------------------------------------------------------------
def _weights_file(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}}, folder / name)


def test_paper_init_uses_the_recipes_weights_or_an_alternative_or_skips(tmp_path, monkeypatch, repo):
    jobs = [j for j in load_suite(repo / "benchmarks" / "static.yaml").jobs
            if j.method in ("resnet18_pretrained", "angular_sknet") and j.dataset == "rafdb" and j.seed == 0]
    monkeypatch.setenv("FER_WEIGHTS", str(tmp_path))
    said = []
    assert len(with_paper_init(jobs, "required", said.append)) == 1  # angular_sknet only: its recipe is scratch
    assert said and "msceleb-resnet18" in said[0] and "\n" not in said[0]
    default = with_paper_init(jobs, "if-available", said.append)
    pre = next(j for j in default if j.method == "resnet18_pretrained")
    assert "init scratch≠msceleb-resnet18" in resolve(pre.config()).deviations
    # torchvision's ImageNet file is checked against its pinned digest: a stand-in is refused, so no fallback
    (tmp_path / "resnet18-f37072fd.pth").write_bytes(b"not the torchvision file")
    assert not with_paper_init(jobs, "if-available")[0].settings.get("weights")
    _weights_file(tmp_path, "resnet18_msceleb.pth")
    used = with_paper_init(jobs, "required", said.append)
    pre = next(j for j in used if j.method == "resnet18_pretrained")
    assert pre.settings["weights"] == "msceleb-resnet18"
    assert not any(d.startswith("init") for d in resolve(pre.config()).deviations)
    assert with_paper_init(jobs, "never") == jobs


def test_the_imagenet_alternative_is_taken_and_recorded(tmp_path, monkeypatch, repo):
    import fer_bench.weights as W

    monkeypatch.setenv("FER_WEIGHTS", str(tmp_path))
    _weights_file(tmp_path, "resnet18-f37072fd.pth")
    monkeypatch.setattr(W.WEIGHTS.get("imagenet-resnet18"), "sha256", None)  # the stand-in file passes
    job = next(j for j in load_suite(repo / "benchmarks" / "static.yaml").jobs
               if j.method == "resnet18_pretrained" and j.dataset == "rafdb")
    (used,) = with_paper_init([job], "required")
    assert used.settings["weights"] == "imagenet-resnet18"
    assert "init imagenet-resnet18≠msceleb-resnet18" in resolve(used.config()).deviations


def test_the_old_resnet18_name_resolves_to_the_same_network(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ncells:\n  - {method: resnet18, dataset: synthetic-static}\n")
    (job,) = load_suite(suite).jobs
    assert job.method == "resnet18_pretrained" and "resnet18" not in METHODS.names()
    old = METHODS.get("resnet18")(in_chans=1, input_size=48)  # the former row's network loads its checkpoints
    assert set(old.state_dict()) == set(METHODS.get("resnet18_pretrained")(in_chans=1, input_size=48).state_dict())


def test_bad_job_weights_name_is_refused_at_suite_load(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ncells:\n  - {method: resnet18_cifar, dataset: synthetic-static, weights: nope}\n")
    with pytest.raises(UserError, match="nope"):
        load_suite(suite)
    assert Job("resnet18_cifar", "synthetic-static", None, 0).config().weights is None


def test_fields_list_is_the_documented_one():
    assert "selection" not in FIELDS  # how a number's checkpoint was chosen is a protocol item of that number
    assert {"resize", "grad_clip", "train_frames", "short_clips", "architecture"} <= set(FIELDS)
