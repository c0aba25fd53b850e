"""Heatmap losses: L2 on targets from the codec (the paper's), the adaptive wing loss, the
Siamese consistency loss (paper eq. 6), and a loss on the decoded points themselves.

Shapes: heatmaps (B, K, h, w); weights (B,) per sample or (B, K) per point; point masks (B, K).

Both losses are weighted means over the batch: the sum of the weighted per-sample errors over
`total`, by default `weight.sum()`. Per-point weights weigh each point's error within its
sample, and the sample weighs their mean (a row of equal weights is its sample's weight). A
data-parallel rank that holds a slice of the global batch passes `total` = the global batch's
weight sum / world size, so that DDP's mean of the ranks' gradients is the gradient of the
global batch's loss (see `train.loop`).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from tracker.core import codec_torch
from train.affine import invert


def heatmap_l2(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               mask: torch.Tensor | None = None, total: float | None = None) -> torch.Tensor:
    """Weighted mean over samples of the per-map summed squared error, averaged over points."""
    err = ((pred - target) ** 2).sum((-1, -2))  # (B, K)
    if mask is not None:
        if weight.dim() != 1:
            raise ValueError("heatmap_l2: a point mask takes per-sample weights (B,)")
        err = err * mask
        per_sample = err.sum(-1) / mask.sum(-1).clamp(min=1)
        return (per_sample * weight).sum() / _total(weight, total)
    return _weighted_mean(err, weight, total)


def heatmap_awing(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                  total: float | None = None, alpha: float = 2.1, omega: float = 14.0,
                  epsilon: float = 1.0, theta: float = 0.5, foreground_weight: float = 10.0,
                  ) -> torch.Tensor:
    """Adaptive wing loss (Wang, Bo, Fuxin, ICCV 2019) with its weighted loss map: per pixel
    omega * ln(1 + (|y - p| / epsilon) ** (alpha - y)) below `theta`, linear beyond it (A and C
    make the two pieces meet smoothly); pixels of the target's 3x3-dilated foreground
    (y > 0.2) weigh 1 + `foreground_weight`. Its exponent falls to alpha - 1 near a Gaussian's
    peak, so small errors there cost more than under L2, which is what sharpens the peaks.
    Summed over each map, averaged over points, weighted mean over samples like `heatmap_l2`."""
    delta = (target - pred).abs()
    a = alpha - target
    r = theta / epsilon
    big_a = omega / (1 + r**a) * a * r ** (a - 1) / epsilon
    big_c = theta * big_a - omega * torch.log1p(r**a)
    per_pixel = torch.where(delta < theta, omega * torch.log1p((delta / epsilon) ** a), big_a * delta - big_c)
    fg = F.max_pool2d((target > 0.2).to(pred.dtype), 3, stride=1, padding=1)
    return _weighted_mean((per_pixel * (1 + foreground_weight * fg)).sum((-1, -2)), weight, total)


def decoded_l1(pred: torch.Tensor, xy_hm: torch.Tensor, weight: torch.Tensor,
               total: float | None = None, window: int = 5, tau: float = 10.0) -> torch.Tensor:
    """The distance in heatmap pixels between the points the tracker would decode from `pred`
    (the local soft-argmax, `tracker.core.codec_torch.decode`, differentiable in the window's
    values) and the labels `xy_hm` (B, K, 2): a heatmap loss is dominated by the map's many
    pixels and only weakly asks where inside the window the mass sits, which is the sub-pixel
    part of the answer. A point whose argmax lies outside the label's window counts 0 (its
    window's values cannot move it there: the heatmap loss moves the peak). Per point, then
    weighted mean over samples like `heatmap_l2`."""
    xy, _ = codec_torch.decode(pred, "local_soft_argmax", window, tau)
    err = (xy - xy_hm).norm(dim=-1)  # (B, K)
    w = pred.shape[-1]
    idx = pred.flatten(-2).argmax(-1)  # (B, K)
    peak = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], -1).to(xy_hm.dtype)
    near = ((peak - xy_hm).abs().amax(-1) <= window // 2).to(err.dtype)
    return _weighted_mean(err * near, weight, total)


#: `TrainConfig.loss` names the loss on the heatmaps of a plain (non-Siamese) step.
LOSSES = {"l2": heatmap_l2, "awing": heatmap_awing}


def sample_weight(weight):
    """Each sample's weight in the batch mean: (B,) weights as they are, (B, K) per-point
    weights their row's mean (numpy or torch)."""
    return weight if weight.ndim == 1 else weight.mean(-1)


def _weighted_mean(err: torch.Tensor, weight: torch.Tensor, total: float | None) -> torch.Tensor:
    """The weighted mean over samples of (B, K) per-point errors, averaged over points;
    `weight` (B,) per sample or (B, K) per point (see the module docstring)."""
    if weight.dim() == 1:
        return (err.mean(-1) * weight).sum() / _total(weight, total)
    return (err * weight).mean(-1).sum() / _total(sample_weight(weight), total)


def _total(weight: torch.Tensor, total: float | None) -> torch.Tensor | float:
    """What a weighted batch mean divides by: `total`, or the batch's own weight sum."""
    return weight.sum().clamp(min=1e-8) if total is None else max(total, 1e-8)


def pixel_theta(m_src_to_dst: np.ndarray | torch.Tensor, src_hw: tuple[int, int],
                dst_hw: tuple[int, int]) -> torch.Tensor:
    """(B, 2, 3) float32 `affine_grid` thetas (normalised dst -> normalised src,
    align_corners=False) of a batch of (B, 2, 3) pixel transforms src -> dst (pixel-centre
    convention), numpy or torch; computed in float64 on the transforms' device."""
    m = torch.as_tensor(m_src_to_dst).to(torch.float64)
    inv = invert(m)  # (B, 2, 3) dst pixels -> src pixels
    inv3 = F.pad(inv, (0, 0, 0, 1))  # (B, 3, 3), bottom row (0, 0, 1)
    inv3[:, 2, 2] = 1.0
    p2n_src, n2p_dst = _frames(tuple(src_hw), tuple(dst_hw), m.device)
    return (p2n_src @ inv3 @ n2p_dst)[:, :2].to(torch.float32)


@functools.lru_cache(maxsize=64)
def _frames(src_hw: tuple[int, int], dst_hw: tuple[int, int],
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 3) float64 src pixels -> normalised src, and normalised dst -> dst pixels
    (x_pix = ((x_n + 1) * W - 1) / 2), made once per device: a copy to a GPU waits for it."""
    hd, wd = dst_hw
    hs, ws = src_hw
    p2n_src = torch.tensor([[2 / ws, 0, 1 / ws - 1], [0, 2 / hs, 1 / hs - 1], [0, 0, 1]],
                           dtype=torch.float64).to(device)
    n2p_dst = torch.tensor([[wd / 2, 0, (wd - 1) / 2], [0, hd / 2, (hd - 1) / 2], [0, 0, 1]],
                           dtype=torch.float64).to(device)
    return p2n_src, n2p_dst


def affine_grid_for(m_src_to_dst: np.ndarray | torch.Tensor, src_hw: tuple[int, int],
                    dst_hw: tuple[int, int]) -> torch.Tensor:
    """Sampling grid that warps (B, K, h_src, w_src) maps into the dst frame through a batch of
    (B, 2, 3) pixel transforms src -> dst (pixel-centre convention, align_corners=False)."""
    hd, wd = dst_hw
    return F.affine_grid(pixel_theta(m_src_to_dst, src_hw, dst_hw), [len(m_src_to_dst), 1, hd, wd],
                         align_corners=False)


def warp_heatmaps(hm: torch.Tensor, m_src_to_dst: np.ndarray | torch.Tensor,
                  dst_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp (B, K, h, w) heatmaps through (B, 2, 3) heatmap-pixel transforms (numpy, or torch
    on any device); also return the (B, 1, h', w') mask of destination pixels that came from
    inside the source map."""
    grid = affine_grid_for(m_src_to_dst, hm.shape[-2:], dst_hw).to(hm.device)
    warped = F.grid_sample(hm, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones(hm.shape[0], 1, *hm.shape[-2:], device=hm.device)
    inside = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped, (inside > 0.999).to(hm.dtype)


def siamese_l2(pred_a: torch.Tensor, pred_b: torch.Tensor, m_a_to_ref: np.ndarray | torch.Tensor,
               m_b_to_ref: np.ndarray | torch.Tensor, target_ref: torch.Tensor, weight: torch.Tensor,
               total: float | None = None) -> torch.Tensor:
    """Paper eq. 6: both branches' heatmaps warped back to the reference frame and summed; the
    L2 is taken between the sum and twice the reference target, on pixels both branches see."""
    wa, ma = warp_heatmaps(pred_a, m_a_to_ref, target_ref.shape[-2:])
    wb, mb = warp_heatmaps(pred_b, m_b_to_ref, target_ref.shape[-2:])
    mask = ma * mb
    err = (((wa + wb - 2 * target_ref) * mask) ** 2).sum((-1, -2)).mean(-1)  # (B,)
    return (err * weight).sum() / _total(weight, total)
