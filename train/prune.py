"""Structured channel pruning of a trained FAN to a narrower preset, and its inverses, widening to
a wider one and stacking to a deeper one, each as a warm start.

A narrower hourglass (fewer channels, same stacks, depth, stem and input) starts from the wider
model's most important channels instead of from scratch, then fine-tunes (`TrainConfig.init`):

    python -m train.prune tracker/models/rt-m.pt --preset rt-s --out runs/rt-s-pruned.pt

The channel bookkeeping follows the block (`tracker.core.model.HierarchicalBlock`): its output
is the concatenation [c1 (C/2) | c2 (C/4) | c3 (C/4)] added to its input, so every block of
width C shares one residual stream, and a narrower stream keeps, from each of the three ranges,
the channels whose batch-norm scales summed over the stream's blocks are largest. A channel
left out of every range is exactly a channel whose scales are zero: such a model prunes
without changing its output (the test). One loss is not exact: when the new width equals the
stem's (2 x stem_width, as rt-s), the stem's last block has no projection on its skip any more.
With depthwise-separable blocks (rt-sep -> rt-sep2-192) each depthwise kernel and its batch
norm go with their input channel; a dead input channel still passes a constant through its
depthwise batch norm, so there the pruned model starts near the wide one's output, not at it.

Widening (`widen`, the same command with a wider preset; full or depthwise-separable blocks) is
exact: each range's old channels keep their weights at the start of the new range, and every
weight that reads a new channel is zero, so the wider model computes what the old one did. The
new channels themselves keep their random initialisation and are alive (a dead ReLU channel
would never get a gradient), so the zero weights reading them get gradients from the first step
and the model grows into its width.

Stacking (`stack`, the same command with a preset that has more stacks, as rt-sep -> rt-sep2)
is exact too: each new stack is a copy of the last and the merges that feed it are zero. A
preset that changes both (rt-sep -> rt-sep2-192) is pruned or widened first, then stacked.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from tracker.core.model import FAN, HierarchicalBlock, count_params
from tracker.core.model_config import PRESETS, ModelConfig
from tracker.core.modelfile import load_torch
from train import checkpoint


def _ranges(c: int) -> list[tuple[int, int]]:
    return [(0, c // 2), (c // 2, 3 * c // 4), (3 * c // 4, c)]


def _gamma(cbr: nn.Sequential) -> torch.Tensor:
    """The absolute batch-norm scales of a range's output channels (full or separable)."""
    return cbr[-2].weight.detach().abs()


def stream_blocks(net: FAN) -> list[HierarchicalBlock]:
    """The blocks whose output is the width-C residual stream."""
    blocks = [net.stem[-1]]
    for hg in net.hourglasses:
        blocks += [m for m in hg.modules() if isinstance(m, HierarchicalBlock)]
    blocks += [f[0] for f in net.features]
    return blocks


def paired_blocks(net: FAN, new: FAN):
    """The stream blocks of two FANs of one layout but their width, in step:
    (block of `net`, block of `new`, whether it reads the stream); the first, the stem's last
    block, reads the stem instead."""
    for i, (o, n) in enumerate(zip(stream_blocks(net), stream_blocks(new))):
        yield o, n, i > 0


def _check_width_only(old: ModelConfig, new: ModelConfig, wider: bool) -> None:
    if {**old.to_dict(), "width": new.width} != new.to_dict():
        raise ValueError(f"{'widening' if wider else 'pruning'} changes the width only: {old} -> {new}")
    if (new.width < old.width if wider else new.width > old.width) or new.width % 4:
        raise ValueError(f"width {new.width}: must be a multiple of 4, "
                         f"{'at least' if wider else 'at most'} {old.width}")


def _copy_stem(net: FAN, new: FAN) -> None:
    """The stem before the stream (its convolution and first block) is the same in both."""
    for old_m, new_m in zip(net.stem[:-1], new.stem[:-1]):
        new_m.load_state_dict(old_m.state_dict())


def choose_stream(net: FAN, width: int) -> torch.Tensor:
    """Indices (into the old width) of the stream channels kept, range by range, in order."""
    c = net.config.width
    score = [torch.zeros(hi - lo) for lo, hi in _ranges(c)]
    for b in stream_blocks(net):
        for s, cbr in zip(score, (b.c1, b.c2, b.c3)):
            s += _gamma(cbr)
    keep = []
    for s, (lo, _), (nlo, nhi) in zip(score, _ranges(c), _ranges(width)):
        keep.append(lo + torch.sort(torch.topk(s, nhi - nlo).indices).values)
    return torch.cat(keep)


def _take_conv(conv: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None,
               into: nn.Conv2d) -> None:
    w = conv.weight.detach()
    if out_idx is not None:
        w = w[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    into.weight.data.copy_(w)
    if conv.bias is not None:
        into.bias.data.copy_(conv.bias.detach() if out_idx is None else conv.bias.detach()[out_idx])


def _take_bn(bn: nn.BatchNorm2d, idx: torch.Tensor | None, into: nn.BatchNorm2d) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        v = getattr(bn, name).detach()
        getattr(into, name).data.copy_(v if idx is None else v[idx])


def _take_cbr(old: nn.Sequential, new: nn.Sequential, out_idx, in_idx) -> None:
    """A conv-BN-ReLU range, or a depthwise-separable one (`tracker.core.model._separable`),
    whose depthwise kernels and their batch norm keep the kept input channels."""
    if old[0].groups > 1:
        _take_conv(old[0], in_idx, None, new[0])
        _take_bn(old[1], in_idx, new[1])
    _take_conv(old[-3], out_idx, in_idx, new[-3])
    _take_bn(old[-2], out_idx, new[-2])


def _take_block(old: HierarchicalBlock, new: HierarchicalBlock, stream: torch.Tensor,
                in_idx: torch.Tensor | None) -> None:
    """`stream`: the kept output channels (old indices); `in_idx`: the kept input channels
    (None: all)."""
    c = old.c1[-3].out_channels * 2
    (alo, ahi), (blo, bhi), (clo, chi) = _ranges(c)
    a = stream[(stream >= alo) & (stream < ahi)] - alo
    b = stream[(stream >= blo) & (stream < bhi)] - blo
    cc = stream[(stream >= clo) & (stream < chi)] - clo
    _take_cbr(old.c1, new.c1, a, in_idx)
    _take_cbr(old.c2, new.c2, b, a)
    _take_cbr(old.c3, new.c3, cc, b)
    if not isinstance(new.skip, nn.Identity):  # (when the new skip is one, the old projection is lost)
        _take_conv(old.skip[0], stream, in_idx, new.skip[0])
        _take_bn(old.skip[1], stream, new.skip[1])


def prune(net: FAN, config: ModelConfig) -> FAN:
    """`net`'s weights cut down to `config`, which may differ from `net.config` in width only
    (full or depthwise-separable blocks)."""
    old_cfg = net.config
    _check_width_only(old_cfg, config, wider=False)
    stream = choose_stream(net, config.width)
    new = FAN(config).eval()
    with torch.no_grad():
        _copy_stem(net, new)
        for o, n, reads_stream in paired_blocks(net, new):
            _take_block(o, n, stream, stream if reads_stream else None)
        for i in range(old_cfg.stacks):
            cbr = net.features[i][1]
            free = torch.sort(torch.topk(_gamma(cbr), config.width).indices).values
            _take_cbr(cbr, new.features[i][1], free, stream)
            _take_conv(net.heads[i], None, free, new.heads[i])
            if i < old_cfg.stacks - 1:
                _take_conv(net.merge_features[i], stream, free, new.merge_features[i])
                _take_conv(net.merge_heads[i], stream, None, new.merge_heads[i])
    return new


def _put_conv(conv: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor, into: nn.Conv2d) -> None:
    """Copy `conv`'s weights into the (out_idx, in_idx) slots of the wider `into`; the weights
    that read `into`'s new input channels are zeroed (its new outputs keep their init)."""
    new_in = torch.ones(into.in_channels, dtype=torch.bool)
    new_in[in_idx] = False
    into.weight.data[:, new_in] = 0.0
    into.weight.data[out_idx[:, None], in_idx[None, :]] = conv.weight.detach()
    if conv.bias is not None:
        into.bias.data[out_idx] = conv.bias.detach()


def _put_bn(bn: nn.BatchNorm2d, idx: torch.Tensor, into: nn.BatchNorm2d) -> None:
    """`bn`'s channels into slots `idx` of `into` (its other channels keep their init)."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(into, name).data[idx] = getattr(bn, name).detach()


def _put_depthwise(conv: nn.Conv2d, idx: torch.Tensor, into: nn.Conv2d) -> None:
    """A depthwise convolution's kernels into channels `idx` of the wider `into` (its new
    channels, which read only new inputs, keep their init)."""
    into.weight.data[idx] = conv.weight.detach()


def _put_block(old: HierarchicalBlock, new: HierarchicalBlock, stream: torch.Tensor,
               in_idx: torch.Tensor) -> None:
    """`stream`: where each old output channel goes; `in_idx`: where each old input went. A
    depthwise-separable range (`tracker.core.model._separable`: depthwise conv-BN-ReLU, then
    pointwise conv-BN-ReLU) keeps its depthwise kernels on its old input channels; its
    pointwise convolution is widened as a full one is."""
    c = old.c1[-3].out_channels * 2
    a, b, cc = (torch.arange(hi - lo) for lo, hi in _ranges(c))  # each range's start
    for cbr_old, cbr_new, out_idx, inp in ((old.c1, new.c1, a, in_idx), (old.c2, new.c2, b, a),
                                           (old.c3, new.c3, cc, b)):
        if cbr_old[0].groups > 1:  # depthwise-separable
            _put_depthwise(cbr_old[0], inp, cbr_new[0])
            _put_bn(cbr_old[1], inp, cbr_new[1])
        _put_conv(cbr_old[-3], out_idx, inp, cbr_new[-3])
        _put_bn(cbr_old[-2], out_idx, cbr_new[-2])
    if not isinstance(old.skip, nn.Identity):
        _put_conv(old.skip[0], stream, in_idx, new.skip[0])
        _put_bn(old.skip[1], stream, new.skip[1])


def widen(net: FAN, config: ModelConfig, seed: int = 0) -> FAN:
    """`net` grown to `config` (which may differ from `net.config` in width only, and be wider),
    computing the same heatmaps: nothing reads its new channels yet (the module's docstring)."""
    old_cfg = net.config
    _check_width_only(old_cfg, config, wider=True)
    torch.manual_seed(seed)
    new = FAN(config).eval()
    stream = torch.cat([nlo + torch.arange(hi - lo)
                        for (lo, hi), (nlo, _) in zip(_ranges(old_cfg.width), _ranges(config.width))])
    stem_out = torch.arange(2 * old_cfg.stem_width)
    free = torch.arange(old_cfg.width)  # the features' 1x1 outputs: the old ones first
    with torch.no_grad():
        _copy_stem(net, new)
        for o, n, reads_stream in paired_blocks(net, new):
            _put_block(o, n, stream, stream if reads_stream else stem_out)
        for i in range(old_cfg.stacks):
            _put_conv(net.features[i][1][0], free, stream, new.features[i][1][0])
            _put_bn(net.features[i][1][1], free, new.features[i][1][1])
            _put_conv(net.heads[i], torch.arange(config.n_points), free, new.heads[i])
            if i < old_cfg.stacks - 1:
                _put_conv(net.merge_features[i], stream, free, new.merge_features[i])
                _put_conv(net.merge_heads[i], stream, torch.arange(config.n_points), new.merge_heads[i])
    return new


def stack(net: FAN, config: ModelConfig) -> FAN:
    """`net` with more stacks (`config` differs from `net.config` in `stacks` only), computing
    the same heatmaps: each new stack is a copy of the last one and the merges that feed it are
    zero, so it reads what the last one read and says what it said until training parts them."""
    old_cfg = net.config
    if {**old_cfg.to_dict(), "stacks": config.stacks} != config.to_dict() or config.stacks <= old_cfg.stacks:
        raise ValueError(f"stacking adds stacks only: {old_cfg} -> {config}")
    new = FAN(config).eval()
    own = new.state_dict()
    own.update(net.state_dict())
    new.load_state_dict(own)
    last = old_cfg.stacks - 1
    with torch.no_grad():
        for i in range(old_cfg.stacks, config.stacks):
            for part in ("hourglasses", "features", "heads"):
                getattr(new, part)[i].load_state_dict(getattr(net, part)[last].state_dict())
        for i in range(last, config.stacks - 1):
            for merge in (new.merge_features[i], new.merge_heads[i]):
                merge.weight.zero_()
                merge.bias.zero_()
    return new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="a training checkpoint or a shipped .pt")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the narrower, wider or more stacked preset")
    ap.add_argument("--out", type=Path, required=True, help="the new weights, for TrainConfig.init")
    args = ap.parse_args(argv)
    net, _ = load_torch(args.source)
    net = net.float()
    try:
        cfg = PRESETS[args.preset]
        new = net  # the width first, then the stacks: rt-sep -> rt-sep2-192 prunes, then stacks
        if cfg.width != net.config.width:
            same_stacks = ModelConfig(**{**cfg.to_dict(), "stacks": net.config.stacks})
            new = widen(net, same_stacks) if cfg.width > net.config.width else prune(net, same_stacks)
        if cfg.stacks != net.config.stacks:
            new = stack(new, cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save({"model": new.state_dict(), "model_config": new.config.to_dict()}, args.out)
    n_old, n_new = count_params(net), count_params(new)
    print(f"{args.source} ({net.config.width} wide, {n_old / 1e6:.3f} M) -> {args.out} "
          f"({args.preset}, {new.config.width} wide, {n_new / 1e6:.3f} M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
