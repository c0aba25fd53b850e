"""The mean face shape, the similarity fit and the shape residual, on real labels."""
from pathlib import Path

import numpy as np
import pytest

from tracker.core.geometry import apply, similarity
from tracker.core.landmarks import IBUG68
from tracker.core.pts import read_pts
from tracker.core.shape import MEAN_SHAPE_IBUG68, fit_similarity, shape_residual

STILLS = Path(__file__).resolve().parents[2] / "fixtures" / "stills"


def test_mean_shape_convention():
    a, b = IBUG68.outer_eye_corners
    assert MEAN_SHAPE_IBUG68.shape == (68, 2)
    assert abs(np.linalg.norm(MEAN_SHAPE_IBUG68[a] - MEAN_SHAPE_IBUG68[b]) - 1) < 1e-3
    np.testing.assert_allclose(MEAN_SHAPE_IBUG68.mean(0), 0, atol=1e-3)
    # image axes: the right eye (subject's) is at smaller x, the chin (point 9) below the brows
    assert MEAN_SHAPE_IBUG68[a, 0] < MEAN_SHAPE_IBUG68[b, 0]
    assert MEAN_SHAPE_IBUG68[8, 1] > MEAN_SHAPE_IBUG68[19, 1]
    # mirror symmetric: mirrored and relabelled it is itself
    mirrored = MEAN_SHAPE_IBUG68 * [-1, 1]
    np.testing.assert_allclose(mirrored[list(IBUG68.flip)], MEAN_SHAPE_IBUG68, atol=0.03)


@pytest.mark.parametrize("scale,angle", [(1.0, 0.0), (37.5, 20.0), (0.2, -75.0), (400.0, 180.0)])
def test_fit_recovers_a_similarity_exactly(scale, angle):
    m = similarity(np.zeros(2), np.array([310.5, -42.0]), scale, angle)
    dst = apply(m, MEAN_SHAPE_IBUG68)
    np.testing.assert_allclose(fit_similarity(MEAN_SHAPE_IBUG68, dst), m, atol=1e-9)
    assert shape_residual(dst) < 1e-9


def test_weights_ignore_outliers():
    m = similarity(np.zeros(2), np.array([50.0, 60.0]), 80.0, 10.0)
    dst = apply(m, MEAN_SHAPE_IBUG68)
    dst[:17] += 500  # a broken jaw line
    w = np.ones(68)
    w[:17] = 0
    np.testing.assert_allclose(fit_similarity(MEAN_SHAPE_IBUG68, dst, w), m, atol=1e-9)


def test_residual_of_real_faces_and_of_scattered_points():
    rng = np.random.default_rng(0)
    faces = [read_pts(p) for p in sorted(STILLS.glob("*.pts"))]
    assert len(faces) == 7
    for f in faces:
        r = shape_residual(f)
        assert r < 0.25  # labelled faces of 300-W reach 0.24
        # invariant to where the face is, its size and its in-plane rotation
        m = similarity(f.mean(0), np.array([12.0, 900.0]), 0.3, 33.0)
        assert abs(shape_residual(apply(m, f)) - r) < 1e-9
        # the same face with its points scattered over its box is no face
        box_lo, box_hi = f.min(0), f.max(0)
        assert shape_residual(rng.uniform(box_lo, box_hi, f.shape)) > 0.4
        # a jaw line thrown off by half a face: out as well
        broken = f.copy()
        broken[:17] += (box_hi - box_lo) * [0.6, 0.5]
        assert shape_residual(broken) > 0.35
    assert shape_residual(np.zeros((68, 2))) == float("inf")
