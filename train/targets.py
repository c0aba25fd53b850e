"""What one training step feeds the network and compares it with: the normalised input
batch, heatmap targets from points through the codec, the weight of each face's label, and,
for the Siamese loss, the warps from each augmented branch's heatmaps back to the canonical
(un-augmented) crop.

Points are input-crop pixels (pixel centres on integers, see `tracker.core.geometry`); the
codec's `to_heatmap` takes them to heatmap pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from tracker.core import codec_torch
from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import apply, compose, invert
from tracker.core.landmarks import IBUG68, LandmarkScheme
from tracker.core.model_config import ModelConfig
from train import affine
from train.cache import Cache
from train.config import TrainConfig

#: The layout training keeps models and inputs in: channels last, in which the CPU's separable
#: convolutions train faster than in the default layout (`scripts/bench_train_step.py`,
#: docs/results/train_step.md).
MEMORY_FORMAT = torch.channels_last


def to_tensor(images: np.ndarray, mc: ModelConfig) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32 normalised network input, in
    `MEMORY_FORMAT`."""
    return torch.from_numpy(mc.normalise(images)).contiguous(memory_format=MEMORY_FORMAT)


def heatmap_targets(codec: HeatmapCodec, pts_input: np.ndarray) -> torch.Tensor:
    """(B, K, 2) input-crop points -> (B, K, h, w) float32 target heatmaps."""
    xy_hm = apply(codec.to_heatmap, pts_input)
    return codec_torch.encode(torch.as_tensor(xy_hm, dtype=torch.float32), codec.heatmap_hw,
                              codec.sigma, codec.encoding)


def label_weights(cache: Cache, cfg: TrainConfig) -> np.ndarray:
    """Loss weight of each source's labels: human labels 1.0, teacher labels
    `cfg.teacher_loss_weight`; (n_sources,), or (n_sources, K) per point when
    `cfg.teacher_part_weights` weighs the teacher's points of some parts apart. Index it with
    `cache.source[idx]`. A mirrored sample keeps its weights: it relabels its points, so a jaw
    point stays a jaw point."""
    human = set(cfg.human_sources)
    w = np.array([1.0 if n in human else cfg.teacher_loss_weight for n in cache.names])
    if not cfg.teacher_part_weights:
        return w
    scheme = IBUG68  # the caches' markup (train.cache)
    unknown = set(cfg.teacher_part_weights) - set(scheme.groups)
    if unknown:
        raise ValueError(f"teacher_part_weights: no part {sorted(unknown)} in the {scheme.name} "
                         f"markup; its parts: {sorted(scheme.groups)}")
    w = np.repeat(w[:, None], scheme.n_points, 1)
    teacher = [i for i, n in enumerate(cache.names) if n not in human]
    for part, value in cfg.teacher_part_weights.items():
        w[np.ix_(teacher, scheme.groups[part])] = value
    return w


def branch_to_canonical(codec: HeatmapCodec, canon: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(B, 2, 3) transforms from a branch's heatmap pixels to the canonical crop's heatmap
    pixels; `canon` (2, 3) and `m` (B, 2, 3) take cache-crop pixels to the canonical and the
    branch's input pixels."""
    to_hm = codec.to_heatmap
    return compose(to_hm, compose(compose(canon, invert(m)), invert(to_hm)))


def unmirror(hm: torch.Tensor, m: np.ndarray, scheme: LandmarkScheme = IBUG68) -> torch.Tensor:
    """(B, K, h, w) heatmaps of a branch whose (B, 2, 3) transforms `m` may mirror: the maps of
    mirrored samples are relabelled back with the scheme's flip permutation (the mirror itself
    is undone by `branch_to_canonical`)."""
    mirrored = torch.as_tensor(np.linalg.det(m[:, :, :2]) < 0, device=hm.device)  # (B,)
    return torch.where(mirrored[:, None, None, None], hm[:, list(scheme.flip)], hm)


# -- distillation: a teacher's heatmaps as a student's targets ----------------------------------
def resample(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, S, S) images -> (B, C, side, side), pixel x_t going to x_s = (x_t + 0.5) * side / S
    - 0.5 (`encode_points`): area averaging where S is a multiple of `side`, antialiased
    bilinear otherwise (256 -> 112 shrinks along that mapping where area's windows would not;
    112 -> 128 is plain bilinear). A teacher's input shrinks to its student's (`train.sprint`),
    a student's grows to a larger teacher's (`train.loop`)."""
    s = x.shape[-1]
    if s == side:
        return x
    if s % side == 0:
        return torch.nn.functional.interpolate(x, size=(side, side), mode="area")
    return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True,
                                           align_corners=False)


def student_input_points(xy_teacher_input: torch.Tensor, codec_t: HeatmapCodec,
                         codec_s: HeatmapCodec) -> torch.Tensor:
    """(B, K, 2) points in the teacher's input pixels -> the same in the student's, whose input
    is the teacher's resampled to its size (`resample`): x_s = (x_t + 0.5) * r - 0.5."""
    r = codec_s.input_hw[0] / codec_t.input_hw[0]
    return (xy_teacher_input + 0.5) * r - 0.5


def encode_student(xy_student_input: torch.Tensor, codec_s: HeatmapCodec) -> torch.Tensor:
    """(B, K, 2) points in the student's input pixels -> its (B, K, h, w) targets."""
    to_hm = torch.as_tensor(codec_s.to_heatmap, dtype=torch.float32).to(xy_student_input.device)
    return codec_torch.encode(affine.apply(to_hm, xy_student_input), codec_s.heatmap_hw, codec_s.sigma,
                              codec_s.encoding)


def encode_points(xy_teacher_input: torch.Tensor, codec_t: HeatmapCodec,
                  codec_s: HeatmapCodec) -> torch.Tensor:
    """(B, K, 2) points in the teacher's input pixels -> (B, K, h, w) targets of the student."""
    return encode_student(student_input_points(xy_teacher_input, codec_t, codec_s), codec_s)


def teacher_points(hm_teacher: torch.Tensor, codec_t: HeatmapCodec) -> torch.Tensor:
    """The teacher's (B, K, h_t, w_t) heatmaps decoded (its codec's decoder) to (B, K, 2)
    points in its input pixels."""
    to_input = torch.as_tensor(codec_t.to_input, dtype=torch.float32).to(hm_teacher.device)
    xy_hm, _ = codec_torch.decode(hm_teacher, codec_t.decoder, codec_t.window, codec_t.tau)
    return affine.apply(to_input, xy_hm)


def student_targets(hm_teacher: torch.Tensor, codec_t: HeatmapCodec, codec_s: HeatmapCodec) -> torch.Tensor:
    """The teacher's (B, K, h_t, w_t) heatmaps decoded (its codec's decoder) and encoded as the
    student's (B, K, h_s, w_s) targets."""
    return encode_points(teacher_points(hm_teacher, codec_t), codec_t, codec_s)


def ensemble_targets(hms: list[torch.Tensor], codecs_t: list[HeatmapCodec],
                     codec_s: HeatmapCodec) -> torch.Tensor:
    """Several teachers' heatmaps (each with its codec) as one set of student targets: each
    teacher's decoded points carried to the student's input pixels, averaged, encoded. One
    teacher gives `student_targets`."""
    xy = [student_input_points(teacher_points(h, c), c, codec_s) for h, c in zip(hms, codecs_t)]
    return encode_student(torch.stack(xy).mean(0), codec_s)
