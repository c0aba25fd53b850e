"""Real-looking heatmaps for the kernel checks (no pytest here: scripts/verify_gpu.py uses it)."""
from pathlib import Path

import numpy as np

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import landmarks_crop_transform
from tracker.core.pts import read_pts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def real_points() -> np.ndarray:
    """(N, 68, 2) human-labelled landmarks of the fixture stills, in their images' pixels."""
    return np.stack([read_pts(p) for p in sorted((FIXTURES / "stills").glob("*.pts"))])


def real_heatmaps(codec: HeatmapCodec, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """(N, 68, h, w) float32 heatmaps as a trained network gives them: the codec's targets for
    the fixture stills' landmarks (cropped as in training), plus a little noise, with some faces
    shifted so that points sit on and beyond the map borders."""
    pts = real_points()
    g = np.random.default_rng(seed)
    xy = []
    for i, p in enumerate(pts):
        m = landmarks_crop_transform(p, codec.input_hw)
        q = p @ m[:, :2].T + m[:, 2]  # (68, 2) input pixels
        if i % 3 == 1:  # push the face against the top-left corner
            q = q - q.min(0) - 3.0
        elif i % 3 == 2:  # and against the bottom-right one
            q = q + (np.array(codec.input_hw[::-1]) - 1 - q.max(0)) + 3.0
        xy.append(q)
    hm = codec.encode(np.stack(xy))
    return (hm + noise * g.standard_normal(hm.shape)).astype(np.float32)
