"""One-Euro filter and the jitter measure on generated tracks."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.runtime.smooth import LandmarkSmoother, OneEuroFilter, SmoothConfig, jitter


def _noisy_still(n=90, k=68, noise=0.5, seed=0):
    g = np.random.default_rng(seed)
    base = g.uniform(100, 200, (k, 2))
    return base, base + g.normal(0, noise, (n, k, 2))


def test_first_value_passes_and_constant_stays_constant():
    f = OneEuroFilter()
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(f(x, 0.0), x)
    for i in range(1, 10):
        np.testing.assert_allclose(f(x, i / 30), x)


def test_filter_reduces_jitter_of_a_still_noisy_face():
    base, seq = _noisy_still()
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    out = np.stack([f(p, i / 30) for i, p in enumerate(seq)])
    assert jitter(out) < 0.3 * jitter(seq)
    # and it stays on the face: the filtered points are closer to the truth than the raw ones
    assert np.abs(out[30:] - base).mean() < np.abs(seq[30:] - base).mean()


def test_speed_raises_the_cutoff_so_fast_motion_lags_less():
    t = np.arange(60) / 30
    ramp = np.stack([300 * t, np.zeros_like(t)], -1)[:, None]  # (T, 1, 2): 300 px/s
    lag = {}
    for beta in (0.0, 0.5):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.stack([f(p, ti) for p, ti in zip(ramp, t)])
        lag[beta] = np.abs(out[-1] - ramp[-1]).max()
    assert lag[0.5] < 0.25 * lag[0.0]


def test_repeated_or_backward_timestamps_use_the_default_step():
    f = OneEuroFilter(default_dt=1 / 30)
    f(np.zeros((1, 2)), 5.0)
    a = f(np.ones((1, 2)), 5.0)
    g = OneEuroFilter(default_dt=1 / 30)
    g(np.zeros((1, 2)), 0.0)
    b = g(np.ones((1, 2)), 1 / 30)
    np.testing.assert_allclose(a, b)
    assert np.isfinite(f(np.ones((1, 2)), 1.0)).all()


def test_reset_and_shape_change_restart():
    f = OneEuroFilter()
    f(np.zeros((2, 2)), 0)
    np.testing.assert_array_equal(f(np.ones((3, 2)), 1 / 30), np.ones((3, 2)))
    f.reset()
    np.testing.assert_array_equal(f(np.full((3, 2), 7.0), 0), np.full((3, 2), 7.0))
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_landmark_smoother_is_per_face_and_size_invariant():
    base, seq = _noisy_still(n=20)
    small, big = LandmarkSmoother(), LandmarkSmoother()
    for i, p in enumerate(seq):
        a = small(0, p, i / 30)
        b = big(0, p * 3, i / 30)
    np.testing.assert_allclose(b, a * 3, rtol=1e-9)
    s = LandmarkSmoother(SmoothConfig(min_cutoff=0.5))
    s(0, seq[0], 0)
    s(1, seq[0] + 50, 0)
    np.testing.assert_array_equal(s(1, seq[1] + 50, 1 / 30) > 0, True)
    s.keep([1])
    np.testing.assert_allclose(s(0, seq[5], 2 / 30), seq[5])  # face 0 restarted


def test_jitter_measures_shake_not_motion():
    t = np.arange(30)[:, None, None]
    uniform = np.concatenate([t * 2.0, t * -1.0], -1) + np.zeros((1, 68, 2))
    assert jitter(uniform) == pytest.approx(0.0, abs=1e-12)
    _, seq = _noisy_still(noise=1.0)
    j = jitter(seq)
    # second differences of unit noise are N(0, 6 I) in 2-D: mean norm sqrt(6) * sqrt(pi / 2)
    assert j == pytest.approx(np.sqrt(6 * np.pi / 2), rel=0.05)
    assert jitter(seq, 10.0) == pytest.approx(j / 10)
    with pytest.raises(ValueError):
        jitter(seq[:2])
    with pytest.raises(ValueError):
        jitter(seq[..., 0])
