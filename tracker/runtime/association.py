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


def overlap_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two (4,) boxes over the smaller one's area (1: one lies in the other)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / smaller) if smaller > 0 else 1.0


def same_face(a: np.ndarray, b: np.ndarray, eyes: tuple[int, int], tolerance: float) -> bool:
    """Whether two (K, 2) landmark sets are one face: their median point distance is under
    `tolerance` inter-ocular distances (the smaller face's)."""
    i, j = eyes
    iod = min(np.linalg.norm(a[i] - a[j]), np.linalg.norm(b[i] - b[j]))
    return bool(np.median(np.linalg.norm(a - b, axis=1)) < tolerance * max(iod, 1e-6))


def keep_distinct(points: list[np.ndarray], eyes: tuple[int, int], tolerance: float,
                  max_overlap: float) -> dict[int, list[int]]:
    """Which faces stay, in priority order (the caller sorts: older tracks first): a face is
    dropped when it is the same face as one kept before it (`same_face`) or its landmark box
    overlaps a kept one's by more than `max_overlap` of the smaller box. Returns {kept index:
    [indices of the same face that it absorbed]}, in order."""
    kept: dict[int, list[int]] = {}
    boxes = [np.concatenate([np.min(p, 0), np.max(p, 0)]) for p in points]
    for i, p in enumerate(points):
        for k in kept:
            if same_face(p, points[k], eyes, tolerance):
                kept[k].append(i)
                break
            if overlap_fraction(boxes[i], boxes[k]) > max_overlap:
                break
        else:
            kept[i] = []
    return kept
