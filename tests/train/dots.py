"""A bright dot as a probe: where it lands in an augmented image, against where the points say."""
import numpy as np


def dot_centroid(image: np.ndarray) -> np.ndarray:
    """(x, y) intensity centroid of the lit pixels of an (H, W, 3) image's first channel."""
    g = image[..., 0].astype(float)
    ys, xs = np.nonzero(g > 0)
    w = g[ys, xs]
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
