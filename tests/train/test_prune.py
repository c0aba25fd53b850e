"""Channel pruning: a model whose left-out channels are dead prunes to a narrower one with the
same output; a real model prunes to a preset that loads and trains."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
from train.prune import _ranges, choose_stream, main, prune, stream_blocks


def _dead(bn: nn.BatchNorm2d, idx) -> None:
    bn.weight.data[idx] = 0.0
    bn.bias.data[idx] = 0.0


def _trained_looking(net: FAN) -> None:
    """Random batch-norm statistics and scales, as a trained model has (a fresh one's are 0 and 1)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def model_with_dead_channels(cfg: ModelConfig, width: int, seed: int = 0) -> tuple[FAN, torch.Tensor]:
    """A random FAN (random BN statistics too) in which only the stream channels of a random
    `width`-wide subset, and `width` of each stack's free channels, carry anything."""
    torch.manual_seed(seed)
    net = FAN(cfg).eval()
    _trained_looking(net)
    g = torch.Generator().manual_seed(seed)
    keep = []
    for (lo, hi), (nlo, nhi) in zip(_ranges(cfg.width), _ranges(width)):
        keep.append(lo + torch.sort(torch.randperm(hi - lo, generator=g)[:nhi - nlo]).values)
    keep = torch.cat(keep)
    drop = torch.tensor([i for i in range(cfg.width) if i not in set(keep.tolist())])
    dead = [[int(i) - lo for i in drop if lo <= i < hi] for lo, hi in _ranges(cfg.width)]  # per range
    for k, b in enumerate(stream_blocks(net)):
        for cbr, d in zip((b.c1, b.c2, b.c3), dead):
            _dead(cbr[-2], d)
        if cfg.block == "separable":  # a depthwise kernel on a dead input says nothing either
            if k > 0:  # the stem's last block reads the stem, not the stream
                _dead(b.c1[1], drop)
            for cbr, d in zip((b.c2, b.c3), dead):  # c2 reads the first range, c3 the second
                _dead(cbr[1], d)
    _dead(net.stem[-1].skip[1], drop)
    for i in range(cfg.stacks):
        free = torch.randperm(cfg.width, generator=g)[width:]
        _dead(net.features[i][1][1], free)
        if i < cfg.stacks - 1:
            net.merge_features[i].weight.data[drop] = 0.0
            net.merge_features[i].bias.data[drop] = 0.0
            net.merge_heads[i].weight.data[drop] = 0.0
            net.merge_heads[i].bias.data[drop] = 0.0
    return net, keep


@pytest.mark.parametrize("stacks, block", [(1, "hierarchical"), (2, "hierarchical"), (2, "separable")])
def test_dead_channels_prune_away_without_changing_the_output(stacks, block):
    cfg = ModelConfig(stacks=stacks, width=32, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16),
                      stem_width=4, block=block)
    net, keep = model_with_dead_channels(cfg, 16)
    assert torch.equal(choose_stream(net, 16), keep)
    small = prune(net, ModelConfig(**{**cfg.to_dict(), "width": 16}))
    assert sum(p.numel() for p in small.parameters()) < 0.4 * sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = net.forward_all(x), small.forward_all(x)
    for a, b in zip(want, got):
        assert a.abs().mean() > 1e-2  # not a trivially dead model
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_only_the_width_may_change():
    cfg = ModelConfig(stacks=1, width=32, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=4)
    net = FAN(cfg).eval()
    with pytest.raises(ValueError, match="width only"):
        prune(net, ModelConfig(**{**cfg.to_dict(), "width": 16, "depth": 1}))
    with pytest.raises(ValueError, match="at most"):
        prune(net, ModelConfig(**{**cfg.to_dict(), "width": 64}))
    separable = ModelConfig(**{**cfg.to_dict(), "block": "separable"})
    with pytest.raises(ValueError, match="width only"):
        prune(FAN(separable).eval(), cfg)


def test_the_bundled_rt_m_prunes_to_rt_s_and_loads_as_init(tmp_path):
    from tracker.core.model_config import PRESETS
    from tracker.core.modelfile import MODELS_DIR
    from train import checkpoint

    out = tmp_path / "rt-s-init.pt"
    assert main([str(MODELS_DIR / "rt-m.pt"), "--preset", "rt-s", "--out", str(out)]) == 0
    student = FAN(PRESETS["rt-s"])
    report = checkpoint.init_from(student, out)
    n = len(student.state_dict())
    assert report.endswith(f"{n} of {n} tensors")  # every tensor of rt-s comes from rt-m


@pytest.mark.parametrize("stacks, block", [(1, "hierarchical"), (2, "hierarchical"), (1, "separable")])
def test_widening_keeps_the_output_and_the_new_channels_learn(stacks, block):
    from train.prune import widen

    cfg = ModelConfig(stacks=stacks, width=16, depth=2, input_hw=(32, 32), heatmap_hw=(8, 8), stem_width=4,
                      block=block)
    torch.manual_seed(1)
    net = FAN(cfg).eval()
    _trained_looking(net)
    wide = widen(net, ModelConfig(**{**cfg.to_dict(), "width": 24}))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), net(x), atol=1e-5, rtol=1e-5)
    # the zero weights that read the new channels get gradients: the model grows into its width
    wide.train()
    wide(x).square().sum().backward()
    convs = [m for m in wide.modules() if isinstance(m, nn.Conv2d) and (m.weight == 0).any()]
    assert len(convs) >= 10
    assert all(c.weight.grad[c.weight == 0].abs().sum() > 0 for c in convs)
    with pytest.raises(ValueError, match="at least"):
        widen(net, ModelConfig(**{**cfg.to_dict(), "width": 12}))


@pytest.mark.parametrize("stacks", [1, 2])
def test_stacking_keeps_the_output_and_the_new_stack_learns(stacks):
    from train.prune import stack

    cfg = ModelConfig(stacks=stacks, width=16, depth=2, input_hw=(32, 32), heatmap_hw=(8, 8), stem_width=4,
                      block="separable")
    torch.manual_seed(2)
    net = FAN(cfg).eval()
    _trained_looking(net)
    deep = stack(net, ModelConfig(**{**cfg.to_dict(), "stacks": stacks + 1}))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want, got = net.forward_all(x), deep.forward_all(x)
    assert len(got) == stacks + 1
    for a, b in zip(want + [want[-1]], got):  # the new stack says what the last one said
        assert a.abs().mean() > 1e-2
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # the zero merges into the new stack get gradients from its heatmaps
    deep.train()
    deep(x).square().sum().backward()
    for merge in (deep.merge_features[stacks - 1], deep.merge_heads[stacks - 1]):
        assert not merge.weight.any() and merge.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="adds stacks only"):
        stack(net, ModelConfig(**{**cfg.to_dict(), "stacks": stacks + 1, "width": 20}))
    with pytest.raises(ValueError, match="adds stacks only"):
        stack(net, cfg)
