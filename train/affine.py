"""Batched affine pixel transforms as torch tensors, on whatever device holds them: (B, 2, 3)
or (2, 3) maps with the conventions of `tracker.core.geometry` (pixel centres on integers),
of which these are the torch twins; used by the losses' heatmap warps and the device
augmentation."""
from __future__ import annotations

import torch


def apply(m: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) or (2, 3) transforms applied to (B, K, 2) points."""
    return xy @ m[..., :2].transpose(-1, -2) + m[..., None, :, 2]


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The transform `outer` after `inner` ((B, 2, 3) or (2, 3) each)."""
    rot = outer[..., :2] @ inner[..., :2]
    t = (outer[..., :2] @ inner[..., 2:])[..., 0] + outer[..., 2]
    return torch.cat([rot, t[..., None]], -1)


def invert(m: torch.Tensor) -> torch.Tensor:
    """The inverse of (B, 2, 3) or (2, 3) affine transforms."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    rot = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
    t = -(rot @ m[..., 2:])[..., 0]
    return torch.cat([rot, t[..., None]], -1)
