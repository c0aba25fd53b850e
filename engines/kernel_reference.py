"""Numpy mirror of `engines/kernels/local_soft_argmax.cu`, operation for operation.

The kernel's arithmetic in float32, in the kernel's order (window pixels row-major, sums
accumulated one pixel at a time, the offset as sum(e * d) / sum(e)), vectorised over maps.
Tests hold it equal to `tracker.core.codec.local_soft_argmax_np` (the codec's float32/float64
version) on CPU, and the kernel equal to it on a GPU, so the two links make the kernel equal
to the codec without a GPU in CI.
"""
from __future__ import annotations

import numpy as np


def argmax_ref(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, K, h, w) maps -> integer (ix, iy) each (B, K) int64 and the (B, K) float32 peak.

    numpy.argmax's rules, which the kernel's reduction follows: the lowest flat index wins a
    tie, and the first NaN wins over any number.
    """
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, h * w)  # (B, K, h*w)
    idx = flat.argmax(-1)
    peak = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    return idx % w, idx // w, peak


def _check(heatmaps: np.ndarray, window: int) -> np.ndarray:
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"local_soft_argmax_ref: expected (B, K, h, w) heatmaps, got shape {hm.shape}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"local_soft_argmax_ref: window must be a positive odd number, got {window}")
    return hm.astype(np.float32)  # float16 -> float32 is exact, as the kernel's cvt.f32.f16


def refine_ref(hm: np.ndarray, ix: np.ndarray, iy: np.ndarray, window: int,
               tau: float) -> np.ndarray:
    """The kernel's step 2 on (B, K, h, w) float32 maps around integer peaks (ix, iy), each
    (B, K): (B, K, 2) float64 heatmap points, before the kernel's final rounding to float32."""
    hm = _check(hm, window)
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, h * w)  # (B, K, h*w)
    t = np.float32(tau)
    r = window // 2
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]  # kernel order

    def pixel(dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = ix + dx, iy + dy
        valid = (x >= 0) & (x < w) & (y >= 0) & (y < h)  # (B, K)
        idx = np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)
        return valid, np.take_along_axis(flat, idx[..., None], -1)[..., 0]

    m = np.full((b, k), -np.inf, np.float32)
    for dy, dx in offsets:
        valid, v = pixel(dy, dx)
        m = np.where(valid, np.fmax(m, t * v), m)  # fmaxf: a NaN loses to a number
    s = np.zeros((b, k), np.float32)
    sx = np.zeros((b, k), np.float64)
    sy = np.zeros((b, k), np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for dy, dx in offsets:
            valid, v = pixel(dy, dx)
            e = np.exp(t * v - m)  # float32, as expf
            s = np.where(valid, s + e, s)  # float32 normaliser
            sx = np.where(valid, sx + e.astype(np.float64) * dx, sx)  # double moments
            sy = np.where(valid, sy + e.astype(np.float64) * dy, sy)
        offset = np.stack([sx / s, sy / s], -1)  # (B, K, 2) float64
    return np.stack([ix, iy], -1) + offset


def local_soft_argmax_ref(heatmaps: np.ndarray, window: int = 5, tau: float = 10.0,
                          transforms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the kernel returns for (B, K, h, w) heatmaps (float32 or float16).

    Returns (B, K, 2) float32 points, in heatmap pixels or, with (B, 2, 3) `transforms`
    (heatmap -> frame, applied in double to the float32 matrices), in frame pixels; and the
    (B, K) float32 peak values.
    """
    hm = _check(heatmaps, window)
    b = hm.shape[0]
    ix, iy, peak = argmax_ref(hm)
    xy = refine_ref(hm, ix, iy, window, tau)  # (B, K, 2) float64
    if transforms is not None:
        tr = np.asarray(transforms, np.float32)
        if tr.shape != (b, 2, 3):
            raise ValueError(f"local_soft_argmax_ref: transforms of shape {tr.shape}, expected {(b, 2, 3)}")
        t_ = tr.astype(np.float64)[:, None]  # (B, 1, 2, 3)
        x, y = xy[..., 0], xy[..., 1]
        xy = np.stack([(t_[..., 0, 0] * x + t_[..., 0, 1] * y) + t_[..., 0, 2],
                       (t_[..., 1, 0] * x + t_[..., 1, 1] * y) + t_[..., 1, 2]], -1)
    return xy.astype(np.float32), peak.astype(np.float32)
