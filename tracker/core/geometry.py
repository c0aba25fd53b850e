"""Similarity and affine transforms between image, crop and heatmap spaces.

Conventions (used by every module of the project):
- points are float (x, y), shape (..., K, 2);
- pixel centres sit on integers, as in OpenCV's warpAffine, so an image of width W spans
  [-0.5, W - 0.5];
- sizes are (H, W);
- a transform is a (2, 3) float64 matrix M mapping source points p to M[:, :2] @ p + M[:, 2];
  batches are (B, 2, 3).
"""
from __future__ import annotations

import math

import numpy as np

#: A face of extent `s` is cropped to a square of side s * CROP_RATIO (face ~220 px in 256, as
#: in the paper).
CROP_RATIO = 256.0 / 220.0


def apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply (..., 2, 3) transforms to (..., K, 2) points."""
    m = np.asarray(m, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64)
    return xy @ np.swapaxes(m[..., :, :2], -1, -2) + m[..., None, :, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 2, 3) affine transforms (in closed form: `np.linalg.inv` costs a
    millisecond a call when its BLAS threads compete with the tracker's for the cores)."""
    m = np.asarray(m, dtype=np.float64)
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    if not np.all(np.isfinite(det)) or np.any(det == 0):
        raise np.linalg.LinAlgError("Singular matrix")
    ainv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / det[..., None, None]
    t = -(ainv @ m[..., :, 2:])
    return np.concatenate([ainv, t], axis=-1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The transform p -> outer(inner(p)) for (..., 2, 3) matrices."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    a = outer[..., :, :2] @ inner[..., :, :2]
    t = outer[..., :, :2] @ inner[..., :, 2:] + outer[..., :, 2:]
    return np.concatenate([a, t], axis=-1)


def similarity(center_src: np.ndarray, center_dst: np.ndarray, scale: float,
               angle_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """Transform that maps `center_src` to `center_dst`, scaling by `scale` and rotating by
    `angle_deg` (counter-clockwise on screen, i.e. with y pointing down); `flip` mirrors x
    about `center_src` first."""
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    rot = np.array([[c, s], [-s, c]])
    if flip:
        rot = rot @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    t = np.asarray(center_dst, np.float64) - rot @ np.asarray(center_src, np.float64)
    return np.concatenate([rot, t[:, None]], axis=1)


def quarter_turn(turns: int, size_hw: tuple[int, int]) -> np.ndarray:
    """The (2, 3) map of pixel centres from an image of `size_hw` to the image turned
    counter-clockwise by `turns` x 90 degrees, as `np.rot90(image, turns)` turns it."""
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    h, w = size_hw
    for _ in range(turns % 4):  # one turn: (x, y) -> (y, w - 1 - x), and (h, w) -> (w, h)
        m = compose(np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0]]), m)
        h, w = w, h
    return m


def quarter_of(degrees: float) -> int:
    """The nearest quarter turn, 0-3, to a counter-clockwise turn of `degrees`: how many
    `np.rot90` turns show upright a frame whose display matrix turns it so, or a face whose eye
    line has that roll (`tracker.runtime.regions`)."""
    return int(round(float(degrees) / 90.0)) % 4


def eye_angle(left: np.ndarray, right: np.ndarray) -> float:
    """Roll in degrees of the line from the eye on the image's left to the one on its right
    (positive when it runs down to the right on screen); `similarity` with it levels the line."""
    d = np.asarray(right, np.float64) - np.asarray(left, np.float64)
    return math.degrees(math.atan2(d[1], d[0]))


def box_center_size(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side of the square that a box (x0, y0, x1, y1) in pixel-centre
    coordinates stands for: the side is the larger extent."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0)


def points_box(xy: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(x0, y0, x1, y1) extent of (K, 2) points (visible ones only where a mask is given)."""
    xy = np.asarray(xy, dtype=np.float64)
    if mask is not None:
        xy = xy[np.asarray(mask, bool)]
    if len(xy) == 0:
        raise ValueError("points_box: no visible points")
    return np.concatenate([xy.min(0), xy.max(0)])


def crop_transform(box: np.ndarray, out_hw: tuple[int, int], ratio: float = CROP_RATIO,
                   angle_deg: float = 0.0) -> np.ndarray:
    """Transform from image pixels to a square crop of size `out_hw` around a face box.

    The crop's side covers `ratio` times the box's larger extent; the box centre maps to the
    crop centre ((W - 1) / 2, (H - 1) / 2). `angle_deg` rotates the face in the crop.
    """
    h, w = out_hw
    center, side = box_center_size(box)
    if side <= 0:
        raise ValueError(f"crop_transform: empty box {box}")
    scale = min(h, w) / (side * ratio)
    return similarity(center, np.array([(w - 1) / 2, (h - 1) / 2]), scale, angle_deg)


def landmarks_crop_transform(xy: np.ndarray, out_hw: tuple[int, int],
                             ratio: float = CROP_RATIO) -> np.ndarray:
    """Crop transform from the extent of a face's landmarks (the training convention)."""
    return crop_transform(points_box(xy), out_hw, ratio)


def warp(image: np.ndarray, m: np.ndarray, out_hw: tuple[int, int],
         border_value: int = 0) -> np.ndarray:
    """Resample `image` through transform `m` (image -> output) into an (H, W) output."""
    import cv2

    h, w = out_hw
    return cv2.warpAffine(np.ascontiguousarray(image), np.asarray(m, np.float64), (w, h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(border_value,) * 3)


def heatmap_transform(input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> np.ndarray:
    """Transform from network-input pixels to heatmap pixels.

    For stride s, heatmap pixel i covers input pixels [i*s - 0.5, (i+1)*s - 0.5], so
    x_img = (x_hm + 0.5) * s - 0.5 and x_hm = (x_img + 0.5) / s - 0.5.
    """
    sy = input_hw[0] / heatmap_hw[0]
    sx = input_hw[1] / heatmap_hw[1]
    return np.array([[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5]])
