"""Whether aligned points are a face: what keeps a track going and lets a detection start one.

Checks, in order: finite points; heatmap confidence (mean peak) at least
`TrackerConfig.lost_threshold`; a landmark box of at least half `min_face_size`; for a tracked
face, a region side within half to twice the previous frame's; an eye distance of 5-100 % of
the landmark box's side; and, for the 68-point scheme, points within `max_shape_residual` of
the mean face shape (`tracker.core.shape`).
"""
from __future__ import annotations

import numpy as np

from tracker.core.geometry import points_box
from tracker.core.landmarks import LandmarkScheme
from tracker.core.shape import shape_residual
from tracker.runtime.config import TrackerConfig
from tracker.runtime.regions import Region


def plausible(points: np.ndarray, scores: np.ndarray, region: Region, prior_side: float | None,
              config: TrackerConfig, scheme: LandmarkScheme) -> bool:
    """Whether (K, 2) `points` with (K,) heatmap `scores` are (still) a face; `region` is the
    points' own, `prior_side` the track's region side in the previous frame (None for a
    region that comes from a detection)."""
    if not np.isfinite(points).all() or float(np.mean(scores)) < config.lost_threshold:
        return False
    box = points_box(points)
    side = max(box[2] - box[0], box[3] - box[1])
    if side < 0.5 * config.min_face_size or side <= 0:
        return False
    a, b = scheme.outer_eye_corners
    iod = float(np.linalg.norm(points[a] - points[b]))
    if prior_side is not None and not 0.5 <= region.side / max(prior_side, 1e-6) <= 2.0:
        return False
    if not 0.05 * side <= iod <= 1.0 * side:
        return False
    limit = config.max_shape_residual
    if limit is not None and scheme.name == "ibug68" and shape_residual(points) > limit:
        return False
    return True
