"""One definition of a run's settings: flags, suite keys, checks, tta, speed outside the hash."""
import argparse

import pytest
import torch
from torch import nn

from fer_bench import settings as S
from fer_bench.bench.suite import Job, apply_overrides, load_suite
from fer_bench.cli.flags import config_from_args, given_settings, key_value
from fer_bench.errors import UserError

from conftest import run_cli


def _one_line_exit_2(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
    (["--batch-size", "x"], "--batch-size: expected an integer >= 1, got 'x'"),
    (["-m", "lr=abc"], "-m lr: expected a number (method resnet18_pretrained), got 'abc'"),
    (["-m", "lrr=0.1"], "-m lrr: method resnet18_pretrained has no such argument: expected one of"),
    (["-m", "optimizer=lbfgs"], "-m optimizer: expected one of sgd, adam, adamw, got 'lbfgs'"),
    (["-d", "layout=zip"], "rafdb"),  # a dataset argument of the wrong value: the dataset names it
    (["-d", "frames=8"], "-d frames: dataset rafdb has no such argument: expected one of"),
    (["--tta", "vflip"], "--tta: expected one of none, hflip, tencrop, got 'vflip'"),
    (["--precision", "8-true"], "--precision: expected one of"),
    (["-m", "lr=-1"], "-m lr: expected a number > 0, got -1"),
    (["-m", "momentum=1.5"], "-m momentum: expected a number >= 0 and <= 1, got 1.5"),
])
def test_bad_train_values_exit_2_with_one_line_before_any_data_is_read(tmp_path, args, expected):
    # the root does not exist: an error about it would mean the data was looked at first
    missing = tmp_path / "no-such-rafdb"
    proc = run_cli("train", "--method", "resnet18_pretrained", "--dataset", "rafdb", "--root", str(missing), *args,
                   check=False, timeout=120)
    line = _one_line_exit_2(proc)
    assert expected in line, line
    if expected != "rafdb":
        assert str(missing) not in line


@pytest.mark.parametrize("cell, expected", [
    ("{method: resnet18_pretrained, dataset: synthetic-static, batchsize: 4}", "found batchsize"),
    ("{method: resnet18_pretrained, dataset: synthetic-static, batch_size: 4x}",
     "batch_size: expected an integer >= 1, got '4x'"),
    ("{method: resnet18_pretrained, dataset: synthetic-static, tta: flip}",
     "tta: expected one of none, hflip, tencrop, got 'flip'"),
    ("{method: resnet18_pretrained, dataset: synthetic-static, method_args: {lr: abc}}",
     "method_args lr: expected a number (method resnet18_pretrained), got 'abc'"),
    ("{method: resnet18_pretrained, dataset: synthetic-static, data_args: {frames: 4}}",
     "data_args frames: dataset synthetic-static has no such argument: expected one of"),
    ("{method: resnet18_pretrained, dataset: synthetic-dynamic}", "is static but dataset 'synthetic-dynamic' is dynamic"),
])
def test_bad_suite_cells_exit_2_with_one_line_naming_the_cell(tmp_path, cell, expected):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\ncells:\n  - {{method: resnet18_pretrained, dataset: synthetic-static}}\n  - {cell}\n")
    proc = run_cli("bench", str(suite), "--leaderboards", str(tmp_path / "b"), "--run-dir", str(tmp_path / "r"),
                   check=False, timeout=120)
    line = _one_line_exit_2(proc)
    assert expected in line and "cell 2" in line and str(suite) in line, line
    assert not (tmp_path / "r" / "rows").exists()  # nothing ran


def test_bad_override_is_refused_naming_the_flag():
    jobs = [Job("resnet18_pretrained", "synthetic-static", None, 0)]
    with pytest.raises(UserError, match=r"-o max_epochs: expected an integer >= 1, got 0"):
        apply_overrides(jobs, {"max_epochs": 0})
    with pytest.raises(UserError, match=r"-o devices: cannot override; expected one of"):
        apply_overrides(jobs, {"devices": 2})
    with pytest.raises(UserError, match=r"-o method_args\.lr: expected a number \(method resnet18_pretrained\)"):
        apply_overrides(jobs, {"method_args.lr": "fast"})


def test_every_setting_is_a_train_flag_and_the_right_ones_are_suite_keys():
    from fer_bench.cli import build_parser

    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    bench = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "bench")[1]
    flags = {s for a in train._actions for s in a.option_strings}
    bench_flags = {s for a in bench._actions for s in a.option_strings}
    for name, f in S.SETTINGS.items():
        kind = f.metadata["kind"]
        if kind == "internal" or name == "setup":  # setup: shell lines, a suite's launcher: key only
            continue
        if kind == "slurm":  # a SLURM array's resources: bench flags, and never a suite cell's key
            assert S.flag_of(name) in bench_flags and S.flag_of(name) not in flags and name not in S.SUITE_KEYS, name
            continue
        assert S.flag_of(name) in flags, name
        assert (name in S.SUITE_KEYS) == (kind in ("protocol", "run", "speed") or name in ("method", "dataset")), name
    # the defaults of the flags are the dataclass defaults: one source
    ns = train.parse_args(["--method", "resnet18_pretrained", "--dataset", "synthetic-static"])
    assert config_from_args(ns) == S.TrainConfig(method="resnet18_pretrained", dataset="synthetic-static")
    ns = bench.parse_args(["suite.yaml", "--time-min", "30"])
    assert S.SlurmSettings(**given_settings(ns, ("slurm",))) == S.SlurmSettings(time_min=30)
    with pytest.raises(UserError, match="--mem-gb: expected a number >= 0, got -1"):
        S.SlurmSettings(mem_gb=-1)


def test_speed_settings_do_not_change_the_config_hash_but_protocol_settings_do():
    base = Job("resnet18_pretrained", "synthetic-static", None, 0, settings={"batch_size": 16})
    fast = Job("resnet18_pretrained", "synthetic-static", None, 0,
               settings={"batch_size": 16, "num_workers": 2, "channels_last": True, "cache_images": "off",
                         "max_unreadable": 0.05})
    assert fast.config_hash == base.config_hash
    assert fast.config().num_workers == 2 and fast.config().channels_last is True  # they do reach the run
    for change in ({"batch_size": 8}, {"tta": "hflip"}, {"method_args": {"lr": 0.1}}, {"max_epochs": 3}):
        other = Job("resnet18_pretrained", "synthetic-static", None, 0, settings={"batch_size": 16, **change})
        assert other.config_hash != base.config_hash, change
    # a default written out explicitly is the same protocol
    assert Job("resnet18_pretrained", "synthetic-static", None, 0, settings={"batch_size": 16, "tta": "none"}).config_hash \
        == base.config_hash


def test_shipped_suites_pass_the_checks(repo):
    for name in ("smoke", "static", "dynamic"):
        suite = load_suite(repo / "benchmarks" / f"{name}.yaml")
        assert suite.jobs and all(isinstance(j.config(), S.TrainConfig) for j in suite.jobs)


def test_key_value_reads_yaml_values():
    assert key_value("lr=0.01") == ("lr", 0.01)
    assert key_value("frames=8") == ("frames", 8)
    assert key_value("strategy=prediction_based") == ("strategy", "prediction_based")
    with pytest.raises(argparse.ArgumentTypeError):
        key_value("lr")


class _LeftHalf(nn.Module):
    """An asymmetric model: class scores from the left half of the image only."""

    def forward(self, x):
        w = x.shape[-1]
        left = x[..., : w // 2].flatten(1).mean(1)
        return torch.stack([left, -left, 0 * left], dim=1) * 10


def _method_with(net):
    from fer_bench.methods.base import FERMethod

    class M(FERMethod):
        def __init__(self, **kw):
            super().__init__(num_classes=3, **kw)
            self.net = net

        def forward(self, x):
            return self.net(x)

    return M()


def test_hflip_tta_averages_the_mirror_and_differs_on_an_asymmetric_model():
    m = _method_with(_LeftHalf()).eval()
    x = torch.zeros(2, 1, 8, 8)
    x[..., :4] = 1.0  # bright left half: the mirror is bright on the right
    plain = m.test_forward(x)
    m.test_tta = "hflip"
    tta = m.test_forward(x)
    expected = ((torch.softmax(m(x), 1) + torch.softmax(m(x.flip(-1)), 1)) / 2).log()
    assert torch.allclose(tta, expected)
    assert not torch.allclose(torch.softmax(plain, 1), tta.exp(), atol=1e-3)
    # a mirror-symmetric input gives the plain prediction back
    sym = torch.ones(1, 1, 8, 8)
    assert torch.allclose(m.test_forward(sym).exp(), torch.softmax(m(sym), 1), atol=1e-6)
    # clips [B, T, C, H, W] flip along the width too
    clip = x[:, None].repeat(1, 3, 1, 1, 1)
    assert torch.allclose(m.test_forward(clip), expected)


def test_tta_reaches_the_run_and_its_record(tmp_path):
    from fer_bench.train import build

    cfg = S.TrainConfig(method="resnet18_pretrained", dataset="synthetic-static", tta="hflip", input_size=32,
                        data_args={"train_per_class": 2, "val_per_class": 1, "test_per_class": 1})
    _, model = build(cfg)
    assert model.test_tta == "hflip"


def test_load_weights_sums_an_rgb_stem_into_a_grey_one(tmp_path):
    from fer_bench.methods import METHODS

    model = METHODS.get("resnet18_pretrained")(num_classes=7, in_chans=1, input_size=48)
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(64, 3, 7, 7, generator=g)
    bn_weight = torch.rand(64, generator=g)
    fc = torch.randn(1000, 512, generator=g)  # an ImageNet classifier: other classes, skipped
    path = tmp_path / "rgb.pt"
    torch.save({"conv1.weight": rgb, "bn1.weight": bn_weight, "fc.weight": fc}, path)
    report = model.load_weights(str(path))
    assert report["adapted"] == ["conv1.weight"]
    assert torch.allclose(model.backbone.conv1.weight, rgb.sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.bn1.weight, bn_weight)
    assert "conv1.weight" in report["loaded"] and "conv1.weight" not in report["shape_mismatch"]
    # a grey image through the adapted stem responds as the RGB stem to the same grey in 3 channels
    grey = torch.rand(1, 1, 16, 16, generator=g)
    out_grey = torch.nn.functional.conv2d(grey, model.backbone.conv1.weight)
    out_rgb = torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), rgb)
    assert torch.allclose(out_grey, out_rgb, atol=1e-5)
