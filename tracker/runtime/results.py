"""What the tracker returns: `FrameResult`s of `Face`s. Imports nothing heavy, so that sinks
and consumers of results load without the model or the detector."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One face in one frame: a track `id` stable across frames, `box` (4,) the extent of
    its landmarks, `points` (68, 2) float64 0-based frame pixels, `point_scores` (68,)
    float32 heatmap peaks, `score` their mean."""

    id: int
    box: np.ndarray
    points: np.ndarray
    point_scores: np.ndarray
    score: float


@dataclass(frozen=True)
class FrameResult:
    """The faces of frame `index` (0-based) at `timestamp` seconds; `detected` tells whether
    the detector ran on this frame."""

    index: int
    timestamp: float
    faces: list[Face]
    detected: bool = False
