"""FAN: stacked hourglass network with hierarchical residual blocks (Bulat & Tzimiropoulos).

Input (B, 3, H, W) float32, normalised as `ModelConfig.mean/std` say, RGB; output
(B, K, H/stride, W/stride) heatmaps of the last stack (`forward_all` returns every stack's).
The configuration and presets live in `tracker.core.model_config`, which needs no torch.
The blocks use conv-BN-ReLU order (rather than FAN's pre-activation) so that every BN folds
into its convolution at export, which matters for CPU speed; the hierarchical, multi-scale
structure of the block (3x3 convs of C/2, C/4, C/4 channels, concatenated) is FAN's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tracker.core.model_config import ModelConfig


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _separable(cin: int, cout: int) -> nn.Sequential:
    """A depthwise 3x3 conv-BN-ReLU, then a pointwise 1x1 conv-BN-ReLU (MobileNet's)."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.ReLU(inplace=True), *_cbr(cin, cout, 1))


class HierarchicalBlock(nn.Module):
    """FAN's hierarchical, parallel and multi-scale residual block: C/2 + C/4 + C/4 channels,
    each a 3x3 convolution, full or depthwise-separable (`ModelConfig.block`)."""

    def __init__(self, cin: int, cout: int, block: str = "hierarchical"):
        super().__init__()
        conv = _separable if block == "separable" else _cbr
        self.c1 = conv(cin, cout // 2)
        self.c2 = conv(cout // 2, cout // 4)
        self.c3 = conv(cout // 4, cout // 4)
        self.skip = (nn.Identity() if cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c1(x)
        b = self.c2(a)
        c = self.c3(b)
        return torch.cat([a, b, c], 1) + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass on (B, width, *hw) features. A level whose side is odd (a 28x28 heatmap's
    7x7 innermost level) pools to the floor and upsamples back to its own size."""

    def __init__(self, depth: int, width: int, hw: tuple[int, int], block: str = "hierarchical"):
        super().__init__()
        self.hw = (int(hw[0]), int(hw[1]))
        self.even = self.hw[0] % 2 == 0 and self.hw[1] % 2 == 0
        self.up = HierarchicalBlock(width, width, block)
        self.low1 = HierarchicalBlock(width, width, block)
        self.low2 = (Hourglass(depth - 1, width, (self.hw[0] // 2, self.hw[1] // 2), block) if depth > 1
                     else HierarchicalBlock(width, width, block))
        self.low3 = HierarchicalBlock(width, width, block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        if self.even:  # as before odd levels existed: a graph that fixes no size
            return self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")
        return self.up(x) + F.interpolate(low, size=self.hw, mode="nearest")


class FAN(nn.Module):
    """Stacked hourglass: (B, 3, H, W) -> (B, K, H/stride, W/stride) heatmaps."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, s, b = config.width, config.stem_width, config.block
        layers = [_cbr(3, s, config.stem_kernel, 2), HierarchicalBlock(s, 2 * s, b)]
        if config.stride == 4:
            layers.append(nn.MaxPool2d(2))
        layers += [HierarchicalBlock(2 * s, c, b)]
        self.stem = nn.Sequential(*layers)
        self.hourglasses = nn.ModuleList(Hourglass(config.depth, c, config.heatmap_hw, b)
                                         for _ in range(config.stacks))
        self.features = nn.ModuleList(
            nn.Sequential(HierarchicalBlock(c, c, b), _cbr(c, c, 1)) for _ in range(config.stacks))
        self.heads = nn.ModuleList(nn.Conv2d(c, config.n_points, 1) for _ in range(config.stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(config.stacks - 1))
        self.merge_heads = nn.ModuleList(nn.Conv2d(config.n_points, c, 1)
                                         for _ in range(config.stacks - 1))

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stack's (B, K, h, w) heatmaps, for intermediate supervision."""
        x = self.stem(x)
        outs = []
        for i in range(self.config.stacks):
            f = self.features[i](self.hourglasses[i](x))
            hm = self.heads[i](f)
            outs.append(hm)
            if i < self.config.stacks - 1:
                x = x + self.merge_features[i](f) + self.merge_heads[i](hm)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[-1]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: FAN) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions only)."""
    macs = 0

    def hook(mod: nn.Conv2d, _inp, out):
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs += out.numel() * k

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, *model.config.input_hw))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return macs
