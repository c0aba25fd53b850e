"""Transforms between image, crop and heatmap spaces (tracker/core/geometry.py)."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tracker.core.geometry import (
    CROP_RATIO,
    apply,
    box_center_size,
    compose,
    crop_transform,
    heatmap_transform,
    invert,
    landmarks_crop_transform,
    points_box,
    quarter_turn,
    similarity,
    warp,
)

SETTINGS = settings(max_examples=80, deadline=None)
coord = st.floats(-500, 500)
entry = st.floats(-3, 3)


@st.composite
def affines(draw):
    """A (2, 3) affine transform with a well-conditioned linear part."""
    a = np.array([[draw(entry), draw(entry)], [draw(entry), draw(entry)]])
    assume(abs(np.linalg.det(a)) > 0.1 and np.linalg.cond(a) < 100)
    return np.concatenate([a, [[draw(coord)], [draw(coord)]]], 1)


@st.composite
def similarities(draw):
    return similarity(np.array([draw(coord), draw(coord)]), np.array([draw(coord), draw(coord)]),
                      draw(st.floats(0.1, 10)), draw(st.floats(-180, 180)), draw(st.booleans()))


points = st.lists(st.tuples(coord, coord), min_size=1, max_size=8).map(np.array)


@SETTINGS
@given(m=st.one_of(affines(), similarities()), xy=points)
def test_invert_undoes_apply(m, xy):
    np.testing.assert_allclose(apply(invert(m), apply(m, xy)), xy, atol=1e-6)
    np.testing.assert_allclose(compose(m, invert(m)), np.eye(2, 3), atol=1e-9)
    np.testing.assert_allclose(compose(invert(m), m), np.eye(2, 3), atol=1e-9)


@SETTINGS
@given(a=st.one_of(affines(), similarities()), b=st.one_of(affines(), similarities()), xy=points)
def test_compose_is_apply_inner_then_outer(a, b, xy):
    np.testing.assert_allclose(apply(compose(a, b), xy), apply(a, apply(b, xy)), rtol=1e-9,
                               atol=1e-6)
    np.testing.assert_allclose(invert(compose(a, b)), compose(invert(b), invert(a)), rtol=1e-6,
                               atol=1e-6)


@SETTINGS
@given(m=similarities(), p=points)
def test_similarity_scales_every_distance_by_the_same_factor(m, p):
    assume(len(p) >= 2)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    d0 = np.linalg.norm(p[0] - p[1])
    d1 = np.linalg.norm(apply(m, p)[0] - apply(m, p)[1])
    assert d1 == pytest.approx(scale * d0, rel=1e-9, abs=1e-9)


def test_batched_transforms_and_points():
    g = np.random.default_rng(0)
    ms = np.stack([similarity(g.normal(size=2), g.normal(size=2), 1 + i, 10.0 * i) for i in range(4)])
    xy = g.normal(size=(4, 5, 2))  # (B, K, 2)
    out = apply(ms, xy)
    assert out.shape == (4, 5, 2)
    for i in range(4):
        np.testing.assert_allclose(out[i], apply(ms[i], xy[i]))
    assert invert(ms).shape == (4, 2, 3) and compose(ms, invert(ms)).shape == (4, 2, 3)
    np.testing.assert_allclose(apply(invert(ms), out), xy, atol=1e-12)


def test_similarity_maps_centre_to_centre_and_rotates_counter_clockwise_on_screen():
    c = np.array([10.0, 20.0])
    m = similarity(c, np.array([3.0, 4.0]), 2.0, 90.0)
    np.testing.assert_allclose(apply(m, c[None]), [[3.0, 4.0]], atol=1e-12)
    # a point right of the centre goes up the screen (y decreases, y points down)
    np.testing.assert_allclose(apply(m, (c + [1.0, 0.0])[None]), [[3.0, 2.0]], atol=1e-12)


def test_similarity_flip_mirrors_x_about_the_source_centre():
    m = similarity(np.array([4.5, 0.0]), np.array([4.5, 0.0]), 1.0, 0.0, flip=True)
    np.testing.assert_allclose(apply(m, np.array([[0.0, 3.0], [9.0, 7.0]])), [[9, 3], [0, 7]],
                               atol=1e-12)


@pytest.mark.parametrize("out_hw", [(256, 256), (64, 48), (128, 192)])
@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_crop_transform_centres_the_box_and_scales_its_side(out_hw, angle):
    box = np.array([100.0, 50.0, 180.0, 170.0])  # 80 wide, 120 tall: side 120
    centre, side = box_center_size(box)
    np.testing.assert_allclose(centre, [140, 110])
    assert side == 120
    m = crop_transform(box, out_hw, angle_deg=angle)
    h, w = out_hw
    np.testing.assert_allclose(apply(m, centre[None]), [[(w - 1) / 2, (h - 1) / 2]], atol=1e-9)
    ends = apply(m, np.array([[140.0 - 60, 110.0], [140.0 + 60, 110.0]]))
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(min(out_hw) / CROP_RATIO)


def test_crop_transform_ratio_and_bad_boxes():
    m = crop_transform(np.array([0.0, 0.0, 99.0, 99.0]), (100, 100), ratio=1.0)
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 100 / 99)
    with pytest.raises(ValueError, match="empty box"):
        crop_transform(np.array([5.0, 5.0, 5.0, 5.0]), (64, 64))


def test_points_box_and_landmarks_crop_transform():
    xy = np.array([[10.0, 40.0], [30.0, 20.0], [500.0, 500.0]])
    np.testing.assert_array_equal(points_box(xy), [10, 20, 500, 500])
    np.testing.assert_array_equal(points_box(xy, np.array([1, 1, 0])), [10, 20, 30, 40])
    with pytest.raises(ValueError, match="no visible points"):
        points_box(xy, np.zeros(3, bool))
    np.testing.assert_array_equal(landmarks_crop_transform(xy[:2], (128, 128)),
                                  crop_transform(np.array([10, 20, 30, 40.0]), (128, 128)))


@pytest.mark.parametrize("input_hw,heatmap_hw", [((256, 192), (64, 48)), ((128, 128), (32, 32)),
                                                 ((128, 96), (64, 48))])
def test_heatmap_transform_follows_the_pixel_centre_formula(input_hw, heatmap_hw):
    s = input_hw[0] / heatmap_hw[0]
    t = heatmap_transform(input_hw, heatmap_hw)
    x_hm = np.array([[0.0, 0.0], [3.25, 7.5], [heatmap_hw[1] - 1, heatmap_hw[0] - 1]])
    np.testing.assert_allclose(apply(invert(t), x_hm), (x_hm + 0.5) * s - 0.5, atol=1e-12)
    # the input's full extent [-0.5, W - 0.5] is the heatmap's full extent [-0.5, w - 0.5]
    h, w = input_hw
    np.testing.assert_allclose(apply(t, np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]])),
                               [[-0.5, -0.5], [heatmap_hw[1] - 0.5, heatmap_hw[0] - 0.5]], atol=1e-12)


def _blob(hw, xy, sigma):
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def _centroid(img):
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    img = np.where(img > 1e-3, img.astype(np.float64), 0)
    return np.array([(img * xs).sum(), (img * ys).sum()]) / img.sum()


@pytest.mark.parametrize("scale,angle", [(1.7, 25.0), (2.0, 0.0), (0.6, -40.0)])
def test_warp_moves_a_dot_where_apply_says(scale, angle):
    """Sub-pixel check of the pixel-centre convention: a wrong half-pixel would move the dot by
    0.5 * |scale - 1| px."""
    src = np.array([40.3, 50.7])
    img = _blob((90, 120), src, 3.0)
    m = similarity(np.array([60.0, 45.0]), np.array([80.0, 70.0]), scale, angle)
    out = warp(img, m, (160, 150))
    assert out.shape == (160, 150)
    np.testing.assert_allclose(_centroid(out), apply(m, src[None])[0], atol=0.03)


def test_warp_of_an_rgb_image_keeps_channels_and_fills_the_border():
    img = np.full((20, 30, 3), 200, np.uint8)
    m = similarity(np.array([0.0, 0.0]), np.array([10.0, 10.0]), 1.0)
    out = warp(img, m, (40, 50), border_value=7)
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    assert (out[0, 0] == 7).all() and (out[15, 15] == 200).all()


def test_invert_batches_and_refuses_singular_transforms():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 2, 3))
    batch = invert(m)
    for mi, bi in zip(m, batch):
        np.testing.assert_allclose(bi, invert(mi), atol=1e-12)
        np.testing.assert_allclose(bi[:, :2], np.linalg.inv(mi[:, :2]), atol=1e-9)
    with pytest.raises(np.linalg.LinAlgError):
        invert(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0]]))


@pytest.mark.parametrize("turns", [0, 1, 2, 3, -1, 5])
def test_quarter_turn_follows_np_rot90(turns):
    """Every pixel of an image lands where `quarter_turn` says once `np.rot90` has turned it."""
    h, w = 5, 7
    image = np.arange(h * w).reshape(h, w)
    turned = np.rot90(image, turns)
    ys, xs = np.mgrid[:h, :w]
    xy = apply(quarter_turn(turns, (h, w)), np.stack([xs.ravel(), ys.ravel()], 1))
    assert np.allclose(xy, np.round(xy))
    x, y = np.round(xy).astype(int).T
    np.testing.assert_array_equal(turned[y, x], image.ravel())
