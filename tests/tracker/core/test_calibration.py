"""Per-point offsets (tracker/core/calibration.py): estimated back from generated faces, the
same in crop and frame coordinates, split into their mirror parts."""
import numpy as np

from tracker.core.calibration import add_offsets, mirror_parts, residual_offsets
from tracker.core.geometry import apply, invert, similarity
from tracker.core.landmarks import IBUG68
from tracker.core.shape import MEAN_SHAPE_IBUG68

EYES = IBUG68.outer_eye_corners


def _faces(n, rng):
    """(n, 68, 2) upright faces of 40-120 px inter-ocular distance at random places."""
    shape = MEAN_SHAPE_IBUG68 / np.linalg.norm(MEAN_SHAPE_IBUG68[36] - MEAN_SHAPE_IBUG68[45])
    return shape[None] * rng.uniform(40, 120, (n, 1, 1)) + rng.uniform(100, 300, (n, 1, 2))


def test_the_offsets_that_a_model_misses_are_estimated_back():
    rng = np.random.default_rng(0)
    truth = _faces(2000, rng)
    field = rng.normal(0, 0.01, (68, 2)) + [0.007, 0.0]  # a rightward convention and more
    iod = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    pred = truth - field[None] * iod[:, None, None] + rng.normal(0, 0.03, truth.shape) * iod[:, None, None]
    est = residual_offsets(pred, truth, EYES)
    assert np.abs(est - field).max() < 0.004  # the noise's 3 sigma / sqrt(2000), ~0.002
    err = lambda p: np.linalg.norm(p - truth, axis=2).mean()  # noqa: E731
    assert err(add_offsets(pred, est, EYES)) < err(pred)


def test_offsets_added_in_the_frame_equal_offsets_added_in_the_crop():
    rng = np.random.default_rng(1)
    crop_pts = _faces(5, rng) * 0.5  # points in crop pixels
    offsets = rng.normal(0, 0.02, (68, 2))
    to_frame = np.stack([similarity(np.array([64.0, 64.0]), rng.uniform(100, 500, 2), s, a)
                         for s, a in zip(rng.uniform(0.5, 3, 5), rng.uniform(-60, 60, 5))])
    in_crop = np.stack([apply(t, p) for t, p in zip(to_frame, add_offsets(crop_pts, offsets, EYES))])
    frame_pts = np.stack([apply(t, p) for t, p in zip(to_frame, crop_pts)])
    np.testing.assert_allclose(add_offsets(frame_pts, offsets, EYES, to_frame), in_crop, atol=1e-9)
    back = np.stack([apply(invert(t), p) for t, p in zip(to_frame, in_crop)])  # and back
    np.testing.assert_allclose(back, add_offsets(crop_pts, offsets, EYES), atol=1e-9)


def test_mirror_parts():
    flip = list(IBUG68.flip)
    shift = np.tile([0.007, 0.0], (68, 1))  # a rightward convention: all of it unlearnable
    anti, sym = mirror_parts(shift, flip)
    np.testing.assert_allclose(anti, shift)
    np.testing.assert_allclose(sym, 0, atol=1e-15)
    inward = MEAN_SHAPE_IBUG68 - MEAN_SHAPE_IBUG68.mean(0)  # a mirror-symmetric field: learnable
    anti, sym = mirror_parts(inward * 0.01, flip)
    assert np.abs(anti).max() < 0.1 * np.abs(sym).max()
    field = np.random.default_rng(2).normal(0, 1, (68, 2))
    anti, sym = mirror_parts(field, flip)
    np.testing.assert_allclose(anti + sym, field)
    a2, s2 = mirror_parts(anti, flip)
    np.testing.assert_allclose(a2, anti)
    np.testing.assert_allclose(s2, 0, atol=1e-12)
