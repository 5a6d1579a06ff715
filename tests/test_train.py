import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import yaml

from fer_bench.train import TrainConfig, build, run

from conftest import run_cli

TINY = {"train_per_class": 10, "val_per_class": 4, "test_per_class": 7}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", max_epochs=2, batch_size=16, input_size=32,
                      progress=False, out=str(out), data_args=TINY, seed=3)
    return cfg, run(cfg), out


def test_train_writes_valid_metrics_json(tiny_run):
    cfg, result, out = tiny_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (70, 28, 49)
    cm = np.array(m["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 49 and (cm.sum(1) == 7).all()
    assert m["war"] == pytest.approx(np.trace(cm) / 49)
    recall = [m["per_class_recall"][c] for c in m["classes"]]
    assert recall == pytest.approx(list(np.diag(cm) / 7))
    assert m["uar"] == pytest.approx(np.mean(recall))
    assert m["best_epoch"] in (0, 1) and m["seed"] == 3 and m["selection"] == "val/war"
    assert m["skipped_files"] == []
    assert Path(m["checkpoint"]).exists() and Path(m["checkpoint"]).parent == out / "checkpoints"
    assert (out / "confusion.png").stat().st_size > 1000
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert conf["run"]["method"] == "resnet18_pretrained" and conf["hparams"]["input_size"] == 32
    assert conf["protocol"]["input_size"] == 32
    assert (out / "logs" / "metrics.csv").exists()


def test_checkpoint_chosen_on_validation_not_test(tiny_run):
    cfg, result, out = tiny_run
    rows = [l.split(",") for l in (out / "logs" / "metrics.csv").read_text().splitlines()]
    head = rows[0]
    vals = [(int(r[head.index("epoch")]), float(r[head.index("val/war")])) for r in rows[1:] if r[head.index("val/war")]]
    best = max(vals, key=lambda t: t[1])[1]
    assert result["best_val"] == pytest.approx(best, abs=1e-6)
    assert dict(vals)[result["best_epoch"]] == pytest.approx(best, abs=1e-6)


def _single_process_eval(cfg_kwargs: dict, ckpt: str) -> dict:
    from fer_bench.methods import METHODS

    cfg = TrainConfig(**cfg_kwargs)
    dm, _ = build(cfg)
    model = METHODS.get(cfg.method).load_from_checkpoint(ckpt, map_location="cpu")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.test(model, datamodule=dm, verbose=False)
    return model.test_scores.as_dict()


@pytest.mark.slow
def test_two_process_ddp_train_matches_single_process_eval(tmp_path):
    out = tmp_path / "ddp"
    args = ["train", "--method", "resnet18_pretrained", "--dataset", "synthetic-static", "--devices", "2", "--accelerator",
            "cpu", "--max-epochs", "1", "--batch-size", "8", "--input-size", "32", "--no-progress", "--seed", "1",
            "--out", str(out)] + [a for k, v in TINY.items() for a in ("-d", f"{k}={v}")]
    proc = run_cli(*args)
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2
    assert m["n_test"] == 49  # odd: a DistributedSampler pads one duplicate
    assert "WAR" in proc.stdout and "UAR" in proc.stdout
    ref = _single_process_eval(dict(method="resnet18_pretrained", dataset="synthetic-static", input_size=32, seed=1,
                                    data_args=TINY), m["checkpoint"])
    assert ref["n_evaluated"] == 49
    assert m["war"] == pytest.approx(ref["war"], abs=1e-6)
    assert m["uar"] == pytest.approx(ref["uar"], abs=1e-6)
    assert m["confusion"] == ref["confusion"]
    # the predictions file holds each of the 49 test samples once (the padded duplicate dropped)
    preds = np.load(out / "predictions.npz")
    assert sorted(preds["index"].tolist()) == list(range(49))
    assert float((preds["label"] == preds["pred"]).mean()) == pytest.approx(m["war"], abs=1e-12)


def test_unknown_names_list_the_valid_ones():
    proc = run_cli("train", "--method", "resnet19", "--dataset", "synthetic-static", check=False)
    assert proc.returncode == 2
    assert "unknown method 'resnet19'" in proc.stderr and "resnet18" in proc.stderr
    proc = run_cli("train", "--method", "resnet18_pretrained", "--dataset", "fer2014", check=False)
    assert proc.returncode == 2 and "synthetic-static" in proc.stderr


def test_modality_mismatch_is_a_clear_error():
    proc = run_cli("train", "--method", "resnet18_lstm", "--dataset", "synthetic-static", check=False)
    assert proc.returncode == 2 and "dynamic" in proc.stderr and "static" in proc.stderr


def test_list_json_has_every_method_and_dataset():
    from fer_bench.data import DATASETS
    from fer_bench.methods import METHODS

    proc = run_cli("list", "--json")
    cat = json.loads(proc.stdout)
    names = {m["name"]: m for m in cat["methods"]}
    assert set(names) == set(METHODS.names())
    assert {d["name"] for d in cat["datasets"]} == set(DATASETS.names())
    assert names["resnet18_pretrained"]["params"] == 11_180_103  # torchvision resnet18, RGB stem, 7 classes
    assert [(r["dataset"], r["uar"], r["war"]) for r in names["resnet18_lstm"]["reported"]] == [("ferv39k", 30.92, 42.59)]
    for m in cat["methods"]:
        assert m["params"] > 0 and m["modality"] in ("static", "dynamic") and m["citation"]
    syn = next(d for d in cat["datasets"] if d["name"] == "synthetic-static")
    assert syn["classes"][0] == "angry" and syn["modality"] == "static"
    table = run_cli("list").stdout
    assert "resnet18_lstm" in table and "synthetic-dynamic" in table
