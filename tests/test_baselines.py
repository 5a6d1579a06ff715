"""The baselines as their public code builds them: the CIFAR-stem ResNet-18 (WuJie1010), the
pre-trained torchvision ResNet-18 (DACL), the DFEW ResNet-LSTM (jiangxingxun/DFEW)."""
import lightning as L
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader, TensorDataset

from fer_bench.methods import METHODS, count_params
from fer_bench.methods.base import delayed_step
from fer_bench.synth import make_clips


@pytest.mark.parametrize("in_chans,size", [(1, 48), (3, 48), (1, 64), (3, 100)])
def test_resnet18_pretrained_any_channels_and_size(in_chans, size):
    m = METHODS.get("resnet18_pretrained")(in_chans=in_chans, input_size=size, num_classes=7).eval()
    assert m(torch.rand(2, in_chans, size, size)).shape == (2, 7)


def test_resnet18_pretrained_is_torchvision_resnet18_sized():
    n = count_params(METHODS.get("resnet18_pretrained")(in_chans=3, num_classes=7))
    assert n == count_params(torchvision.models.resnet18(num_classes=7))


def test_weights_load_from_local_torchvision_state_dict(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(ref.layer1[0].conv1.weight, 0.5)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    m = METHODS.get("resnet18_pretrained")(in_chans=1, input_size=48)
    report = m.load_weights(str(path))
    assert torch.equal(m.backbone.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    # the RGB stem is summed into the grey one; the 1000-way fc cannot load into a headless network: reported
    assert report["adapted"] == ["conv1.weight"] and "conv1.weight" not in report["shape_mismatch"]
    assert torch.allclose(m.backbone.conv1.weight, ref.conv1.weight.sum(dim=1, keepdim=True))
    assert "fc.weight" in report["unexpected"] or "fc.weight" in report["shape_mismatch"]


def test_resnet18_cifar_has_the_cifar_stem_and_the_official_head():
    m = METHODS.get("resnet18_cifar")(num_classes=7).eval()
    conv1 = m.backbone.conv1
    assert (m.in_chans, m.input_size) == (3, 44)
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(m.backbone.maxpool, torch.nn.Identity)
    x = torch.rand(2, 3, 44, 44)
    b = m.backbone
    feat = b.layer4(b.layer3(b.layer2(b.layer1(b.relu(b.bn1(b.conv1(x)))))))
    assert feat.shape[-2:] == (6, 6)  # 44 -> 44 -> 22 -> 11 -> 6
    # F.avg_pool2d(out, 4) at 44 px: one window, the top-left 4x4 of the 6x6 map (the official head)
    by_hand = m.head(feat[..., :4, :4].mean(dim=(2, 3)))
    assert torch.allclose(m(x), by_hand, atol=1e-6)
    assert count_params(m) == count_params(torchvision.models.resnet18(num_classes=7)) - 3 * 64 * (49 - 9)


def test_the_late_step_schedule_is_the_official_one():
    f = delayed_step(80, 5, 0.9)
    for epoch in range(250):  # mainpro_FER.py: lr0 * 0.9 ** ((epoch - 80) // 5) once epoch > 80
        want = 0.9 ** ((epoch - 80) // 5) if epoch > 80 else 1.0
        assert f(epoch) == pytest.approx(want)
    assert f(84) == 1.0 and f(85) == pytest.approx(0.9)  # the first decay at epoch 85 (0-based)
    opt = METHODS.get("resnet18_cifar")(input_size=32, scheduler="step", step_start=20, step_size=1, gamma=0.8,
                                        lr=0.01).configure_optimizers()
    sched = opt["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(23):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    assert lrs[20] == pytest.approx(0.01) and lrs[21] == pytest.approx(0.008) and lrs[22] == pytest.approx(0.0064)


class _Grads(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # after the step, before the next zero_grad
        self.max = max(p.grad.abs().max().item() for p in pl_module.parameters() if p.grad is not None)


def test_each_gradient_element_is_clamped_as_the_official_code_does():
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 32, 32) * 50, torch.arange(8) % 7  # large inputs: large gradients
    grads = {}
    for clip in (0.0, 0.1):
        m = METHODS.get("resnet18_cifar")(input_size=32, grad_clip=clip, scheduler="none")
        cb = _Grads()
        L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, limit_val_batches=0, callbacks=[cb]).fit(
            m, DataLoader(TensorDataset(x, y, torch.arange(8)), batch_size=8))
        grads[clip] = cb.max
    assert grads[0.0] > 0.1 and grads[0.1] == pytest.approx(0.1)


def test_resnet18_lstm_is_the_official_dfew_network():
    m = METHODS.get("resnet18_lstm")(num_classes=7).eval()
    assert (m.in_chans, m.input_size, m.frames) == (3, 112, 16)
    assert m.backbone.out_dim == 2048 and [len(s) for s in m.backbone.stages] == [2, 2, 2, 2]
    first = m.backbone.stages[1][0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)  # the stride on the 1x1 (not torchvision's v1.5)
    pool = m.backbone.stem[3]
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 0, True)
    lstm = m.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bidirectional) == (2048, 256, 3, False)
    # LSTM parameters by hand: 4 gates x hidden x (input + hidden) weights + 2 bias vectors of 4 x hidden per layer
    by_hand = sum(4 * 256 * (i + 256) + 2 * 4 * 256 for i in (2048, 256, 256))
    assert count_params(lstm) == by_hand == 3_414_016
    assert (m.head.in_features, m.head.out_features) == (16 * 256, 7)  # all 16 outputs concatenated
    x = torch.rand(1, 16, 3, 112, 112)
    with torch.no_grad():
        assert m(x).shape == (1, 7)
        assert m.backbone.stages(m.backbone.stem(x[0])).shape[-2:] == (4, 4)  # the official AvgPool2d(4) = global
    with pytest.raises(ValueError, match="all 16 LSTM outputs at once"):
        m(torch.rand(1, 8, 3, 112, 112))


def test_resnet18_lstm_every_step_counts_and_order_matters():
    torch.manual_seed(0)
    m = METHODS.get("resnet18_lstm")(in_chans=3, input_size=32, num_classes=8, frames=5).eval()
    x = torch.rand(2, 5, 3, 32, 32)
    with torch.no_grad():
        out = m(x)
        assert out.shape == (2, 8)
        assert not torch.allclose(out, m(x.flip(1)), atol=1e-5)  # an LSTM is order-sensitive
        y = x.clone()
        y[:, 0] = torch.rand_like(y[:, 0])
        assert not torch.allclose(out, m(y), atol=1e-6)  # the first frame reaches the classifier too


def test_resnet18_lstm_overfits_tiny_synthetic_clips():
    torch.manual_seed(0)
    clips, labels, _, _ = make_clips(1, seed=3, size=32, frames=4)
    x = torch.from_numpy(clips).float().div(255).permute(0, 1, 4, 2, 3)
    y = torch.from_numpy(labels)
    m = METHODS.get("resnet18_lstm")(in_chans=3, input_size=32, frames=4)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)  # the official recipe's optimiser
    m.train()
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
