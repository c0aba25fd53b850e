"""Heatmap codec: landmarks <-> heatmaps (Bulat et al., BMVC 2021), numpy implementation.

Conventions:
- heatmaps are (B, K, h, w) (or (K, h, w)); points are (B, K, 2) in (x, y) order;
- heatmap pixel (i, j) has its centre at x = j, y = i in heatmap coordinates; for a stride s
  between the network input and the heatmap, x_input = (x_hm + 0.5) * s - 0.5
  (see `tracker.core.geometry.heatmap_transform`);
- missing points travel as a boolean mask (B, K); their heatmaps are all zero.

The torch twins (batched, differentiable where they can be) live in `tracker.core.codec_torch` and
use the same arithmetic; `HeatmapCodec` is the one object that the trainer and the tracker
share, so targets and decoding cannot drift apart.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tracker.core.geometry import apply, heatmap_transform, invert

ENCODINGS = ("continuous", "floor", "round")
DECODERS = ("argmax", "argmax_shift", "soft_argmax", "local_soft_argmax")


def quantise(xy_hm: np.ndarray, encoding: str) -> np.ndarray:
    """Position of the Gaussian's centre for an encoding: the exact point (paper eq. 3) or
    the point rounded to the pixel grid (eq. 2, floor or round)."""
    if encoding == "continuous":
        return xy_hm
    if encoding == "floor":
        return np.floor(xy_hm)
    if encoding == "round":
        return np.floor(xy_hm + 0.5)
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def encode_np(xy_hm: np.ndarray, size_hw: tuple[int, int], sigma: float,
              encoding: str = "continuous", mask: np.ndarray | None = None) -> np.ndarray:
    """Render (..., K, 2) heatmap-space points as (..., K, h, w) Gaussians with peak 1."""
    xy_hm = np.asarray(xy_hm, np.float64)
    if xy_hm.ndim < 2 or xy_hm.shape[-1] != 2:
        raise ValueError(f"encode: expected (..., K, 2) points, got shape {xy_hm.shape}")
    xy_hm = quantise(xy_hm, encoding)
    h, w = size_hw
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs - xy_hm[..., 0:1]) ** 2) / (2 * sigma**2))  # (..., K, w)
    gy = np.exp(-((ys - xy_hm[..., 1:2]) ** 2) / (2 * sigma**2))  # (..., K, h)
    hm = gy[..., :, None] * gx[..., None, :]  # (..., K, h, w)
    if mask is not None:
        hm = hm * np.asarray(mask, bool)[..., None, None]
    return hm.astype(np.float32)


def _argmax_np(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (ix, iy) of each map's maximum and the maximum, for (B, K, h, w) maps."""
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, h * w)  # (B, K, h*w)
    idx = flat.argmax(-1)
    peak = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    return idx % w, idx // w, peak


def decode_np(hm: np.ndarray, decoder: str = "local_soft_argmax", window: int = 5,
              tau: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode (B, K, h, w) heatmaps to (B, K, 2) heatmap-space points and (B, K) peak values.

    - argmax: the integer position of the maximum;
    - argmax_shift: argmax moved 0.25 px towards the higher neighbour on each axis;
    - soft_argmax: softmax(tau * h) over the whole map, expected position;
    - local_soft_argmax: softmax(tau * h) over the `window` x `window` pixels around the
      argmax (pixels outside the map are left out), expected offset added to the argmax.
    """
    hm = np.asarray(hm, np.float32)
    if hm.ndim != 4:
        raise ValueError(f"decode: expected (B, K, h, w) heatmaps, got shape {hm.shape}")
    b, k, h, w = hm.shape
    ix, iy, peak = _argmax_np(hm)
    if decoder == "argmax":
        return np.stack([ix, iy], -1).astype(np.float64), peak
    if decoder == "argmax_shift":
        flat = hm.reshape(b, k, h * w)

        def at(x, y):
            return np.take_along_axis(flat, (np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1))[..., None], -1)[..., 0]

        dx = np.sign(at(ix + 1, iy) - at(ix - 1, iy)) * ((ix > 0) & (ix < w - 1))
        dy = np.sign(at(ix, iy + 1) - at(ix, iy - 1)) * ((iy > 0) & (iy < h - 1))
        return np.stack([ix + 0.25 * dx, iy + 0.25 * dy], -1).astype(np.float64), peak
    if decoder == "soft_argmax":
        flat = tau * hm.reshape(b, k, h * w).astype(np.float64)
        p = np.exp(flat - flat.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        p = p.reshape(b, k, h, w)
        x = (p.sum(-2) * np.arange(w)).sum(-1)
        y = (p.sum(-1) * np.arange(h)).sum(-1)
        return np.stack([x, y], -1), peak
    if decoder == "local_soft_argmax":
        return local_soft_argmax_np(hm, ix, iy, window, tau), peak
    raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")


def local_soft_argmax_np(hm: np.ndarray, ix: np.ndarray, iy: np.ndarray, window: int,
                         tau: float) -> np.ndarray:
    """Sub-pixel refinement around integer peaks (ix, iy), each (B, K); returns (B, K, 2).

    This is also the reference for the CUDA kernel: float32 values, the softmax taken with the
    window's maximum subtracted, out-of-map pixels excluded.
    """
    b, k, h, w = hm.shape
    r = window // 2
    d = np.arange(-r, r + 1)
    xs = ix[..., None, None] + d[None, :]  # (B, K, 1, d)
    ys = iy[..., None, None] + d[:, None]  # (B, K, d, 1)
    valid = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)  # (B, K, d, d)
    flat = hm.reshape(b, k, h * w)
    idx = (np.clip(ys, 0, h - 1) * w + np.clip(xs, 0, w - 1)).reshape(b, k, -1)
    v = np.take_along_axis(flat, idx, -1).reshape(valid.shape).astype(np.float32)
    logits = np.where(valid, np.float32(tau) * v, -np.inf)
    logits = logits - logits.max((-1, -2), keepdims=True)
    p = np.exp(logits)
    p /= p.sum((-1, -2), keepdims=True)
    ox = (p * d[None, :]).sum((-1, -2))
    oy = (p * d[:, None]).sum((-1, -2))
    return np.stack([ix + ox, iy + oy], -1).astype(np.float64)


@dataclass(frozen=True)
class HeatmapCodec:
    """Everything that turns points into training targets and heatmaps back into points.

    `encode` takes points in network-input pixels, `decode` returns them in the same space.
    """

    input_hw: tuple[int, int] = (256, 256)
    heatmap_hw: tuple[int, int] = (64, 64)
    sigma: float = 2.0
    encoding: str = "continuous"
    decoder: str = "local_soft_argmax"
    window: int = 5
    tau: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_hw", tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, "heatmap_hw", tuple(int(v) for v in self.heatmap_hw))
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; expected one of {ENCODINGS}")
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; expected one of {DECODERS}")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {self.window}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")

    @property
    def to_heatmap(self) -> np.ndarray:
        """(2, 3) transform from input pixels to heatmap pixels."""
        return heatmap_transform(self.input_hw, self.heatmap_hw)

    @property
    def to_input(self) -> np.ndarray:
        """(2, 3) transform from heatmap pixels to input pixels."""
        return invert(self.to_heatmap)

    def encode(self, xy: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(..., K, 2) input-space points -> (..., K, h, w) float32 heatmaps."""
        return encode_np(apply(self.to_heatmap, xy), self.heatmap_hw, self.sigma, self.encoding,
                         mask)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, K, h, w) heatmaps -> ((B, K, 2) input-space points, (B, K) peak values)."""
        heatmaps = np.asarray(heatmaps)
        if heatmaps.shape[-2:] != self.heatmap_hw:
            raise ValueError(f"decode: heatmaps of size {heatmaps.shape[-2:]}, codec expects "
                             f"{self.heatmap_hw}")
        xy, score = decode_np(heatmaps, self.decoder, self.window, self.tau)
        return apply(self.to_input, xy), score

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HeatmapCodec":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
