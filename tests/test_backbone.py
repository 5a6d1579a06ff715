"""The `backbone` baseline: any timm or torchvision classifier, named, with a grey stem, its own input size
and normalisation, weights only from a local file, nothing downloaded.  Tiny backbones from scratch."""
from __future__ import annotations

import socket

import pytest
import timm
import torch
import torchvision

from fer_bench.errors import UserError
from fer_bench.methods import METHODS
from fer_bench.methods.backbone import no_downloads, parse_backbone
from fer_bench.resolve import resolve
from fer_bench.settings import TrainConfig
from fer_bench.validation import validate

from conftest import run_cli

Backbone = METHODS.get("backbone")
TINY = ["timm/resnet10t", "timm/test_vit", "torchvision/resnet18"]


def _model(spec: str, in_chans: int, size: int = 32, num_classes: int = 7):
    return Backbone.from_defaults(backbone=spec, in_chans=in_chans, input_size=size, num_classes=num_classes)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(method="backbone", dataset="synthetic-static", **kw)


@pytest.mark.parametrize("spec", TINY)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_logits_for_grey_and_rgb_input(spec, in_chans):
    model = _model(spec, in_chans).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, in_chans, 32, 32))
    assert logits.shape == (2, 7)
    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == in_chans


def test_timm_grey_stem_is_the_sum_of_a_local_files_rgb_filters(tmp_path):
    rgb = timm.create_model("resnet10t", pretrained=False)  # 1000 classes, as a released file
    path = tmp_path / "resnet10t.pth"
    torch.save(rgb.state_dict(), path)
    model = _model("timm/resnet10t", in_chans=1)
    report = model.load_weights(str(path))
    assert report["adapted"] == ["conv1.0.weight"] and report["missing"] == ["fc.bias", "fc.weight"]
    assert torch.allclose(model.backbone.conv1[0].weight, rgb.conv1[0].weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.layer4[0].conv2.weight, rgb.layer4[0].conv2.weight)
    assert model.backbone.fc.out_features == 7


def test_timm_reads_a_safetensors_file_into_an_rgb_stem(tmp_path):
    from safetensors.torch import save_file

    rgb = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "model.safetensors"
    save_file(rgb.state_dict(), str(path))
    model = _model("timm/resnet10t", in_chans=3)
    assert model.load_weights(str(path))["adapted"] == []
    assert torch.equal(model.backbone.conv1[0].weight, rgb.conv1[0].weight)


def test_torchvision_grey_stem_is_the_sum_of_a_local_files_rgb_filters(tmp_path):
    rgb = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    model = _model("torchvision/resnet18", in_chans=1)
    report = model.load_weights(str(path))
    assert report["adapted"] == ["conv1.weight"] and report["shape_mismatch"] == ["fc.bias", "fc.weight"]
    assert torch.allclose(model.backbone.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


@pytest.mark.parametrize("spec", ["timm/convnxt_tiny", "timm/convnext_tiny.no_such_tag", "torchvision/resnet51",
                                  "resnet18", "keras/resnet50", "timm/hf-hub:timm/resnet10t.c3_in1k"])
def test_an_unknown_backbone_is_refused_naming_it(spec):
    with pytest.raises(UserError) as e:
        validate(_cfg(method_args={"backbone": spec}))
    msg = str(e.value)
    assert "\n" not in msg and repr(spec) in msg and "list_models" in msg
    with pytest.raises(UserError, match="list_models"):
        parse_backbone(spec)


def test_the_command_line_refuses_an_unknown_backbone_with_exit_2():
    proc = run_cli("train", "--method", "backbone", "-m", "backbone=timm/convnxt_tiny", "--dataset", "synthetic-static",
                   check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "convnxt_tiny" in proc.stderr and "list_models" in proc.stderr and "Traceback" not in proc.stderr


def test_the_run_takes_the_backbones_own_input_size_and_normalisation():
    r = resolve(_cfg(method_args={"backbone": "timm/resnet10t"}))  # pretrained_cfg: 176 px, ImageNet mean/std
    assert (r.input_size, r.data_args["normalization"], r.deviations) == (176, "imagenet", ())
    assert {"input_size", "normalization"} <= set(r.reconstructed)
    assert resolve(_cfg(method_args={"backbone": "torchvision/inception_v3"})).input_size == 299
    assert resolve(_cfg()).input_size == 224  # the default, torchvision/resnet18
    smaller = resolve(_cfg(method_args={"backbone": "timm/resnet10t"}, input_size=48))
    assert smaller.input_size == 48 and smaller.deviations == ("input_size 48≠176",)


def test_a_mean_and_std_of_no_named_normalisation_is_refused_unless_chosen():
    vit = {"backbone": "timm/test_vit"}  # mean 0.5, std 0.5
    with pytest.raises(UserError, match=r"test_vit.*-d normalization=NAME"):
        resolve(_cfg(method_args=vit))
    r = resolve(_cfg(method_args=vit, data_args={"normalization": "imagenet"}))
    assert r.input_size == 160 and r.deviations == ("normalization imagenet≠mean(0.5,0.5,0.5)std(0.5,0.5,0.5)",)
    # a named normalisation with those statistics is taken by its name
    recipe = Backbone.adapt_recipe(Backbone.recipe(), vit, {}, {"imagenet": None, "half": ((0.5,) * 3, (0.5,) * 3)})
    assert recipe.value("normalization") == "half" and "test_vit" in recipe.fields["normalization"].source


@pytest.fixture
def offline(monkeypatch):
    """Every way out refused: sockets, timm's and torch.hub's downloads, the hub client."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network access was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import huggingface_hub
    import timm.models._builder as builder

    for name in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file"):
        monkeypatch.setattr(builder, name, refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


def test_a_run_with_a_local_weights_file_builds_and_trains_without_the_network(tmp_path, offline):
    from fer_bench.train import build, run

    path = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), path)
    cfg = _cfg(method_args={"backbone": "timm/resnet10t"}, weights=str(path), input_size=32, in_chans=1,
               max_epochs=1, batch_size=8, data_args={"train_per_class": 4, "val_per_class": 2, "test_per_class": 2},
               out=str(tmp_path / "run"), progress=False, num_workers=0)
    r = resolve(cfg)
    assert r.actual["init"] == "resnet10t.pth" and "init resnet10t.pth≠scratch" in r.deviations
    _, model = build(cfg)
    assert torch.allclose(model.backbone.conv1[0].weight.sum(), torch.load(path)["conv1.0.weight"].sum(), atol=1e-4)
    metrics = run(cfg)
    assert 0.0 <= metrics["war"] <= 1.0 and metrics["n_test"] == 14


def test_timm_is_never_asked_to_download():
    """The guard the method loads weights under: a pre-trained timm model without a file cannot fetch one."""
    with no_downloads(), pytest.raises(RuntimeError, match="never downloads"):
        timm.create_model("resnet10t", pretrained=True)
    with pytest.raises(UserError, match="no such file"):
        _model("timm/resnet10t", in_chans=3).load_weights("/nonexistent/resnet10t.pth")
