"""Frames as video decoders give them (YUV 4:2:0 planes), and what the tracker cuts from them.

Converting a whole decoded frame to RGB costs more than anything else the capture does (PyAV:
1.2 ms at 720x1280 against 0.04 ms for the planes), while the model sees 128x128 crops and the
shot test a 16x16 thumbnail. A `YUV420` frame keeps the planes and gives each consumer what it
needs:
- `crop(m, out_hw)`: the three planes warped through the frame-to-crop transform (the chroma
  planes through the same transform from their half-size coordinates) and only the crop
  converted to RGB: the RGB path's crop within rounding (the test bounds it);
- `grey_sample(k)`: every k-th luma sample as full-range grey, for the shot test;
- `half_rgb()`: the frame at half size in RGB, for the face detector (BlazeFace sees 128 or
  192 pixels of it anyway);
- `rgb()`: the whole frame in RGB, converted once and only when something asks (the overlay),
  by the decoder's own converter when one is given (PyAV's, the reference) and else here.

Conventions (ITU-R BT.601 / BT.709, as FFmpeg's swscale): limited range Y in [16, 235], chroma
in [16, 240] centred on 128 (full range: [0, 255] for all three); chroma samples sit at the
centre of each 2x2 block of luma pixels, so chroma pixel c covers luma coordinate 2c + 0.5.
Pixel centres are integers (`tracker.core.geometry`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Colour:
    """A YUV -> RGB convention: luma weights of red and blue, and the range."""

    kr: float
    kb: float
    full_range: bool = False

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(3, 3) M and (3,) offset with rgb = M @ yuv + offset, for 8-bit samples."""
        kr, kb = self.kr, self.kb
        kg = 1.0 - kr - kb
        ys, cs = (1.0, 1.0) if self.full_range else (255.0 / 219.0, 255.0 / 224.0)
        y0 = 0.0 if self.full_range else 16.0
        m = np.array([[ys, 0.0, 2 * (1 - kr) * cs],
                      [ys, -2 * kb * (1 - kb) / kg * cs, -2 * kr * (1 - kr) / kg * cs],
                      [ys, 2 * (1 - kb) * cs, 0.0]])
        return m, -m @ np.array([y0, 128.0, 128.0])


BT601 = Colour(0.299, 0.114)
BT709 = Colour(0.2126, 0.0722)


def yuv_to_rgb(yuv: np.ndarray, colour: Colour = BT601) -> np.ndarray:
    """(H, W, 3) uint8 Y, U, V samples at one resolution -> (H, W, 3) uint8 RGB (rounded,
    clipped)."""
    import cv2

    m, off = colour.matrix()
    return cv2.transform(np.ascontiguousarray(yuv), np.hstack([m, off[:, None]]))


def _chroma_transform(m: np.ndarray) -> np.ndarray:
    """A frame-to-crop transform (luma pixels) -> the map from the frame's chroma plane to the
    crop's pixels: chroma c is luma 2c + 0.5."""
    a = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])  # chroma -> luma
    m3 = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return (m3 @ a)[:2]


class YUV420:
    """A decoded 4:2:0 frame: `y` (H, W), `u` and `v` (H/2, W/2) uint8, H and W even.

    `to_rgb`, when given, converts the whole frame (the decoder's converter, which the crops
    match within rounding); otherwise `rgb()` converts here. `shape` is the RGB frame's."""

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, colour: Colour = BT601,
                 to_rgb: Callable[[], np.ndarray] | None = None):
        h, w = y.shape
        if h % 2 or w % 2 or u.shape != (h // 2, w // 2) or v.shape != u.shape:
            raise ValueError(f"YUV420: planes {y.shape}, {u.shape}, {v.shape} are not 4:2:0 "
                             f"of an even-sized frame")
        self.y, self.u, self.v, self.colour = y, u, v, colour
        self._to_rgb = to_rgb
        self._rgb: np.ndarray | None = None

    @classmethod
    def from_i420(cls, buffer: np.ndarray, colour: Colour = BT601,
                  to_rgb: Callable[[], np.ndarray] | None = None) -> "YUV420":
        """From one contiguous I420 buffer of shape (3H/2, W): Y rows, then U, then V."""
        rows, w = buffer.shape
        h = rows * 2 // 3
        flat = buffer.reshape(-1)
        n, q = h * w, (h // 2) * (w // 2)
        return cls(buffer[:h], flat[n:n + q].reshape(h // 2, w // 2),
                   flat[n + q:n + 2 * q].reshape(h // 2, w // 2), colour, to_rgb)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.y.shape, 3)

    def turned(self, quarter_turns: int) -> "YUV420":
        """The frame turned counter-clockwise by `quarter_turns` x 90 degrees, as `np.rot90`
        turns an RGB image. The planes turn as they are: a chroma sample centred on its 2x2
        block of luma is still centred on it after the turn."""
        k = quarter_turns % 4
        if k == 0:
            return self

        def turn(plane: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.rot90(plane, k))

        to_rgb = None if self._to_rgb is None else (lambda: turn(self._to_rgb()))
        return YUV420(turn(self.y), turn(self.u), turn(self.v), self.colour, to_rgb)

    def rgb(self) -> np.ndarray:
        """The whole frame as (H, W, 3) uint8 RGB, C-contiguous (converted once)."""
        if self._rgb is None:
            if self._to_rgb is not None:
                self._rgb = np.ascontiguousarray(self._to_rgb())
            else:
                import cv2

                h, w = self.y.shape
                up = [cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in (self.u, self.v)]
                self._rgb = yuv_to_rgb(cv2.merge([self.y, *up]), self.colour)
        return self._rgb

    def half_rgb(self) -> np.ndarray:
        """The frame at half size, (H/2, W/2, 3) uint8 RGB: each 2x2 block of luma averaged
        with the block's own chroma sample (no upsampling, a quarter of the pixels)."""
        import cv2

        h, w = self.y.shape
        y = cv2.resize(self.y, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return yuv_to_rgb(cv2.merge([y, self.u, self.v]), self.colour)

    def crop(self, m: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """The (h, w, 3) uint8 RGB crop that the frame-to-crop transform `m` (2, 3) cuts, as
        `tracker.core.geometry.warp` cuts it from the RGB frame (bilinear, black outside)."""
        import cv2

        h, w = out_hw
        lo = 0 if self.colour.full_range else 16
        flags = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        y = cv2.warpAffine(self.y, np.asarray(m, np.float64), (w, h), borderValue=lo, **flags)
        mc = _chroma_transform(m)
        u, v = (cv2.warpAffine(p, mc, (w, h), borderValue=128, **flags) for p in (self.u, self.v))
        return yuv_to_rgb(cv2.merge([y, u, v]), self.colour)

    def grey_sample(self, k: int) -> np.ndarray:
        """Every k-th pixel (from k // 2) as full-range grey, uint8: luma, which is what an
        RGB -> grey conversion computes."""
        y = self.y[k // 2::k, k // 2::k]
        if self.colour.full_range:
            return np.ascontiguousarray(y)
        return np.clip((y.astype(np.float32) - 16.0) * (255.0 / 219.0) + 0.5, 0, 255).astype(np.uint8)


def cut(pixels: np.ndarray | YUV420, m: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The RGB crop of an RGB image or a `YUV420` frame through transform `m`."""
    if isinstance(pixels, YUV420):
        return pixels.crop(m, out_hw)
    from tracker.core.geometry import warp

    return warp(pixels, m, out_hw)


def rgb_of(pixels: np.ndarray | YUV420) -> np.ndarray:
    """The whole frame as RGB (a `YUV420` converted once)."""
    return pixels.rgb() if isinstance(pixels, YUV420) else pixels
