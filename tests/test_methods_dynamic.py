"""``ial_gca`` (IAL + GCA, Li et al. AAAI 2023) and ``gcsa_cai`` (its GCSA/CAI reconstruction)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from fer_bench.classes import CANONICAL_CLASSES_8
from fer_bench.methods import METHODS
from fer_bench.methods.base import count_params
from fer_bench.methods.ial_gca import GCSACAI, IALGCA

from conftest import run_cli

DYNAMIC = ["ial_gca", "gcsa_cai"]

#: parameter counts at 3x112x112, 7 classes
PARAMS_112 = {"ial_gca": 18_936_775, "gcsa_cai": 18_947_423}
#: the official GCA_IAL model (modules.py + final_model.py) has 19,083,527 parameters, of which
#: 146,752 are created but never used in forward: ResNet.bias (64); layer1's bias1/bias2 (128),
#: AUX_fc (64*128 + 128*7), glb (64*64), gc (64*28*28), fc1/fc2 (2*256); layer2's bias1/bias2
#: (256) and glb (128*128); layer3's bias1/bias2 (512) and glb (256*256)
OFFICIAL_PARAMS, OFFICIAL_UNUSED = 19_083_527, 64 + 128 + 9_088 + 4_096 + 50_176 + 512 + 256 + 16_384 + 512 + 65_536


def _small(name: str, **kw):
    return METHODS.get(name).from_defaults(input_size=32, **kw)


def test_registered_with_metafiles():
    ial, gcsa = METHODS.get("ial_gca"), METHODS.get("gcsa_cai")
    assert ial is IALGCA and gcsa is GCSACAI
    assert ial.modality == gcsa.modality == "dynamic"
    im, gm = ial.metafile(), gcsa.metafile()
    assert {r.dataset: r.values for r in im.reported} == {"dfew": {"war": 69.24, "uar": 55.71},
                                                         "ferv39k": {"war": 48.54, "uar": 35.82}}
    assert im.reconstructed is False and "official code" in im.fidelity and im.code
    assert gm.reported == () and gm.reconstructed is True
    assert gm.doi == "10.19573/j.issn2095-0926.202403009"
    assert gm.fidelity.startswith("Reconstruction")
    # the official code has no FERV39K loader: every field is our assumption there
    assert "architecture" in im.recipe.for_dataset("ferv39k").reconstructed()
    assert im.recipe.for_dataset("dfew").reconstructed() == ["face_crop", "epochs"]


@pytest.mark.parametrize("name", DYNAMIC)
def test_default_recipe_is_the_official_one(name):
    model = METHODS.get(name).from_defaults(input_size=32)
    hp = model.hparams
    assert (hp.optimizer, hp.lr, hp.momentum, hp.weight_decay) == ("sgd", 1e-3, 0.9, 0.1)
    assert (hp.scheduler, hp.step_size, hp.gamma) == ("step", 7, 0.5)
    assert METHODS.get(name).recipe().value("batch_size") == 40  # the run's batch, from the recipe
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["weight_decay"] == 0.1
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and (sched.step_size, sched.gamma) == (7, 0.5)
    weights = (hp.aux2_weight, hp.aux3_weight, hp.ial_weight)
    assert weights == ((0.05, 0.0, 0.1) if name == "ial_gca" else (0.05, 0.05, 0.1))


@pytest.mark.parametrize("name", DYNAMIC)
def test_forward_on_default_input_and_param_count(name):
    model = METHODS.get(name).from_defaults().eval()
    assert (model.in_chans, model.input_size) == (3, 112)
    net = model.net
    assert net.map_sizes == {"layer1": 28, "layer2": 14, "layer3": 7}
    assert tuple(net.layer2.attention.gc.weight.shape) == (128, 1, 14, 14)  # official kernel 256//128*7
    assert tuple(net.layer3.attention.gc.weight.shape) == (256, 1, 7, 7)
    assert net.feature_dim == 4096 and tuple(net.fc.weight.shape) == (7, 4096)  # official Linear(256*4*4, 7)
    with torch.no_grad():
        logits = model(torch.rand(1, 16, 3, 112, 112))
    assert tuple(logits.shape) == (1, 7) and torch.isfinite(logits).all()
    n = count_params(model)
    assert n == PARAMS_112[name]
    if name == "ial_gca":
        assert n + OFFICIAL_UNUSED == OFFICIAL_PARAMS
    else:  # GCSA adds an SE branch (conv1x1 with bias C->C/16->C) in layer2 and layer3
        se = sum(c * (c // 16) + c // 16 + (c // 16) * c + c for c in (128, 256))
        assert n - PARAMS_112["ial_gca"] == se == 10_648


@pytest.mark.parametrize("name", DYNAMIC)
def test_grey_other_classes_and_frame_counts(name):
    model = _small(name, in_chans=1, num_classes=8, classes=list(CANONICAL_CLASSES_8)).eval()
    with torch.no_grad():
        for t in (2, 4, 20):  # T-1 = 19 steps > the 16-row position table: interpolated
            assert tuple(model(torch.rand(2, t, 1, 32, 32)).shape) == (2, 8)
        out = model.training_outputs(torch.rand(3, 4, 1, 32, 32), torch.tensor([0, 7, 3]))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"logits": (3, 8), "aux_layer2": (3, 8), "aux_layer3": (3, 8)}
    with pytest.raises(ValueError, match=r"built for 32x32 frames .* build with input_size=48"):
        model(torch.rand(1, 4, 1, 48, 48))
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.rand(1, 1, 1, 32, 32))
    with pytest.raises(ValueError, match="1-channel frames, got 3"):
        model(torch.rand(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"clips \[B, T, C, H, W\]"):
        model(torch.rand(4, 1, 32, 32))


@pytest.mark.parametrize("name,aux3", [("ial_gca", 0.0), ("gcsa_cai", 0.05)])
def test_loss_is_ce_plus_aux_plus_ial(name, aux3):
    model = _small(name)
    logits = torch.tensor([[2.0, 0.5, 1.0, 0, 0, 0, 0], [0.0, 3.0, 1.0, 2.5, 0, 0, 0]])
    a2 = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 2.0]])
    a3 = torch.tensor([[0.0, 0, 0, 0, 0, 0, 3.0], [0, 1.0, 0, 0, 0, 0, 0]])
    y = torch.tensor([0, 3])
    total, parts = model.compute_loss({"logits": logits, "aux_layer2": a2, "aux_layer3": a3}, y)
    ce, c2, c3 = F.cross_entropy(logits, y), F.cross_entropy(a2, y), F.cross_entropy(a3, y)
    # IAL: row 0 y=0 (2.0) vs j=2 (1.0); row 1 y=3 (2.5) vs j=1 (3.0)
    ial = (torch.log1p(torch.exp(torch.tensor(-1.0))) + torch.log1p(torch.exp(torch.tensor(0.5)))) / 2
    assert parts["ial"].item() == pytest.approx(ial.item(), abs=1e-6)
    assert total.item() == pytest.approx((ce + 0.05 * c2 + aux3 * c3 + 0.1 * ial).item(), abs=1e-6)
    assert set(parts) == {"ce", "aux_layer2", "aux_layer3", "ial"}
    soft = F.one_hot(y, 7).float() * 0.8 + 0.2 / 7  # soft targets: CE soft, IAL on the argmax
    total_soft, parts_soft = model.compute_loss({"logits": logits, "aux_layer2": a2, "aux_layer3": a3}, soft)
    assert parts_soft["ial"].item() == pytest.approx(ial.item(), abs=1e-6)
    assert torch.isfinite(total_soft)


@pytest.mark.parametrize("name", DYNAMIC)
def test_every_parameter_gets_a_gradient(name):
    """DDP (find_unused_parameters=False) needs every parameter in the graph; the official
    code keeps the layer3 auxiliary CE with weight 0 for the same reason."""
    model = _small(name).train()
    x, y = torch.rand(2, 3, 3, 32, 32), torch.tensor([1, 5])
    loss, _ = model.compute_loss(model.training_outputs(x, y), y)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", DYNAMIC)
def test_overfits_a_tiny_batch(name):
    from fer_bench.synth import make_clips

    torch.manual_seed(0)
    clips, labels, _, _ = make_clips(2, seed=5, size=32, frames=4)
    x = torch.from_numpy(clips[:8]).permute(0, 1, 4, 2, 3).float() / 255.0  # [8, 4, 3, 32, 32]
    y = torch.from_numpy(labels[:8])
    model = _small(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss, _ = model.compute_loss(model.training_outputs(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 4))
    assert losses[-1] < losses[0] / 10, losses
    with torch.no_grad():  # train-mode BatchNorm: 10 steps are too few for the running statistics
        assert torch.equal(model(x).argmax(1), y)


@pytest.mark.slow
@pytest.mark.parametrize("name", DYNAMIC)
def test_trains_under_two_process_cpu_ddp(name, tmp_path):
    out = tmp_path / name
    run_cli("train", "--method", name, "--dataset", "synthetic-dynamic", "--devices", "2", "--accelerator", "cpu",
            "--max-epochs", "1", "--limit-per-class", "2", "--batch-size", "4", "--input-size", "32",
            "-d", "frames=4", "--no-progress", "--out", str(out),
            # render only the clips that --limit-per-class keeps (2 per class and split)
            "-d", "train_per_class=2", "-d", "val_per_class=2", "-d", "test_per_class=2")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["method"] == name
    assert 0.0 <= metrics["war"] <= 1.0 and 0.0 <= metrics["uar"] <= 1.0
    assert metrics["n_test"] == 14  # 2 clips per class
    assert metrics["params"] == count_params(_small(name))
