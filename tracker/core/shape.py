"""A face's shape against the mean 68-point face: similarity fit and shape residual.

The tracker uses the residual to tell a face from points that have scattered (a track that
slid off the face or a crop the model cannot read): the points' RMS distance from the mean
shape after the best similarity fit, in units of the fitted inter-ocular distance, so it does
not depend on the face's size, position or in-plane rotation.

`MEAN_SHAPE_IBUG68` is the generalised-Procrustes mean of the 2,008 human-labelled 300-W
training faces (`python scripts/mean_shape.py` recomputes it and prints the residuals of the
labelled faces), centred on the origin, x right, y down, outer eye corners (points 37 and 46)
1 apart.
"""
from __future__ import annotations

import numpy as np

# fmt: off
MEAN_SHAPE_IBUG68 = np.array([
    (-0.818, -0.430), (-0.815, -0.212), (-0.792, 0.005), (-0.749, 0.217), (-0.666, 0.414), (-0.537, 0.587),
    (-0.379, 0.733), (-0.204, 0.849), (-0.003, 0.882), (0.195, 0.849), (0.371, 0.735), (0.530, 0.594),
    (0.661, 0.425), (0.747, 0.229), (0.794, 0.018), (0.819, -0.197), (0.830, -0.413), (-0.664, -0.598),
    (-0.558, -0.687), (-0.415, -0.711), (-0.268, -0.688), (-0.133, -0.633), (0.139, -0.637), (0.283, -0.689),
    (0.428, -0.706), (0.568, -0.676), (0.666, -0.588), (0.005, -0.461), (0.004, -0.319), (0.003, -0.179),
    (0.003, -0.035), (-0.168, 0.059), (-0.086, 0.090), (-0.001, 0.116), (0.085, 0.091), (0.162, 0.064),
    (-0.499, -0.444), (-0.409, -0.495), (-0.301, -0.491), (-0.213, -0.422), (-0.308, -0.402), (-0.414, -0.404),
    (0.217, -0.419), (0.310, -0.488), (0.416, -0.487), (0.501, -0.435), (0.424, -0.398), (0.320, -0.397),
    (-0.321, 0.327), (-0.202, 0.276), (-0.084, 0.253), (-0.007, 0.275), (0.080, 0.256), (0.200, 0.283),
    (0.312, 0.331), (0.202, 0.443), (0.085, 0.491), (-0.007, 0.500), (-0.092, 0.490), (-0.208, 0.441),
    (-0.272, 0.333), (-0.085, 0.325), (-0.007, 0.334), (0.080, 0.326), (0.264, 0.337), (0.081, 0.384),
    (-0.008, 0.394), (-0.088, 0.384),
])
# fmt: on


def fit_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The (2, 3) similarity (rotation, uniform scale, translation; no mirror) that maps the
    (K, 2) points `src` onto `dst` with the least (weighted) squared error."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a = (src[:, 0] - ms[0]) + 1j * (src[:, 1] - ms[1])
    b = (dst[:, 0] - md[0]) + 1j * (dst[:, 1] - md[1])
    z = (w * np.conj(a) * b).sum() / max((w * np.abs(a) ** 2).sum(), 1e-12)  # dst = z * src
    r = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.concatenate([r, (md - r @ ms)[:, None]], 1)


def shape_residual(points: np.ndarray, mean_shape: np.ndarray = MEAN_SHAPE_IBUG68) -> float:
    """RMS distance of (K, 2) points from the similarity-fitted mean shape, in inter-ocular
    units (the mean shape's unit, scaled by the fit). Labelled faces of 300-W: median 0.09,
    largest 0.24; points scattered off a face: 0.5 to several."""
    points = np.asarray(points, np.float64)
    m = fit_similarity(mean_shape, points)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if not np.isfinite(scale) or scale <= 0:
        return float("inf")
    fitted = mean_shape @ m[:, :2].T + m[:, 2]
    return float(np.sqrt(((fitted - points) ** 2).sum(1).mean()) / scale)
