"""A trained job's bundle: what it holds, that it reads with weights_only and checks its weights,
that a fresh process reproduces the run's test predictions from it alone, and `fer-bench export`."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from fer_bench.bundle import BUNDLE_FILE, FORMAT, read_bundle, weights_sha256
from fer_bench.errors import DataFormatError

from conftest import REPO, run_cli

# the run's test split rebuilt from what the bundle says, each raw image through the bundle's own transform
# and the bundle's model: the probabilities predictions.npz holds for each test sample, in its order
FRESH = """
import json, sys
import numpy as np, torch
from fer_bench.bundle import read_bundle
from fer_bench.data import DATASETS
from fer_bench.evaluation import load_predictions
bundle = read_bundle(sys.argv[1])
m, p = bundle.meta, bundle.meta["preprocessing"]
dm = DATASETS.get(m["dataset"])(None, seed=m["seed"], fold=m["fold"], limit_per_class=m["protocol"]["limit_per_class"],
                               input_size=p["input_size"], in_chans=p["in_chans"])
dm.setup("test")
split, model, transform = dm.splits["test"], bundle.model(), bundle.transform()
saved = load_predictions(sys.argv[2])
with torch.inference_mode():
    x = torch.stack([transform(split.base[int(split.indices[i])][0]) for i in saved["index"]])
    probs = torch.softmax(model.test_forward(x), dim=1).numpy()
print(json.dumps({"max_diff": float(np.abs(probs - saved["probs"]).max()),
                  "same_pred": bool((probs.argmax(1) == saved["pred"]).all()), "n": len(probs),
                  "classes": bundle.classes == list(saved["classes"])}))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "run"
    proc = run_cli("train", "--method", "resnet18_cifar", "--dataset", "synthetic-static", "--max-epochs", "2",
                   "--limit-per-class", "4", "--input-size", "24", "--tta", "hflip", "--out", str(out))
    (out / "console.txt").write_text(proc.stdout + proc.stderr)  # the progress display (Lightning: stdout)
    return out


def test_the_progress_display_names_the_run_its_epoch_and_the_validation_scores(run):
    text = (run / "console.txt").read_text()
    assert "resnet18_cifar/synthetic-static seed 0: epoch 1/2" in text
    assert "resnet18_cifar/synthetic-static seed 0: epoch 2/2" in text
    shown = re.findall(r"val WAR=(\d+\.\d)", text)
    war = json.loads((run / "metrics.json").read_text())["best_val"]
    assert shown and all(0 <= float(v) <= 100 for v in shown)  # per cent, one decimal
    assert war is not None and "v_num" not in text


def test_every_run_writes_a_bundle_that_describes_how_to_feed_its_model(run):
    metrics = json.loads((run / "metrics.json").read_text())
    path = run / "checkpoints" / BUNDLE_FILE
    assert metrics["bundle"] == str(path) and path.is_file()
    raw = torch.load(path, weights_only=True)  # no pickle of arbitrary objects: a plain torch load works
    assert raw["format"] == FORMAT and set(raw) == {"format", "meta", "state_dict"}
    b = read_bundle(path)
    assert b.meta["method"] == "resnet18_cifar" and b.meta["dataset"] == "synthetic-static"
    assert b.classes == metrics["classes"] and len(b.classes) == 7
    p = b.meta["preprocessing"]
    assert (p["input_size"], p["in_chans"], p["tta"], p["normalization"]) == (24, 3, "hflip", "none")
    assert b.meta["scores"]["war"] == metrics["war"] and b.meta["scores"]["uar"] == metrics["uar"]
    assert b.meta["weights_sha256"] == weights_sha256(raw["state_dict"]) and len(b.meta["git_commit"]) in (0, 40)
    assert b.meta["face_crop"]["template"]


def test_a_fresh_process_reproduces_the_runs_test_predictions_from_the_bundle_alone(run):
    proc = subprocess.run([sys.executable, "-c", FRESH, str(run / "checkpoints" / BUNDLE_FILE),
                           str(run / "predictions.npz")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["n"] == 28 and got["classes"] and got["same_pred"]
    assert got["max_diff"] < 1e-5, got


def test_a_changed_weight_or_a_foreign_file_is_refused_naming_the_file(run, tmp_path):
    raw = torch.load(run / "checkpoints" / BUNDLE_FILE, weights_only=True)
    key = next(k for k, v in raw["state_dict"].items() if v.is_floating_point())
    raw["state_dict"][key] = raw["state_dict"][key] + 1e-3
    torch.save(raw, tmp_path / "edited.pt")
    with pytest.raises(DataFormatError, match=r"edited\.pt.*the weights were changed"):
        read_bundle(tmp_path / "edited.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(DataFormatError, match=r"plain\.pt.*expected a fer_bench bundle"):
        read_bundle(tmp_path / "plain.pt")


def test_export_writes_the_same_bundle_from_a_run_folder_or_its_checkpoint(run, tmp_path):
    run_cli("export", str(run), "--out", str(tmp_path / "a.pt"))
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    run_cli("export", str(ckpt), "--out", str(tmp_path / "b.pt"))
    a, b, orig = (read_bundle(p) for p in (tmp_path / "a.pt", tmp_path / "b.pt", run / "checkpoints" / BUNDLE_FILE))
    assert a.meta["weights_sha256"] == b.meta["weights_sha256"] == orig.meta["weights_sha256"]
    assert a.meta["preprocessing"] == orig.meta["preprocessing"] and a.classes == orig.classes
    bad = run_cli("export", str(tmp_path / "nowhere"), check=False)
    assert bad.returncode == 2 and "nowhere" in bad.stderr and "expected a run folder" in bad.stderr


def test_predict_on_a_folder_counts_the_corrupt_file_and_keeps_the_others(run, tmp_path):
    from fer_bench.data.io import write_image, write_mp4
    from fer_bench.synth.samples import make_clips, make_static

    images, _, _ = make_static(1, seed=3, size=48, rgb=True)
    clips, _, _, _ = make_clips(1, seed=3, size=64, rgb=True, frames=6)  # decord misreads 48 px wide mp4v
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "face.png", images[0])
    write_mp4(folder / "clip.mp4", clips[0])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    proc = run_cli("predict", "--model", str(run / "checkpoints" / BUNDLE_FILE), str(folder), "--no-detect",
                   "--out", str(tmp_path / "out.csv"), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "broken.jpg" in proc.stderr and "not an image OpenCV can decode" in proc.stderr
    assert "2 of 3 inputs predicted, 1 failed" in proc.stderr
    import pandas as pd

    df = pd.read_csv(tmp_path / "out.csv")
    probs = df[[c for c in df.columns if c.startswith("p_")]].to_numpy()
    assert [c[2:] for c in df.columns if c.startswith("p_")] == read_bundle(run / "checkpoints" / BUNDLE_FILE).classes
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert set(df.input.map(lambda p: p.rsplit("/", 1)[-1])) == {"face.png", "clip.mp4"}
    frames = df[df.kind == "frame"]
    assert sorted(frames.frame) == list(range(6)) and (df.kind == "video").sum() == 1
    summary = df[df.kind == "video"].iloc[0]
    assert summary.n == 6 and np.allclose(probs[df.kind == "video"][0], probs[df.kind == "frame"].mean(0), atol=1e-5)
    face = df[df.kind == "image"].iloc[0]
    assert (face.x0, face.y0, face.x1, face.y1) == (0, 0, 48, 48)  # --no-detect: the whole image


def test_predict_finds_the_face_of_a_photograph(run, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    from fer_bench.data.io import write_image

    write_image(tmp_path / "astronaut.png", skimage_data.astronaut())  # NASA, public domain: one frontal face
    proc = run_cli("predict", "--model", str(run / "checkpoints" / BUNDLE_FILE), str(tmp_path / "astronaut.png"),
                   "--out", str(tmp_path / "out.json"))
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["face"] == 0 and r["detector_score"] > 0.9
    assert 100 < (r["x0"] + r["x1"]) / 2 < 300 and 30 < (r["y0"] + r["y1"]) / 2 < 250  # her face, upper middle
    probs = [r[f"p_{c}"] for c in read_bundle(run / "checkpoints" / BUNDLE_FILE).classes]
    assert abs(sum(probs) - 1) < 1e-4 and r["class"] in read_bundle(run / "checkpoints" / BUNDLE_FILE).classes
    assert "1 of 1 inputs predicted, 0 failed" in proc.stdout
