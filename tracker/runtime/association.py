"""Matching faces across frames: box overlap and one-to-one assignment.

Boxes are (x0, y0, x1, y1) float in frame pixels (see `tracker.core.geometry`)."""
from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """Any iterable of (4,) boxes as an (N, 4) float64 array (N may be 0)."""
    return np.array(list(boxes), np.float64).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(tracks: np.ndarray, dets: np.ndarray, min_iou: float) -> dict[int, int]:
    """Greedy one-to-one matching by IoU: {track index: detection index} for pairs with
    IoU >= min_iou, best pairs first."""
    if len(tracks) == 0 or len(dets) == 0:
        return {}
    iou = box_iou(tracks, dets)
    out: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i in out or j in used:
            continue
        out[i] = j
        used.add(j)
    return out
