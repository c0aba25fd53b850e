"""Shot changes: a cheap test of whether a frame continues the previous one.

A cut (an edit between shots, a zoom cut, the next photo of a folder) makes every track's
previous landmarks meaningless, so the tracker detects afresh on such a frame and keeps only
the tracks a detection confirms. The test compares 16 x 16 grey thumbnails: the mean absolute
difference, in [0, 1]. Measured on 20 of the shared clips (frames 0-300, every frame against
the one before): continuous frames reach 0.047 at most (99th percentile 0.027); the first
frames of different clips differ by 0.079 at the 1st percentile (median 0.26); the same frame
zoomed 1.5x and shifted by 0.07 and more (median 0.16). `THRESHOLD` sits between.
"""
from __future__ import annotations

import numpy as np

from tracker.core.yuv import YUV420

THRESHOLD = 0.06
THUMB = 16


def thumbnail(image_rgb: np.ndarray | YUV420) -> np.ndarray:
    """(THUMB, THUMB) float32 grey thumbnail of an (H, W, 3) uint8 RGB image (or of a YUV420
    frame's luma): every k-th pixel (about 64 of them across the shorter side), then an area
    average. Sampling first costs 0.03 ms where converting and averaging the whole frame cost
    4.6 ms (844 x 844), with the same statistics on the 20 clips (continuous frames at most
    0.047, cuts 0.080 at the 1st percentile)."""
    import cv2

    k = max(1, min(image_rgb.shape[:2]) // (4 * THUMB))
    if isinstance(image_rgb, YUV420):
        grey = image_rgb.grey_sample(k)
    else:
        small = np.ascontiguousarray(np.asarray(image_rgb)[k // 2::k, k // 2::k])
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


class ShotChangeDetector:
    """`is_cut(image)` says whether `image` starts a new shot against the previous image it
    was given (the first image is a cut). `threshold` on the thumbnail difference."""

    def __init__(self, threshold: float = THRESHOLD):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"shot-change threshold must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.last_difference = 1.0
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def is_cut(self, image_rgb: np.ndarray | YUV420) -> bool:
        thumb = thumbnail(image_rgb)
        prev, self._previous = self._previous, thumb
        self.last_difference = 1.0 if prev is None else float(np.mean(np.abs(thumb - prev))) / 255.0
        return self.last_difference > self.threshold
