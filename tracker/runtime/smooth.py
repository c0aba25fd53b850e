"""Temporal smoothing of landmarks: the One-Euro filter (Casiez et al., CHI 2012), and a
jitter measure to see what it does.

The One-Euro filter is a low-pass filter whose cutoff rises with speed: still faces are
smoothed hard (less jitter), moving faces lightly (less lag). `LandmarkSmoother` runs one filter
per face track on points expressed in units of the face's size, so its settings do not depend
on how large the face is in the frame. Smoothing is off by default (evaluation wants raw
per-frame output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracker.core.geometry import points_box


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over arrays of shape (..., D); the speed that sets the cutoff is the
    norm over the last axis (e.g. a point's (x, y) velocity).

    min_cutoff: cutoff (Hz) at rest; beta: how fast the cutoff rises with speed (per unit of
    speed, in the units of the input per second); d_cutoff: cutoff of the speed estimate."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0,
                 default_dt: float = 1 / 30):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0 or default_dt <= 0:
            raise ValueError("OneEuroFilter: cutoffs and default_dt must be > 0, beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.default_dt = default_dt
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filtered value of `x` at time `t` (seconds); a non-increasing time counts as
        `default_dt` after the previous one."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            dt = self.default_dt
        self._t = self._t + dt
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()


@dataclass(frozen=True)
class SmoothConfig:
    """One-Euro settings for landmarks, speeds in face sizes per second.

    Chosen on samples/face.mp4 (scripts/bench_tracker.py's clip) from a sweep of min_cutoff
    {0.5, 1, 2} x beta {1, 5, 20, 50}: this pair cuts the jitter by more than half for
    +0.05 points of NME against the clip's labels (beta 5: -70 % jitter, +0.2 points; the
    lag of a lower beta costs accuracy on moving faces)."""

    min_cutoff: float = 1.0
    beta: float = 20.0
    d_cutoff: float = 1.0


class LandmarkSmoother:
    """One One-Euro filter per face id, on (K, 2) points divided by the face's size when its
    track started."""

    def __init__(self, config: SmoothConfig = SmoothConfig()):
        self.config = config
        self._filters: dict[int, tuple[OneEuroFilter, float]] = {}

    def __call__(self, face_id: int, points: np.ndarray, t: float) -> np.ndarray:
        """Smoothed (K, 2) points of face `face_id` at time `t`."""
        points = np.asarray(points, np.float64)
        if face_id not in self._filters:
            box = points_box(points)
            size = max(box[2] - box[0], box[3] - box[1], 1.0)
            c = self.config
            self._filters[face_id] = (OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff), size)
        f, size = self._filters[face_id]
        return f(points / size, t) * size

    def keep(self, face_ids) -> None:
        """Forget the filters of faces not in `face_ids` (tracks that ended)."""
        alive = set(face_ids)
        for fid in [f for f in self._filters if f not in alive]:
            del self._filters[fid]

    def reset(self) -> None:
        self._filters.clear()


def jitter(points: np.ndarray, norm: np.ndarray | float = 1.0) -> float:
    """Mean size of the second difference of (T, K, 2) landmark tracks, over `norm` (a scalar
    or (T,) per-frame normaliser such as the inter-ocular distance).

    |p[t+1] - 2 p[t] + p[t-1]| is zero for points at rest or in uniform motion, so it measures
    the frame-to-frame shake rather than the motion itself."""
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"jitter: expected (T, K, 2) points, got {p.shape}")
    if len(p) < 3:
        raise ValueError(f"jitter: need at least 3 frames, got {len(p)}")
    d2 = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1)  # (T-2, K)
    n = np.broadcast_to(np.asarray(norm, np.float64), (len(p),))[1:-1, None]
    return float((d2 / n).mean())
