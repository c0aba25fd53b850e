"""Where a face is cropped from: a `Region` (centre, side, roll) in frame pixels.

A face's region is the square its landmarks span when the face is turned upright: the roll
is the angle of the eye line (outer eye corners, the scheme's `outer_eye_corners`), and the
centre and side are those of the landmarks' extent measured along the face's own axes. For an
upright face this is exactly the landmark-extent box the model was trained with
(`tracker.core.geometry.landmarks_crop_transform`); for a rolled head the crop is turned so
that the face arrives upright (as MediaPipe's face mesh turns its regions to the eye line).

Angles are in degrees, positive when the eye line runs down to the right on screen (y points
down); `tracker.core.geometry.similarity` with the same angle turns it level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.core.geometry import CROP_RATIO, apply, eye_angle, points_box, similarity
from tracker.core.landmarks import LandmarkScheme


@dataclass(frozen=True)
class Region:
    """`center` (2,) frame pixels, `side` the face's extent along its own axes (the larger
    one), `angle` its roll in degrees."""

    center: np.ndarray
    side: float
    angle: float = 0.0

    def transform(self, out_hw: tuple[int, int], ratio: float = CROP_RATIO) -> np.ndarray:
        """(2, 3) frame -> crop transform: the region, turned upright, fills `ratio` of the
        crop's side, its centre on the crop's centre ((W - 1) / 2, (H - 1) / 2)."""
        h, w = out_hw
        scale = min(h, w) / (self.side * ratio)
        return similarity(self.center, np.array([(w - 1) / 2, (h - 1) / 2]), scale, self.angle)

    @property
    def box(self) -> np.ndarray:
        """(4,) axis-aligned box (x0, y0, x1, y1) of the region's square, unrotated: what
        association compares."""
        r = self.side / 2
        return np.array([self.center[0] - r, self.center[1] - r, self.center[0] + r, self.center[1] + r])

    def moved(self, offset: np.ndarray) -> "Region":
        return Region(self.center + np.asarray(offset, np.float64), self.side, self.angle)

    def predicted(self, velocity: np.ndarray, deadzone: float) -> "Region":
        """The region one frame on, moved by its last motion less `deadzone` times its side:
        a face at rest stays put (the landmarks' frame-to-frame noise is not extrapolated,
        which doubled the jitter), a moving one is followed."""
        v = np.asarray(velocity, np.float64)
        speed, rest = float(np.linalg.norm(v)), deadzone * self.side
        return self if speed <= rest else self.moved(v * (speed - rest) / speed)


def region_from_points(points: np.ndarray, scheme: LandmarkScheme) -> Region:
    """The region of a face's (K, 2) landmarks (see the module docstring)."""
    pts = np.asarray(points, np.float64)
    a, b = scheme.outer_eye_corners
    angle = eye_angle(pts[a], pts[b])
    level = similarity(np.zeros(2), np.zeros(2), 1.0, angle)  # turns the face upright
    x0, y0, x1, y1 = points_box(apply(level, pts))
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) @ level[:, :2]  # back: level is a rotation
    return Region(centre, max(x1 - x0, y1 - y0), angle)


def region_from_box(box: np.ndarray, angle: float = 0.0) -> Region:
    """The region of a landmark-extent box (x0, y0, x1, y1), turned by `angle`: its centre
    and larger side. (BlazeFace's box keeps about the face's own size when the head rolls: on
    the rotated footage fixture its mapped side stays within 10 % of the upright one's up to
    60 degrees, so no correction for the roll is made.)"""
    x0, y0, x1, y1 = (float(v) for v in box)
    return Region(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0), float(angle))
