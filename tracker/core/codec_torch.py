"""Torch twins of `tracker.core.codec` (same conventions, batched, on any device).

Shapes: points (B, K, 2) in (x, y) heatmap pixels, heatmaps (B, K, h, w).
"""
from __future__ import annotations

import torch

from tracker.core.codec import DECODERS, ENCODINGS


def encode(xy_hm: torch.Tensor, size_hw: tuple[int, int], sigma: float,
           encoding: str = "continuous", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Render (B, K, 2) heatmap-space points as (B, K, h, w) Gaussians with peak 1."""
    if xy_hm.ndim < 2 or xy_hm.shape[-1] != 2:
        raise ValueError(f"encode: expected (..., K, 2) points, got shape {tuple(xy_hm.shape)}")
    if encoding == "floor":
        xy_hm = torch.floor(xy_hm)
    elif encoding == "round":
        xy_hm = torch.floor(xy_hm + 0.5)
    elif encoding != "continuous":
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    h, w = size_hw
    xs = torch.arange(w, dtype=xy_hm.dtype, device=xy_hm.device)
    ys = torch.arange(h, dtype=xy_hm.dtype, device=xy_hm.device)
    gx = torch.exp(-((xs - xy_hm[..., 0:1]) ** 2) / (2 * sigma**2))  # (B, K, w)
    gy = torch.exp(-((ys - xy_hm[..., 1:2]) ** 2) / (2 * sigma**2))  # (B, K, h)
    hm = gy[..., :, None] * gx[..., None, :]  # (B, K, h, w)
    if mask is not None:
        hm = hm * mask[..., None, None].to(hm.dtype)
    return hm


def decode(hm: torch.Tensor, decoder: str = "local_soft_argmax", window: int = 5,
           tau: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, h, w) heatmaps -> ((B, K, 2) heatmap-space points, (B, K) peaks).

    Same decoders as `tracker.core.codec.decode_np`; soft_argmax and the local soft-argmax offset
    are differentiable with respect to the heatmap values.
    """
    if hm.ndim != 4:
        raise ValueError(f"decode: expected (B, K, h, w) heatmaps, got shape {tuple(hm.shape)}")
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, h * w)  # (B, K, h*w)
    peak, idx = flat.max(-1)
    ix, iy = idx % w, torch.div(idx, w, rounding_mode="floor")
    if decoder == "argmax":
        return torch.stack([ix, iy], -1).to(hm.dtype), peak
    if decoder == "argmax_shift":
        def at(x, y):
            return flat.gather(-1, (y.clamp(0, h - 1) * w + x.clamp(0, w - 1))[..., None])[..., 0]

        dx = torch.sign(at(ix + 1, iy) - at(ix - 1, iy)) * ((ix > 0) & (ix < w - 1))
        dy = torch.sign(at(ix, iy + 1) - at(ix, iy - 1)) * ((iy > 0) & (iy < h - 1))
        return torch.stack([ix + 0.25 * dx, iy + 0.25 * dy], -1).to(hm.dtype), peak
    if decoder == "soft_argmax":
        p = torch.softmax(tau * flat, -1).reshape(b, k, h, w)
        x = (p.sum(-2) * torch.arange(w, device=hm.device, dtype=hm.dtype)).sum(-1)
        y = (p.sum(-1) * torch.arange(h, device=hm.device, dtype=hm.dtype)).sum(-1)
        return torch.stack([x, y], -1), peak
    if decoder == "local_soft_argmax":
        r = window // 2
        d = torch.arange(-r, r + 1, device=hm.device)
        xs = ix[..., None, None] + d[None, :]  # (B, K, 1, d)
        ys = iy[..., None, None] + d[:, None]  # (B, K, d, 1)
        valid = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)  # (B, K, d, d)
        gidx = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(b, k, -1)
        v = flat.gather(-1, gidx).reshape(valid.shape)
        logits = (tau * v).masked_fill(~valid, float("-inf"))
        p = torch.softmax(logits.reshape(b, k, -1), -1).reshape(valid.shape)
        ox = (p * d[None, :].to(hm.dtype)).sum((-1, -2))
        oy = (p * d[:, None].to(hm.dtype)).sum((-1, -2))
        return torch.stack([ix + ox, iy + oy], -1), peak
    raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
