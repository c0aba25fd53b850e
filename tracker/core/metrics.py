"""Landmark accuracy metrics: NME under several normalisations, the cumulative error
distribution (CED), its area (AUC) and failure rate at a cut-off.

Points are (..., K, 2); per-face errors are (N,) arrays; a missed face is given NME 1.0 (or
any value above the cut-off) by the caller so it counts as a failure.
"""
from __future__ import annotations

import numpy as np

from tracker.core.landmarks import IBUG68, LandmarkScheme

NORMS = ("inter_ocular", "box", "diagonal")


def normaliser(gt: np.ndarray, norm: str = "inter_ocular", scheme: LandmarkScheme = IBUG68,
               mask: np.ndarray | None = None) -> np.ndarray:
    """(N,) normalising distance of (N, K, 2) ground truth: outer-eye-corner distance, the
    sqrt(w * h) of the points' box, or the box's diagonal (visible points only for boxes)."""
    gt = np.asarray(gt, np.float64)
    if norm == "inter_ocular":
        a, b = scheme.outer_eye_corners
        return np.linalg.norm(gt[..., a, :] - gt[..., b, :], axis=-1)
    big = np.where(mask[..., None], gt, np.nan) if mask is not None else gt
    lo, hi = np.nanmin(big, -2), np.nanmax(big, -2)
    w, h = (hi - lo)[..., 0], (hi - lo)[..., 1]
    if norm == "box":
        return np.sqrt(w * h)
    if norm == "diagonal":
        return np.sqrt(w**2 + h**2)
    raise ValueError(f"unknown normalisation {norm!r}; one of {NORMS}")


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "inter_ocular",
        mask: np.ndarray | None = None, scheme: LandmarkScheme = IBUG68,
        points: tuple[int, ...] | None = None) -> np.ndarray:
    """(N,) normalised mean error of (N, K, 2) predictions; `mask` (N, K) marks visible points,
    `points` restricts the mean to a subset (e.g. `tracker.core.landmarks.INNER49`); the normaliser
    always uses the full markup."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"nme: shapes {pred.shape} and {gt.shape} differ or are not (N, K, 2)")
    d = np.linalg.norm(pred - gt, axis=-1)  # (N, K)
    m = np.ones(d.shape, bool) if mask is None else np.asarray(mask, bool)
    if points is not None:
        sel = np.zeros(d.shape[-1], bool)
        sel[list(points)] = True
        m = m & sel
    err = (d * m).sum(-1) / np.maximum(m.sum(-1), 1)
    return err / normaliser(gt, norm, scheme, mask)


def contour_components(pred: np.ndarray, gt: np.ndarray, points: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) mean absolute error along and across an open contour (say the jaw line), in
    pixels: each point's error split on the ground-truth contour's tangent there (central
    differences, one-sided at the ends). Along-contour error is where a point slides on the
    line it should lie on, the markup's spacing convention; across is where the line itself
    is."""
    pred = np.asarray(pred, np.float64)[..., list(points), :]
    gt = np.asarray(gt, np.float64)[..., list(points), :]
    if pred.shape != gt.shape or len(points) < 2:
        raise ValueError(f"contour_components: shapes {pred.shape} and {gt.shape}, {len(points)} points")
    t = np.gradient(gt, axis=-2)
    t /= np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)
    r = pred - gt
    along = np.abs((r * t).sum(-1))
    across = np.abs(r[..., 0] * t[..., 1] - r[..., 1] * t[..., 0])
    return along.mean(-1), across.mean(-1)


def ced(errors: np.ndarray, cutoff: float, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: (thresholds in [0, cutoff], fraction of faces below)."""
    e = np.sort(np.asarray(errors, np.float64))
    t = np.linspace(0, cutoff, n)
    return t, np.searchsorted(e, t, side="right") / max(len(e), 1)


def auc_fr(errors: np.ndarray, cutoff: float = 0.08) -> tuple[float, float]:
    """Area under the CED up to `cutoff` (normalised to 1) and the failure rate (share of faces
    with error above the cut-off)."""
    e = np.asarray(errors, np.float64)
    if len(e) == 0:
        return float("nan"), float("nan")
    t, f = ced(e, cutoff, 2001)
    return float(np.trapz(f, t) / cutoff), float((e > cutoff).mean())


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95, n_boot: int = 10000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of b - a over the same faces, (N,) errors each, and its percentile bootstrap
    interval at `level` (faces drawn with replacement, the pairs kept): how far two models'
    means on one test set may move with the faces it happens to hold. Training noise (another
    seed, other batches) is not in it."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired_difference: two (N,) arrays of the same faces, N >= 2; got "
                         f"{a.shape} and {b.shape}")
    d = b - a
    draws = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    means = d[draws].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)


def plot_ced(curves: dict[str, np.ndarray], path: str, cutoff: float = 0.08,
             title: str = "Cumulative error distribution") -> None:
    """Write a CED plot (PNG) of several methods' per-face errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for name, e in curves.items():
        t, f = ced(e, cutoff)
        a, fr = auc_fr(e, cutoff)
        ax.plot(t, f, label=f"{name} (AUC {a:.3f}, FR {fr * 100:.1f}%)")
    ax.set_xlim(0, cutoff)
    ax.set_ylim(0, 1)
    ax.set_xlabel("NME")
    ax.set_ylabel("fraction of faces")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
