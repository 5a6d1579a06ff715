import pytest
import torch
import torchvision

from fer_bench.methods import METHODS, count_params
from fer_bench.synth import make_clips, make_static


def _overfit(model, x, y, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    first = last = None
    for _ in range(steps):
        loss, _ = model.compute_loss(model.training_outputs(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    return first, last


@pytest.mark.parametrize("in_chans,size", [(1, 48), (3, 48), (1, 64), (3, 100)])
def test_resnet18_any_channels_and_size(in_chans, size):
    m = METHODS.get("resnet18")(in_chans=in_chans, input_size=size, num_classes=7).eval()
    assert m(torch.rand(2, in_chans, size, size)).shape == (2, 7)


def test_resnet18_lstm_clip_shape_and_temporal_order_matters():
    torch.manual_seed(0)
    m = METHODS.get("resnet18_lstm")(in_chans=3, input_size=32, num_classes=8).eval()
    x = torch.rand(2, 5, 3, 32, 32)
    out = m(x)
    assert out.shape == (2, 8)
    # an LSTM is order-sensitive: reversing time changes the logits
    assert not torch.allclose(out, m(x.flip(1)), atol=1e-5)


def test_resnet18_overfits_tiny_synthetic_batch():
    torch.manual_seed(0)
    imgs, labels, _ = make_static(2, seed=3, size=48)
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    m = METHODS.get("resnet18")(in_chans=1, input_size=48)
    first, last = _overfit(m, x, y, steps=30)
    assert last < 0.1 * first, (first, last)


def test_resnet18_lstm_overfits_tiny_synthetic_batch():
    torch.manual_seed(0)
    clips, labels, _, _ = make_clips(1, seed=3, size=32, frames=4)
    x = torch.from_numpy(clips).float().div(255).permute(0, 1, 4, 2, 3)
    y = torch.from_numpy(labels)
    m = METHODS.get("resnet18_lstm")(in_chans=3, input_size=32)
    first, last = _overfit(m, x, y, steps=40)
    assert last < 0.2 * first, (first, last)


def test_weights_load_from_local_torchvision_state_dict(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(ref.layer1[0].conv1.weight, 0.5)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    m = METHODS.get("resnet18")(in_chans=1, input_size=48)
    report = m.load_weights(str(path))
    assert torch.equal(m.backbone.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    # the RGB stem is summed into the grey one; the 1000-way fc cannot load into a headless network: reported
    assert report["adapted"] == ["conv1.weight"] and "conv1.weight" not in report["shape_mismatch"]
    assert torch.allclose(m.backbone.conv1.weight, ref.conv1.weight.sum(dim=1, keepdim=True))
    assert "fc.weight" in report["unexpected"] or "fc.weight" in report["shape_mismatch"]


def test_param_counts_are_resnet18_sized():
    n = count_params(METHODS.get("resnet18")(in_chans=3, num_classes=7))
    assert n == count_params(torchvision.models.resnet18(num_classes=7))
