"""Recompute `tracker.core.shape.MEAN_SHAPE_IBUG68` and the shape residuals that set the tracker's
`max_shape_residual`.

    python scripts/mean_shape.py [DATA_ROOT]      # default: ../shared/data beside the checkout

Generalised Procrustes over the human-labelled 300-W training faces (lfpw_trainset,
helen_trainset, afw): each face is similarity-fitted to the running mean, the mean is
re-centred and scaled to outer eye corners 1 apart, five rounds. Prints the constant (to paste
into tracker/core/shape.py) and percentiles of the faces' residuals against it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.core.datasets import image_folder  # noqa: E402
from tracker.core.geometry import apply  # noqa: E402
from tracker.core.landmarks import IBUG68  # noqa: E402
from tracker.core.shape import fit_similarity, shape_residual  # noqa: E402

FOLDERS = ("300w/lfpw_trainset", "300w/helen_trainset", "300w/afw")


def procrustes_mean(shapes: np.ndarray, rounds: int = 5) -> np.ndarray:
    a, b = IBUG68.outer_eye_corners
    mean = shapes[0] - shapes[0].mean(0)
    for _ in range(rounds):
        mean = np.mean([apply(fit_similarity(s, mean), s) for s in shapes], axis=0)
        mean = mean - mean.mean(0)
        mean = mean / np.linalg.norm(mean[a] - mean[b])
    return mean


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="?", default=ROOT.parent / "shared" / "data")
    a = ap.parse_args(argv)
    shapes = np.stack([r.points for f in FOLDERS for r in image_folder(a.data / f)])
    mean = procrustes_mean(shapes)
    rows = [f"({x:.3f}, {y:.3f})" for x, y in mean]
    print("MEAN_SHAPE_IBUG68 = np.array([")
    for i in range(0, len(rows), 6):
        print("    " + ", ".join(rows[i:i + 6]) + ",")
    print("])")
    res = np.array([shape_residual(s, mean) for s in shapes])
    print(f"{len(shapes)} faces; residual percentiles 50/90/99/100: "
          + " / ".join(f"{np.percentile(res, p):.3f}" for p in (50, 90, 99, 100)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
