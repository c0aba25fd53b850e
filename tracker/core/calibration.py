"""Per-point offsets: the mean residual a trained model leaves on human-labelled faces, added
back to every face's decoded points.

Why a trained model has one: mirror augmentation makes a model mirror-symmetric, and human
annotation is not. On 300-W's human-labelled training faces the labels sit to the right of
where rt-m, trained with mirrored faces half the time, puts the points: by 0.67 % of the
inter-ocular distance on average, and by more or less point by point. A mirrored training face
carries that offset to the left, so the model learns neither side of it however long it
trains (rt-m's residual on its own training faces is the same as on held-out ones). Three
quarters of what the offsets gain on validation is that mirror-antisymmetric part; the rest is
what the model gets wrong the same way on every face (`scripts/calibrate_offsets.py` reports
both parts).

Offsets are (K, 2) in units of the face's inter-ocular distance (the scheme's outer eye
corners, measured on the decoded points), in the crop's axes: x along the crop's rows, the
face's eye line as the tracker cuts it. They are estimated on training faces only and stored
with the model (`ModelInfo.offsets`); a model without them is used as it decodes.
"""
from __future__ import annotations

import numpy as np


def residual_offsets(pred: np.ndarray, truth: np.ndarray, eyes: tuple[int, int]) -> np.ndarray:
    """The offsets (K, 2) that bring (N, K, 2) predicted points onto `truth` on average:
    mean over faces of (truth - pred) / the predicted inter-ocular distance. Both in the
    crops' axes (points of upright, unmirrored crops)."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    iod = _iod(pred, eyes)
    return ((truth - pred) / iod[:, None, None]).mean(0)


def add_offsets(points: np.ndarray, offsets: np.ndarray, eyes: tuple[int, int],
                to_frame: np.ndarray | None = None) -> np.ndarray:
    """(N, K, 2) points plus `offsets` (K, 2) times each face's inter-ocular distance. Points
    in crop pixels when `to_frame` is None; in frame pixels with `to_frame`, the (N, 2, 3)
    similarity transforms from crop to frame, whose rotation turns the offsets into the frame
    (their scale cancels: the distance is measured where the points are)."""
    points = np.asarray(points, np.float64)
    off = np.broadcast_to(np.asarray(offsets, np.float64), points.shape[1:])[None]  # (1, K, 2)
    if to_frame is not None:
        a = np.asarray(to_frame, np.float64)[:, :, :2]  # (N, 2, 2) = scale x rotation
        rot = a / np.sqrt(np.abs(np.linalg.det(a)))[:, None, None]
        off = off @ rot.transpose(0, 2, 1)  # each row vector turned: (R o^T)^T
    return points + off * _iod(points, eyes)[:, None, None]


def mirror_parts(offsets: np.ndarray, flip: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(antisymmetric, symmetric) parts of (K, 2) offsets under the mirror, `flip` the scheme's
    point permutation: the part a model trained on mirrored faces cannot learn (a field with
    o_k = -M o_flip(k), M = diag(-1, 1): mirroring a face turns it into its negative) and the
    rest (o_k = M o_flip(k)); they sum to `offsets`."""
    offsets = np.asarray(offsets, np.float64)
    m = np.array([-1.0, 1.0])
    return (offsets - m * offsets[flip]) / 2, (offsets + m * offsets[flip]) / 2


def _iod(points: np.ndarray, eyes: tuple[int, int]) -> np.ndarray:
    a, b = eyes
    return np.linalg.norm(points[:, a] - points[:, b], axis=-1)
