"""The FAN hourglass network and its configuration (tracker/core/model.py)."""
import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tracker.core.model import FAN, count_macs, count_params
from tracker.core.model_config import PRESETS, ModelConfig

TINY = dict(width=16, depth=2, stem_width=8)


@pytest.mark.parametrize("name", ["rt-s", "rt-m", "rt-m2", "rt-m-160", "rt-l", "rt-l-96", "rt-l-112", "rt-xl",
                                  "rt-sep", "rt-sep-112", "rt-sep-160", "rt-sep-xl"])
def test_realtime_presets_build_and_run(name):
    cfg = PRESETS[name]
    net = FAN(cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *cfg.input_hw))
    assert out.shape == (2, cfg.n_points, *cfg.heatmap_hw) and torch.isfinite(out).all()


def test_rt_m_160_takes_rt_ms_weights_as_they_are():
    """The larger input changes no weight's shape: rt-m's state dict loads into it whole."""
    FAN(PRESETS["rt-m-160"]).load_state_dict(FAN(PRESETS["rt-m"]).state_dict())


@pytest.mark.parametrize("name, source", [("rt-l-96", "rt-l"), ("rt-l-112", "rt-l"), ("rt-sep-112", "rt-sep"),
                                          ("rt-sep-160", "rt-sep")])
def test_a_network_on_another_input_takes_its_weights_as_they_are(name, source):
    FAN(PRESETS[name]).load_state_dict(FAN(PRESETS[source]).state_dict())


def test_an_odd_innermost_level_upsamples_back_to_its_own_size():
    """28x28 heatmaps, depth 3: 28 -> 14 -> 7 -> 3 (floor) and back 3 -> 7 -> 14 -> 28; the
    even levels still double."""
    cfg = ModelConfig(stacks=1, input_hw=(112, 112), heatmap_hw=(28, 28), **{**TINY, "depth": 3})
    net = FAN(cfg).eval()
    levels = [net.hourglasses[0], net.hourglasses[0].low2, net.hourglasses[0].low2.low2]
    assert [(h.hw, h.even) for h in levels] == [((28, 28), True), ((14, 14), True), ((7, 7), False)]
    with torch.no_grad():
        out = net(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, 68, 28, 28) and torch.isfinite(out).all()


def test_paper_preset_builds_with_the_fan_shapes():
    """fan2-256 is run on the meta device: shapes and MACs without the 13 GMAC forward pass."""
    cfg = PRESETS["fan2-256"]
    assert (cfg.stacks, cfg.width, cfg.input_hw, cfg.heatmap_hw) == (2, 256, (256, 256), (64, 64))
    with torch.device("meta"):
        net = FAN(cfg)
        outs = net.forward_all(torch.zeros(1, 3, 256, 256))
        macs = count_macs(net)
    assert [o.shape for o in outs] == [(1, 68, 64, 64)] * 2
    # ~12 M parameters and ~13.5 GMACs: half the 4-stack 2D-FAN (~24 M), as two stacks should be
    assert 10e6 < count_params(net) < 14e6
    assert 12e9 < macs < 15e9


@pytest.mark.parametrize("input_hw,heatmap_hw,stacks,depth", [
    ((128, 96), (32, 24), 2, 2),  # stride 4, non-square
    ((64, 48), (32, 24), 1, 3),  # stride 2, non-square
    ((96, 128), (24, 32), 1, 2),  # landscape
])
def test_non_square_configs(input_hw, heatmap_hw, stacks, depth):
    cfg = ModelConfig(stacks=stacks, input_hw=input_hw, heatmap_hw=heatmap_hw,
                      **{**TINY, "depth": depth})
    net = FAN(cfg).eval()
    x = torch.randn(3, 3, *input_hw)
    with torch.no_grad():
        outs = net.forward_all(x)
        last = net(x)
    assert len(outs) == stacks
    assert all(o.shape == (3, 68, *heatmap_hw) for o in outs)
    torch.testing.assert_close(outs[-1], last)
    assert cfg.stride == input_hw[0] // heatmap_hw[0]


def test_other_point_counts():
    cfg = ModelConfig(stacks=1, n_points=98, input_hw=(64, 64), heatmap_hw=(16, 16), **TINY)
    with torch.no_grad():
        assert FAN(cfg).eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 98, 16, 16)


def test_gradients_reach_every_parameter():
    cfg = ModelConfig(stacks=2, input_hw=(64, 64), heatmap_hw=(16, 16), **TINY)
    net = FAN(cfg).train()
    outs = net.forward_all(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_batch_items_are_independent_in_eval_mode():
    cfg = ModelConfig(stacks=1, input_hw=(64, 64), heatmap_hw=(16, 16), **TINY)
    net = FAN(cfg).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[1:2], net(x[1:2]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("block", ["hierarchical", "separable"])
def test_count_macs_agrees_with_torch_flop_counter(block):
    cfg = ModelConfig(stacks=2, input_hw=(128, 96), heatmap_hw=(32, 24), block=block, **TINY)
    net = FAN(cfg).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, 3, 128, 96))
    assert count_macs(net) * 2 == counter.get_total_flops() > 0
    assert not net.training


def test_counts_are_positive_and_ordered():
    small, medium = FAN(PRESETS["rt-s"]), FAN(PRESETS["rt-m"])
    assert 0 < count_params(small) < count_params(medium)
    assert 0 < count_macs(small) < count_macs(medium)


def test_separable_blocks_are_depthwise_then_pointwise_at_a_fraction_of_the_cost():
    """rt-sep (twice rt-l's width, separable): every 3x3 convolution past the first is
    depthwise, and it costs 0.61 of rt-l's MACs with 0.55 of its parameters (counted)."""
    sep, full = FAN(PRESETS["rt-sep"]), FAN(PRESETS["rt-l"])
    convs = [m for m in sep.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs[0].groups == 1 and all(m.groups == m.in_channels == m.out_channels for m in convs[1:])
    assert count_macs(sep) / count_macs(full) == pytest.approx(0.609, abs=0.005)
    assert count_params(sep) / count_params(full) == pytest.approx(0.555, abs=0.005)


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_hw=(256, 256), heatmap_hw=(32, 32)), "stride must be 2 or 4"),
    (dict(input_hw=(256, 192), heatmap_hw=(64, 64)), "stride must be 2 or 4"),
    (dict(input_hw=(128, 120), heatmap_hw=(32, 30), depth=3), "not divisible"),
    (dict(width=18), "multiple of 4"),
    (dict(block="inverted"), "block 'inverted'"),
])
def test_invalid_configs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_config_dict_round_trip_through_json():
    cfg = ModelConfig(stacks=1, input_hw=(128, 96), heatmap_hw=(32, 24), mean=(0.4, 0.5, 0.6),
                      **TINY)
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.input_hw == (128, 96) and back.mean == (0.4, 0.5, 0.6)
    assert hash(back) == hash(cfg)


def test_normalise_is_the_formula_channel_by_channel():
    cfg = ModelConfig(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    crops = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    x = cfg.normalise(crops)
    want = (crops.astype(np.float64) / 255 - np.array(cfg.mean)) / np.array(cfg.std)
    assert x.shape == (2, 3, 8, 6) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, want.transpose(0, 3, 1, 2), atol=1e-5)
