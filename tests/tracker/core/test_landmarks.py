"""Landmark schemes, INNER49 and flip_points (tracker/core/landmarks.py)."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.geometry import apply, similarity
from tracker.core.landmarks import COFW29, IBUG68, INNER49, SCHEMES, WFLW98, LandmarkScheme, flip_points
from tracker.core.pts import read_pts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FRONTAL = FIXTURES / "stills" / "lfpw_image_0002.pts"  # a near-frontal, human-labelled face


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=SCHEMES.keys())
def test_flip_is_an_involution_and_groups_cover_every_point_once(scheme):
    flip = np.array(scheme.flip)
    assert sorted(flip) == list(range(scheme.n_points))
    np.testing.assert_array_equal(flip[flip], np.arange(scheme.n_points))
    covered = sorted(i for g in scheme.groups.values() for i in g)
    assert covered == list(range(scheme.n_points))
    a, b = scheme.outer_eye_corners
    assert scheme.flip[a] == b


def test_schemes_sizes():
    assert (IBUG68.n_points, WFLW98.n_points, COFW29.n_points) == (68, 98, 29)
    assert IBUG68.outer_eye_corners == (36, 45)  # points 37 and 46, 1-based


def test_ibug68_mirror_pairs():
    f = IBUG68.flip
    assert f[36] == 45 and f[39] == 42  # outer and inner eye corners
    assert f[0] == 16 and f[8] == 8  # jaw ends; chin stays
    assert f[48] == 54 and f[51] == 51 and f[57] == 57  # mouth corners; lip middles stay
    assert f[60] == 64 and f[62] == 62 and f[66] == 66  # inner mouth
    assert all(f[i] == i for i in range(27, 31))  # nose bridge stays
    assert f[17] == 26 and f[21] == 22  # brows


def test_inner49():
    assert len(INNER49) == 49 == len(set(INNER49))
    assert not set(range(17)) & set(INNER49)  # no jaw
    assert 60 not in INNER49 and 64 not in INNER49  # inner mouth corners (61, 65 1-based)
    assert set(INNER49) == set(range(17, 68)) - {60, 64}


def test_invalid_schemes_are_rejected():
    with pytest.raises(ValueError, match="not a permutation"):
        LandmarkScheme("bad", 3, {}, (0, 0, 1), (0, 1))
    with pytest.raises(ValueError, match="not an involution"):
        LandmarkScheme("bad", 3, {}, (1, 2, 0), (0, 1))


@settings(max_examples=50, deadline=None)
@given(width=st.integers(1, 4000), seed=st.integers(0, 2**31 - 1))
def test_flipping_twice_is_identity(width, seed):
    xy = np.random.default_rng(seed).uniform(-0.5, width - 0.5, (2, 68, 2))
    np.testing.assert_allclose(flip_points(flip_points(xy, width), width), xy, atol=1e-9)


def test_flip_relabels_and_mirrors_about_the_pixel_centre_axis():
    xy = read_pts(FRONTAL)
    width = 640
    out = flip_points(xy, width)
    # the left outer eye corner (36) becomes the right one (45), at the mirrored x
    np.testing.assert_allclose(out[45], [width - 1 - xy[36, 0], xy[36, 1]])
    np.testing.assert_allclose(out[36], [width - 1 - xy[45, 0], xy[45, 1]])
    assert out[36, 0] < out[45, 0]  # still a face seen from the front: 36 on the image's left
    # the same mirror as a transform about the image's centre, (W - 1) / 2
    m = similarity(np.array([(width - 1) / 2, 0.0]), np.array([(width - 1) / 2, 0.0]), 1.0, flip=True)
    np.testing.assert_allclose(out, apply(m, xy)[list(IBUG68.flip)], atol=1e-9)


def test_flip_of_a_frontal_face_looks_like_the_face():
    """A mirrored, relabelled frontal face nearly overlays the original (the face is nearly
    symmetric); without the relabelling every left point would land on a right one."""
    xy = read_pts(FRONTAL)
    io = np.linalg.norm(xy[36] - xy[45])

    def mean_err(other):
        other = other - other.mean(0) + xy.mean(0)
        return np.linalg.norm(other - xy, axis=1).mean() / io

    flipped = flip_points(xy, 1000)
    mirrored_only = xy.copy()
    mirrored_only[:, 0] = 999 - mirrored_only[:, 0]
    assert mean_err(flipped) < 0.1
    assert mean_err(mirrored_only) > 0.4


def test_flip_of_an_image_and_its_points_agree():
    """A bright pixel at x in an image of width W is at W - 1 - x in np.fliplr(image)."""
    img = np.zeros((5, 9), np.uint8)
    img[2, 3] = 255
    xy = np.zeros((68, 2))
    xy[8] = [3, 2]  # the chin maps to itself under the permutation
    ys, xs = np.nonzero(np.fliplr(img))
    np.testing.assert_array_equal(flip_points(xy, 9)[8], [xs[0], ys[0]])


def test_flip_with_another_scheme():
    xy = np.random.default_rng(0).uniform(0, 100, (98, 2))
    out = flip_points(xy, 100, WFLW98)
    np.testing.assert_allclose(out[72], [99 - xy[60, 0], xy[60, 1]])
