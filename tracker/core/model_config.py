"""The FAN's configuration, torch-free: architecture and the input contract that ship with the
weights (`ModelConfig`), and the named presets. The network itself is `tracker.core.model.FAN`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BLOCKS = ("hierarchical", "separable")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and the input contract that ships with the weights."""

    stacks: int = 2
    width: int = 256
    depth: int = 4  # hourglass levels (number of 2x poolings inside one hourglass)
    n_points: int = 68
    input_hw: tuple[int, int] = (256, 256)
    heatmap_hw: tuple[int, int] = (64, 64)
    stem_width: int = 64
    stem_kernel: int = 3  # the first convolution's; FAN's is 7
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    # the residual block's convolutions: "hierarchical" (FAN's full 3x3 convolutions) or
    # "separable" (each a depthwise 3x3 then a pointwise 1x1, as mobile models do)
    block: str = "hierarchical"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_hw", tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, "heatmap_hw", tuple(int(v) for v in self.heatmap_hw))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        sh, sw = self.input_hw[0] / self.heatmap_hw[0], self.input_hw[1] / self.heatmap_hw[1]
        if sh != sw or sh not in (2, 4):
            raise ValueError(f"input {self.input_hw} / heatmap {self.heatmap_hw}: stride must be 2 or 4 on both axes")
        # every pooling but the innermost halves an even side (the innermost may floor an odd
        # one: the hourglass upsamples back to the skip's size)
        if self.heatmap_hw[0] % (2**(self.depth - 1)) or self.heatmap_hw[1] % (2**(self.depth - 1)):
            raise ValueError(f"heatmap {self.heatmap_hw} not divisible by 2**(depth-1)={2**(self.depth - 1)}")
        if self.width % 4:
            raise ValueError("width must be a multiple of 4")
        if self.block not in BLOCKS:
            raise ValueError(f"block {self.block!r}: one of {BLOCKS}")

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float32 network input,
        (pixel / 255 - mean) / std, as pixel * scale + offset one channel at a time (a tenth of
        the time of the whole-array expression, which mattered on the tracker's serial path)."""
        crops = np.asarray(crops)
        b, h, w = crops.shape[:3]
        x = np.empty((b, 3, h, w), np.float32)
        for c in range(3):
            scale = np.float32(1.0 / (255.0 * self.std[c]))
            np.multiply(crops[..., c], scale, out=x[:, c], casting="unsafe")
            x[:, c] += np.float32(-self.mean[c] / self.std[c])
        return x

    @property
    def stride(self) -> int:
        return self.input_hw[0] // self.heatmap_hw[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


PRESETS = {
    # The paper's configuration.
    "fan2-256": ModelConfig(stacks=2, width=256, depth=4, input_hw=(256, 256), heatmap_hw=(64, 64),
                            stem_kernel=7),
    # Real-time CPU models: 128x128 input, 32x32 heatmaps.
    "rt-s": ModelConfig(stacks=1, width=64, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                        stem_width=32),
    "rt-m": ModelConfig(stacks=1, width=96, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                        stem_width=32),
    # rt-m widened to 128 channels (`python -m train.prune rt-m.pt --preset rt-l`: exact): the
    # cost of rt-m2's second stack spent on width instead.
    "rt-l": ModelConfig(stacks=1, width=128, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                        stem_width=32),
    # rt-l on a smaller input (96x96, 24x24 heatmaps): rt-l's weights' shapes, so it starts from
    # rt-l's; its width at less than rt-m's cost.
    "rt-l-96": ModelConfig(stacks=1, width=128, depth=3, input_hw=(96, 96), heatmap_hw=(24, 24),
                           stem_width=32),
    # rt-l on a 112-px input, 28x28 heatmaps (the innermost level pools 7x7 to 3x3 and
    # upsamples back to 7x7): rt-l's weights' shapes, at about rt-m's cost.
    "rt-l-112": ModelConfig(stacks=1, width=128, depth=3, input_hw=(112, 112), heatmap_hw=(28, 28),
                            stem_width=32),
    # rt-m on a larger input (160x160, 40x40 heatmaps): the same weights' shapes, so it starts
    # from rt-m's; costs what rt-m2 does.
    "rt-m-160": ModelConfig(stacks=1, width=96, depth=3, input_hw=(160, 160), heatmap_hw=(40, 40),
                            stem_width=32),
    # rt-l widened exactly to 192 channels (`python -m train.prune rt-l.pt --preset rt-xl`): the
    # width lever again, at about twice rt-l's cost, inside the accurate preset's 8 ms budget.
    "rt-xl": ModelConfig(stacks=1, width=192, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                         stem_width=32),
    # Depthwise-separable blocks at twice rt-l's width: about rt-l-112's latency on this CPU
    # (onnxruntime runs depthwise convolutions at about the MACs per ms of full ones) with
    # 0.69 M parameters; no trained model shares its weights' shapes, so it trains from scratch.
    "rt-sep": ModelConfig(stacks=1, width=256, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                          stem_width=32, block="separable"),
    # rt-sep on a 112-px input, 28x28 heatmaps (as rt-l-112 is to rt-l): rt-sep's weights'
    # shapes, so it is fine-tuned from them, at about three quarters of rt-sep's MACs.
    "rt-sep-112": ModelConfig(stacks=1, width=256, depth=3, input_hw=(112, 112),
                              heatmap_hw=(28, 28), stem_width=32, block="separable"),
    # rt-sep on a 160-px input, 40x40 heatmaps (the issue's larger input): rt-sep's weights'
    # shapes, fine-tuned from them on a 240-px cache, at 1.56 times rt-sep's MACs; the accurate
    # preset until rt-sep2-192.
    "rt-sep-160": ModelConfig(stacks=1, width=256, depth=3, input_hw=(160, 160),
                              heatmap_hw=(40, 40), stem_width=32, block="separable"),
    # rt-sep widened exactly to 384 channels (`python -m train.prune tracker/models/rt-sep.pt
    # --preset rt-sep-xl`): 0.60 GMACs, about two thirds of rt-xl's latency on this CPU.
    "rt-sep-xl": ModelConfig(stacks=1, width=384, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                             stem_width=32, block="separable"),
    # rt-sep with a second stack (intermediate supervision, as FAN: the lever that took rt-m to
    # rt-m2), warm-started from rt-sep by `python -m train.prune ... --preset rt-sep2` (the
    # first stack copied into the second, the merges zero: it starts as rt-sep); 0.62 GMACs,
    # rt-sep-xl's cost.
    "rt-sep2": ModelConfig(stacks=2, width=256, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                           stem_width=32, block="separable"),
    # Two narrower stacks at about the default's cost (0.38 GMACs), trained from scratch
    # (train/checkpoints/rt-sep2-192-scratch/; pruning rt-sep to 192 channels and stacking it,
    # `python -m train.prune ... --preset rt-sep2-192`, started too far behind); with an
    # occlusion cycle on top (train/checkpoints/rt-sep2-192-occl/), the accurate preset.
    "rt-sep2-192": ModelConfig(stacks=2, width=192, depth=3, input_hw=(128, 128),
                               heatmap_hw=(32, 32), stem_width=32, block="separable"),
    # Two stacks of 160 separable channels: the default's MACs (0.28 GMACs against 0.30), 1.04-1.08
    # times its onnxruntime latency; trained from scratch with rt-sep's recipe
    # (train/checkpoints/rt-sep2-160-scratch/) the second stack's gain fell inside the noise at
    # the default's cost (-0.05 points face by face; -0.06 after an occlusion and distillation
    # cycle, train/checkpoints/rt-sep2-160-distil/, for 1.1-1.3 times rt-sep's inference in the
    # tracker).
    "rt-sep2-160": ModelConfig(stacks=2, width=160, depth=3, input_hw=(128, 128),
                               heatmap_hw=(32, 32), stem_width=32, block="separable"),
    # rt-m with a second stack (intermediate supervision, as FAN); an early accurate preset.
    "rt-m2": ModelConfig(stacks=2, width=96, depth=3, input_hw=(128, 128), heatmap_hw=(32, 32),
                         stem_width=32),
}
