"""The four static paper methods as LightningModules: registration and paper records, shapes
on grey/RGB inputs of several sizes, margin-free evaluation logits, soft targets, overfitting
a tiny batch through a real Trainer, the TCL centres' own optimiser, DropBlock/dropout in
train vs eval, and 2-process CPU DDP training through the command line."""
from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fer_bench.methods import METHODS
from fer_bench.nn.losses import ArcFaceLoss, CosFaceLoss
from fer_bench.synth import make_static

from conftest import run_cli

STATIC = ["angular_sknet", "stn_cbam_gelu", "tcl_selective", "multiscale_ccl"]
# narrower VGG-like widths keep the CPU overfit tests fast; the code path is the same
SMALL = {"angular_sknet": dict(widths=(16, 32, 64, 128)), "stn_cbam_gelu": dict(widths=(16, 32, 64, 128)),
         "tcl_selective": {}, "multiscale_ccl": {}}
CENTRES = {"angular_sknet": "center_loss.centers", "multiscale_ccl": "center_loss.centers",
           "tcl_selective": "tcl.centers"}


def tiny_batch(rgb: bool, size: int = 32, per_class: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic faces in [0, 1], one (or ``per_class``) per class, canonical labels."""
    x, y, _ = make_static(per_class, seed=3, size=size, rgb=rgb)
    x = torch.from_numpy(x).float() / 255
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous(), torch.from_numpy(y)


def loss_now(model, x, y):
    with torch.no_grad():
        return model.compute_loss(model.training_outputs(x, y), y)


def fit(model, x, y, **trainer_kwargs):
    ds = TensorDataset(x, y, torch.arange(len(y)))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(model, DataLoader(ds, batch_size=len(y), shuffle=False))
    return trainer


def recalibrate_bn(model, x) -> None:
    """Replace BN running statistics by this batch's (a few Adam steps leave them far behind)."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        model.training_outputs(x, torch.zeros(len(x), dtype=torch.long))


# ------------------------------------------------------------------------------------- registry
def test_registered_with_metafiles():
    expected = {
        "angular_sknet": (48, 1, {"ckplus": {"war": 97.88}, "fer2013": {"war": 72.81}}),
        "stn_cbam_gelu": (48, 1, {}),
        "tcl_selective": (224, 3, {}),
        "multiscale_ccl": (224, 3, {"rafdb": {"war": 89.63}, "affectnet": {"war": 61.82},
                                    "ferplus": {"war": 91.15}}),
    }
    for name, (size, chans, reported) in expected.items():
        cls = METHODS.get(name)
        meta = cls.metafile()
        assert cls.modality == "static" and meta.kind == "paper"
        assert (cls.default_input_size, cls.default_in_chans) == (size, chans), name
        assert {r.dataset: r.values for r in meta.reported} == reported, name
        assert meta.reconstructed is True
        assert "Reconstruct" in meta.fidelity and meta.citation
    assert METHODS.get("stn_cbam_gelu").metafile().doi == "10.1109/CISP-BMEI53629.2021.9624355"
    assert METHODS.get("tcl_selective").metafile().doi == "10.1109/CISS56502.2023.10089734"
    assert METHODS.get("multiscale_ccl").metafile().doi == "10.1088/1361-6501/ad191c"
    assert "could not be read" in METHODS.get("tcl_selective").metafile().fidelity


@pytest.mark.parametrize("name", STATIC)
def test_forward_on_default_and_grey_rgb_48_inputs(name):
    cls = METHODS.get(name)
    torch.manual_seed(0)
    for chans, size in [(cls.default_in_chans, cls.default_input_size), (1, 48), (3, 48), (3, 64)]:
        model = cls(in_chans=chans, input_size=size).eval()
        with torch.no_grad():
            out = model(torch.rand(2, chans, size, size))
        assert out.shape == (2, 7), (chans, size)
        assert torch.isfinite(out).all()
    model = cls.from_defaults(num_classes=8, in_chans=1, input_size=48).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 48, 48)).shape == (2, 8)


@pytest.mark.parametrize("name,loss_cls,key,extra", [("angular_sknet", ArcFaceLoss, "arcface", {"easy_margin": True}),
                                                     ("multiscale_ccl", CosFaceLoss, "cosface", {})])
def test_margin_methods_evaluate_scaled_cosines_without_margin(name, loss_cls, key, extra):
    torch.manual_seed(0)
    model = METHODS.get(name)(in_chans=1, input_size=32, **SMALL[name]).eval()
    x, y = tiny_batch(False)
    with torch.no_grad():
        out = model.training_outputs(x, y)
        logits = model(x)
        assert torch.allclose(logits, 30.0 * out["cos"], atol=1e-4)  # s = 30, no margin
        assert out["cos"].abs().max() <= 1.0 + 1e-6
        total, parts = model.compute_loss(out, y)
        margin = loss_cls(s=30.0, m=0.35, **extra)(out["cos"], y)
        centre = (1 - F.cosine_similarity(out["embedding"], model.center_loss.centers[y], dim=1)).mean()
    assert parts[key].item() == pytest.approx(margin.item(), rel=1e-5)
    assert parts["center_cos"].item() == pytest.approx(centre.item(), rel=1e-5)
    assert total.item() == pytest.approx(margin.item() + 0.1 * centre.item(), rel=1e-5)
    # the margin makes training harder than the evaluation logits: loss > CE(s * cos)
    assert margin.item() > F.cross_entropy(logits, y).item()


@pytest.mark.parametrize("name", STATIC)
def test_soft_targets(name):
    """FERPlus probability mode: a one-hot float target gives the hard-label loss; a soft one trains."""
    torch.manual_seed(0)
    cls = METHODS.get(name)
    model = cls(in_chans=cls.default_in_chans, input_size=32, **SMALL[name]).eval()
    x, y = tiny_batch(cls.default_in_chans == 3)
    out = model.training_outputs(x, y)
    hard, _ = model.compute_loss(out, y)
    onehot, _ = model.compute_loss(out, F.one_hot(y, 7).float())
    assert onehot.item() == pytest.approx(hard.item(), rel=1e-5)
    # a soft target: the CE part is the target-weighted mix of the per-class CEs, with the
    # margin (margin methods) placed at the argmax class y
    soft = 0.8 * F.one_hot(y, 7).float() + 0.2 * F.one_hot((y + 1) % 7, 7).float()
    loss, parts = model.compute_loss(out, soft)
    key = next(k for k in ("ce", "arcface", "cosface") if k in parts)
    logits = out["logits"] if key == "ce" else getattr(model, key).logits(out["cos"], y)
    expected = 0.8 * F.cross_entropy(logits, y) + 0.2 * F.cross_entropy(logits, (y + 1) % 7)
    assert parts[key].item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert math.isfinite(loss.item())


# ------------------------------------------------------------------------------------- overfit
@pytest.mark.parametrize("name", STATIC)
def test_overfits_a_tiny_batch(name):
    """7 synthetic faces (one per class), Adam 1e-3, 25 one-batch epochs through a real Trainer:
    the loss falls below 0.3x its initial value, every centre term falls, and after BN
    recalibration ``forward`` classifies all 7 correctly."""
    cls = METHODS.get(name)
    x, y = tiny_batch(cls.default_in_chans == 3)
    L.seed_everything(0, verbose=False)
    model = cls(in_chans=x.shape[1], input_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0,
                scheduler="none", max_epochs=100, **SMALL[name])
    model.train()
    before, parts0 = loss_now(model, x, y)
    centres0 = {k: v.detach().clone() for k, v in model.named_parameters() if k == CENTRES.get(name)}
    fit(model, x, y, max_epochs=25)
    model.train()
    after, parts1 = loss_now(model, x, y)
    assert after.item() < 0.3 * before.item(), (before.item(), after.item())
    for k in ("center_cos", "tcl"):
        if k in parts0:
            assert parts1[k].item() < 0.85 * parts0[k].item(), (k, parts0[k].item(), parts1[k].item())
    for k, v in centres0.items():
        assert not torch.allclose(dict(model.named_parameters())[k], v), f"{k} did not train"
    if name == "angular_sknet":  # ramp reached the last epoch's value (trainer.max_epochs=25, not hparams' 100)
        assert model.drop3.p == pytest.approx(0.1) and model.drop4.p == pytest.approx(0.1)
    recalibrate_bn(model, x)
    model.eval()
    with torch.no_grad():
        assert model(x).argmax(1).tolist() == y.tolist()


# ------------------------------------------------------------------------------------- tcl_selective
def test_tcl_has_two_optimisers_and_centres_only_in_their_own():
    model = METHODS.get("tcl_selective").from_defaults(in_chans=3, input_size=32)
    assert model.automatic_optimization is False
    optimisers, schedulers = model.configure_optimizers()
    main, centres = optimisers
    assert isinstance(main, torch.optim.SGD) and main.defaults["lr"] == 0.01
    assert isinstance(centres, torch.optim.SGD) and centres.defaults["lr"] == 0.5
    centre_ids = [id(p) for g in centres.param_groups for p in g["params"]]
    assert centre_ids == [id(model.tcl.centers)]
    main_ids = {id(p) for g in main.param_groups for p in g["params"]}
    assert id(model.tcl.centers) not in main_ids
    assert main_ids == {id(p) for n, p in model.named_parameters() if n != "tcl.centers"}
    assert len(schedulers) == 1 and isinstance(schedulers[0]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_tcl_centre_step_is_sgd_on_the_unweighted_tcl_gradient():
    """One manual-optimisation step with the network frozen (lr 0): centre j moves by exactly
    -0.5 * dTCL/dc_j / (1 + n_j), the batch-summed TCL's gradient (the λ-weighted one divided by λ)
    over one plus its class's count (Wen et al.'s update).  Prediction-based here; the overfit
    test trains fully-synthesized and the DDP test semi-synthesized, so each strategy trains."""
    L.seed_everything(0, verbose=False)
    model = METHODS.get("tcl_selective")(in_chans=3, input_size=32, strategy="prediction_based", optimizer="sgd",
                                         lr=0.0, weight_decay=0.0, scheduler="none")
    x, y = tiny_batch(True)
    model.train()
    out = model.training_outputs(x, y)
    tcl = model.tcl(out["features"], y, logits=out["logits"])
    (grad,) = torch.autograd.grad(tcl, model.tcl.centers)
    counts = torch.bincount(y, minlength=7).float()
    expected = model.tcl.centers.detach() - 0.5 * grad / (1 + counts)[:, None]
    assert grad.abs().max() > 1e-4
    fit(model, x, y, max_steps=1)
    assert torch.allclose(model.tcl.centers.detach(), expected, atol=1e-6)


def test_tcl_strategies_give_different_losses_and_bad_strategy_is_rejected():
    x, y = tiny_batch(True)
    values = []
    for strategy in ("fully_synthesized", "semi_synthesized", "prediction_based"):
        torch.manual_seed(0)
        model = METHODS.get("tcl_selective")(in_chans=3, input_size=32, strategy=strategy).eval()
        assert model.tcl.strategy == strategy and model.hparams.strategy == strategy
        _, parts = loss_now(model, x, y)
        values.append(parts["tcl"].item())
    assert len({round(v, 6) for v in values}) == 3, values
    with pytest.raises(ValueError, match="strategy: expected one of"):
        METHODS.get("tcl_selective")(strategy="hardest")


# ------------------------------------------------------------------------------------- regularisers
def test_angular_sknet_dropblock_only_in_training():
    torch.manual_seed(0)
    model = METHODS.get("angular_sknet")(in_chans=1, input_size=32, **SMALL["angular_sknet"])
    x = torch.rand(4, 1, 32, 32)
    model.train()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # p = 0 before training: deterministic
        model.set_drop_block_p(0.5)
        assert not torch.allclose(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
    assert [d.p for d in model.drop_blocks()] == [0.5, 0.5]
    sched = model.drop3.linear_schedule
    assert [sched(e, 11, 0.1) for e in (0, 5, 10, 12)] == pytest.approx([0.0, 0.05, 0.1, 0.1])


def test_angular_sknet_margin_warms_up_linearly_to_arc_m():
    model = METHODS.get("angular_sknet").from_defaults(in_chans=1, input_size=32, **SMALL["angular_sknet"])
    assert model.arcface.easy_margin and model.hparams.margin_warmup_epochs == 5
    assert [model.margin_at(e) for e in (0, 1, 5, 50)] == pytest.approx([0.0, 0.07, 0.35, 0.35])
    assert METHODS.get("angular_sknet")(margin_warmup_epochs=0).margin_at(0) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="margin_warmup_epochs"):
        METHODS.get("angular_sknet")(margin_warmup_epochs=-1)


def test_angular_sknet_only_3x3_kernels_and_revised_widths():
    """papers.md section 1 (revised): every convolution 3x3 (no 1x1 projection anywhere),
    widths 32-64-128-256, each stage conv-BN-ReLU + one dot-product residual block."""
    from fer_bench.nn.blocks import DotProductResidualBlock

    model = METHODS.get("angular_sknet")()
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 * 3 + 1  # 4 stages x (1 + 2 residual) + the mask conv
    assert all(m.kernel_size == (3, 3) for _, m in convs), [(n, m.kernel_size) for n, m in convs]
    assert not any(isinstance(m, torch.nn.Conv1d | torch.nn.Conv3d) for m in model.modules())
    assert model.hparams.widths == [32, 64, 128, 256]
    blocks = [m for m in model.modules() if isinstance(m, DotProductResidualBlock)]
    assert [b.residual[0].in_channels for b in blocks] == [32, 64, 128, 256]


def test_angular_sknet_attention_on_the_residual_branch():
    """Each block's SPA reads its residual branch F(x); zeroing the attention leaves relu(x)."""
    from fer_bench.nn.blocks import DotProductResidualBlock

    torch.manual_seed(0)
    model = METHODS.get("angular_sknet")(in_chans=1, input_size=32, **SMALL["angular_sknet"]).eval()
    x = torch.rand(2, 1, 32, 32)
    blocks = [m for m in model.modules() if isinstance(m, DotProductResidualBlock)]
    seen: dict[int, dict[str, torch.Tensor]] = {}
    hooks = []
    for i, b in enumerate(blocks):
        seen[i] = {}
        hooks.append(b.register_forward_hook(lambda mod, inp, out, i=i: seen[i].update(x=inp[0], out=out)))
        hooks.append(b.spa.register_forward_hook(lambda mod, inp, out, i=i: seen[i].update(spa_in=inp[0])))
    with torch.no_grad():
        ref = model(x)
        for i, b in enumerate(blocks):
            r = b.residual(seen[i]["x"])
            assert torch.allclose(seen[i]["spa_in"], r, atol=1e-6), i
            assert torch.allclose(seen[i]["out"], F.relu(seen[i]["x"] + r * b.spa(r)), atol=1e-5), i
        for h in hooks:
            h.remove()
        for b in blocks:  # attention returns zeros: every block is relu(x), the output changes
            b.spa.forward = lambda t: torch.zeros(t.shape[0], t.shape[1], 1, 1)
        b = blocks[0]
        inp = torch.randn(1, b.residual[0].in_channels, 8, 8)
        assert torch.equal(b(inp), F.relu(inp))
        assert not torch.allclose(model(x), ref)


def test_angular_sknet_size_at_48_grey():
    """Recorded in the metafile: 2.40 M parameters and 0.29 GMACs at 1x48x48 (ResNet-18: 11.2 M, 0.094 G)."""
    from fer_bench.nn.complexity import complexity

    c = complexity(METHODS.get("angular_sknet")(in_chans=1, input_size=48))
    assert c == {"params": 2_395_680, "macs": 287_605_120}
    assert 2.0e6 <= c["params"] <= 2.5e6
    r18 = complexity(METHODS.get("resnet18_pretrained")(in_chans=1, input_size=48))
    assert c["params"] < 0.25 * r18["params"]
    fidelity = METHODS.get("angular_sknet").metafile().fidelity
    assert "2.40 M parameters" in fidelity and "0.29 GMACs" in fidelity and "11.2 M" in fidelity


def test_stn_cbam_gelu_dropout_only_in_training_and_stn_starts_at_identity():
    torch.manual_seed(0)
    model = METHODS.get("stn_cbam_gelu")(in_chans=1, input_size=48, **SMALL["stn_cbam_gelu"])
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(model.stn(x), x, atol=1e-5)
        model.train()
        assert not torch.allclose(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
    # every conv of the 4 stages x 2 convs is followed by BN and GELU
    convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Sequential) and len(m) == 3
             and isinstance(m[0], torch.nn.Conv2d) and m[0].kernel_size == (3, 3)]
    assert len(convs) == 8
    assert all(isinstance(c[1], torch.nn.BatchNorm2d) and isinstance(c[2], torch.nn.GELU) for c in convs)
    assert sum(m.__class__.__name__ == "CBAM" for m in model.features.modules()) == 4


# ------------------------------------------------------------------------------------- DDP
def initial_state(name: str, extra: dict) -> dict[str, torch.Tensor]:
    """The model ``fer_bench.train.run`` starts from (same seed, same build)."""
    from fer_bench.train import TrainConfig, build

    cfg = TrainConfig(method=name, dataset="synthetic-static", max_epochs=1, batch_size=8, limit_per_class=4,
                      input_size=32, method_args=extra)
    L.seed_everything(0, workers=True, verbose=False)
    _, model = build(cfg)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [("angular_sknet", {}), ("stn_cbam_gelu", {}),
                                        ("tcl_selective", {"strategy": "semi_synthesized"}),
                                        ("multiscale_ccl", {})])
def test_trains_under_two_process_cpu_ddp(name, extra, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--method", name, "--dataset", "synthetic-static", "--devices", "2", "--accelerator", "cpu",
            "--max-epochs", "1", "--limit-per-class", "4", "--batch-size", "8", "--input-size", "32",
            "--no-progress", "--out", str(out),
            # only the 4 samples per class that --limit-per-class keeps need drawing
            "-d", "train_per_class=4", "-d", "val_per_class=4", "-d", "test_per_class=4"]
    for k, v in extra.items():
        args += ["-m", f"{k}={v}"]
    run_cli(*args)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["method"] == name
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (28, 28, 28)
    assert 0.0 <= metrics["war"] <= 1.0 and 0.0 <= metrics["uar"] <= 1.0
    ckpt = torch.load(metrics["checkpoint"], map_location="cpu", weights_only=False)
    trained = ckpt["state_dict"]
    init = initial_state(name, extra)
    assert set(trained) == set(init)
    first_conv = next(k for k in init if k.endswith("weight") and init[k].ndim == 4)
    assert not torch.allclose(trained[first_conv], init[first_conv]), "the network did not train"
    if name in CENTRES:  # centres are parameters: trained (tcl: by their own SGD) and checkpointed
        key = CENTRES[name]
        assert trained[key].shape == (7, 512)
        assert not torch.allclose(trained[key], init[key]), "centres did not train"
    if name == "tcl_selective":
        assert ckpt["hyper_parameters"]["strategy"] == "semi_synthesized"
        assert len(ckpt["optimizer_states"]) == 2  # the network's and the centres' own SGD
