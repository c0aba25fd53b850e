"""HeatmapCodec and the numpy encode/decode functions (tracker/core/codec.py).

Sizes are deliberately non-square ((64, 48) heatmaps of a (256, 192) input) so that an H/W swap
shows at once; the paper's (32, 32) real-time heatmaps are checked too.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.codec import DECODERS, ENCODINGS, HeatmapCodec, decode_np, encode_np, quantise

SIZES = [(64, 48), (32, 32)]  # heatmap (h, w)
SETTINGS = settings(max_examples=60, deadline=None)
MARGIN = 3.0  # the 5x5 window of a peak this far from the border lies inside the map


def _points(data, hw, n=6, margin=MARGIN):
    """(1, n, 2) random sub-pixel heatmap points at least `margin` from the border."""
    h, w = hw
    xs = data.draw(st.lists(st.floats(margin, w - 1 - margin), min_size=n, max_size=n))
    ys = data.draw(st.lists(st.floats(margin, h - 1 - margin), min_size=n, max_size=n))
    return np.stack([xs, ys], -1)[None]


# --- encoding ---------------------------------------------------------------------------------

def test_encode_shape_and_axes_on_a_non_square_map():
    hm = encode_np(np.array([[[40.0, 10.0]]]), (64, 48), 2.0)
    assert hm.shape == (1, 1, 64, 48) and hm.dtype == np.float32
    iy, ix = np.unravel_index(hm[0, 0].argmax(), (64, 48))
    assert (ix, iy) == (40, 10)  # column x, row y
    assert hm.max() == pytest.approx(1.0)


def test_encode_is_a_gaussian_of_the_given_sigma():
    hm = encode_np(np.array([[10.3, 7.6]]), (20, 24), 1.5)  # (K, 2) -> (K, h, w)
    assert hm.shape == (1, 20, 24)
    x, y = 13, 5
    want = math.exp(-((x - 10.3) ** 2 + (y - 7.6) ** 2) / (2 * 1.5**2))
    assert hm[0, y, x] == pytest.approx(want, rel=1e-6)


def test_quantise_floor_and_round():
    xy = np.array([[2.2, 2.5], [2.7, -0.3]])
    np.testing.assert_array_equal(quantise(xy, "floor"), [[2, 2], [2, -1]])
    np.testing.assert_array_equal(quantise(xy, "round"), [[2, 3], [3, 0]])
    np.testing.assert_array_equal(quantise(xy, "continuous"), xy)


def test_mask_zeroes_the_missing_points_maps_only():
    xy = np.array([[[10.2, 20.7], [30.5, 40.1], [5.0, 5.0]]])
    mask = np.array([[True, False, True]])
    hm = encode_np(xy, (64, 48), 2.0, mask=mask)
    full = encode_np(xy, (64, 48), 2.0)
    assert not hm[0, 1].any()
    np.testing.assert_array_equal(hm[0, [0, 2]], full[0, [0, 2]])


def test_unknown_encoding_and_decoder_are_rejected():
    with pytest.raises(ValueError, match="unknown encoding"):
        encode_np(np.zeros((1, 1, 2)), (8, 8), 2.0, "ceil")
    with pytest.raises(ValueError, match="unknown decoder"):
        decode_np(np.zeros((1, 1, 8, 8)), "median")


def test_points_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match=r"\(\.\.\., K, 2\)"):
        encode_np(np.zeros((1, 4, 3)), (8, 8), 2.0)


@pytest.mark.parametrize("shape", [(8, 8), (3, 8, 8), (1, 2, 3, 8, 8)])
def test_decode_rejects_maps_that_are_not_4d(shape):
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        decode_np(np.zeros(shape, np.float32))


# --- round trips: the paper's claim and the quantised baselines --------------------------------

@pytest.mark.parametrize("hw", SIZES)
@SETTINGS
@given(data=st.data())
def test_continuous_encoding_and_local_soft_argmax_recover_subpixel_positions(hw, data):
    xy = _points(data, hw)
    got, peak = decode_np(encode_np(xy, hw, 2.0), "local_soft_argmax", window=5, tau=10.0)
    # the only error left is the softmax's sampling bias, largest (0.0098 px) at frac 0.5
    assert np.abs(got - xy).max() < 0.01
    assert (peak > 0.88).all()  # a sampled Gaussian's top is at least exp(-0.5**2/4)


@pytest.mark.parametrize("hw", SIZES)
@SETTINGS
@given(data=st.data())
def test_floor_encoding_with_argmax_loses_the_fraction(hw, data):
    xy = _points(data, hw)
    got, _ = decode_np(encode_np(xy, hw, 2.0, "floor"), "argmax")
    err = got - xy
    # always at or before the point, by exactly its fractional part: up to 1 px per axis
    assert (err <= 0).all() and (err > -1).all()
    np.testing.assert_allclose(err, -(xy - np.floor(xy)), atol=1e-12)


@pytest.mark.parametrize("hw", SIZES)
@SETTINGS
@given(data=st.data())
def test_round_encoding_with_argmax_is_off_by_at_most_half_a_pixel(hw, data):
    xy = _points(data, hw)
    got, _ = decode_np(encode_np(xy, hw, 2.0, "round"), "argmax")
    err = got - xy
    assert (np.abs(err) <= 0.5).all()
    np.testing.assert_allclose(got, np.floor(xy + 0.5), atol=0)


@pytest.mark.parametrize("hw", SIZES)
@SETTINGS
@given(data=st.data())
def test_argmax_shift_moves_a_quarter_pixel_towards_the_point(hw, data):
    xy = _points(data, hw)
    hm = encode_np(xy, hw, 2.0)
    base, _ = decode_np(hm, "argmax")
    got, _ = decode_np(hm, "argmax_shift")
    step = got - base
    assert set(np.unique(np.abs(step))) <= {0.0, 0.25}
    moved = step != 0
    # where it moves, it moves towards the true position, and the error is at most 0.25 px
    assert (np.sign(step[moved]) == np.sign((xy - base)[moved])).all()
    assert np.abs(got - xy).max() <= 0.25 + 1e-9


def test_argmax_shift_stays_put_on_a_centred_peak_and_at_the_border():
    xy = np.array([[[10.0, 20.0], [0.4, 63.3], [47.0, 5.2]]])  # in a (64, 48) map
    got, _ = decode_np(encode_np(xy, (64, 48), 2.0), "argmax_shift")
    np.testing.assert_array_equal(got[0, 0], [10, 20])  # symmetric neighbours: no shift
    np.testing.assert_array_equal(got[0, 1], [0, 63])  # both axes at the border: no shift
    np.testing.assert_array_equal(got[0, 2], [47, 5.25])  # x at the border, y shifted


@pytest.mark.parametrize("hw", SIZES)
def test_global_soft_argmax_is_pulled_towards_the_map_centre(hw):
    """tau * heatmap gives every background pixel weight exp(0) = 1: the global soft-argmax is
    biased towards the centre, which is why the paper uses a local window."""
    h, w = hw
    xy = np.array([[[4.3, 5.7], [w - 5.2, h - 6.1]]])
    got, _ = decode_np(encode_np(xy, hw, 2.0), "soft_argmax", tau=10.0)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    assert (np.abs(got - centre) < np.abs(xy - centre)).all()
    assert np.abs(got - xy).max() > 0.1


# --- decoders against analytic answers ----------------------------------------------------------

def test_soft_argmax_of_a_3x3_map_by_hand():
    """tau = ln 3: the two 1-valued pixels weigh 3, the seven 0-valued pixels 1 (sum 13).
    x = (0*3 + 1*(1+3+1) + 2*(1+3+1)) / 13 = 15/13; y = (0*3 + 1*(1+3+3) + 2*3) / 13 = 1."""
    hm = np.zeros((1, 1, 3, 3), np.float32)
    hm[0, 0, 1, 1] = hm[0, 0, 1, 2] = 1.0  # (x=1, y=1) and (x=2, y=1)
    want = [15 / 13, 1.0]
    got, peak = decode_np(hm, "soft_argmax", tau=math.log(3))
    np.testing.assert_allclose(got[0, 0], want, atol=1e-6)
    assert peak[0, 0] == 1.0
    # the local window (argmax = first maximum, (1, 1)) covers the whole map: same answer
    for window in (3, 5):
        got, _ = decode_np(hm, "local_soft_argmax", window=window, tau=math.log(3))
        np.testing.assert_allclose(got[0, 0], want, atol=1e-6)


def test_delta_map():
    hm = np.zeros((1, 1, 9, 7), np.float32)
    hm[0, 0, 3, 5] = 1.0  # x = 5, y = 3
    for decoder in ("argmax", "argmax_shift"):
        np.testing.assert_array_equal(decode_np(hm, decoder)[0][0, 0], [5, 3])
    # local window: 25 pixels, only partly inside the 7-wide map, symmetric in y, not in x:
    # valid x offsets -2..1, y offsets -2..2 -> 20 pixels, 19 of weight 1 and one of e^10
    e = math.exp(10)
    ox = (5 * (-2 - 1 + 0 + 1) + 0 * e) / (19 + e)
    got, _ = decode_np(hm, "local_soft_argmax", window=5, tau=10.0)
    np.testing.assert_allclose(got[0, 0], [5 + ox, 3], atol=1e-6)
    # global: 62 background pixels of weight 1 and the peak of weight e^10
    n = 9 * 7
    gx = (e * 5 + 9 * sum(range(7)) - 5) / (e + n - 1)
    gy = (e * 3 + 7 * sum(range(9)) - 3) / (e + n - 1)
    got, _ = decode_np(hm, "soft_argmax", tau=10.0)
    np.testing.assert_allclose(got[0, 0], [gx, gy], atol=1e-6)


@pytest.mark.parametrize("corner", [(0, 0), (47, 63), (0, 63), (47, 0)])
def test_a_peak_on_a_border_pixel_decodes_inside_the_map(corner):
    hm = encode_np(np.array([[corner]], np.float64), (64, 48), 2.0)
    ix, iy = corner
    got, _ = decode_np(hm, "local_soft_argmax")
    x, y = got[0, 0]
    assert 0 <= x <= 47 and 0 <= y <= 63
    # the truncated window holds only the inner half of the Gaussian: pulled inwards, < 1 px
    assert 0 < abs(x - ix) < 1 and 0 < abs(y - iy) < 1
    assert (x - ix) * (23.5 - ix) > 0 and (y - iy) * (31.5 - iy) > 0


def test_ties_take_the_first_maximum_in_row_major_order():
    hm = np.zeros((1, 1, 6, 5), np.float32)
    hm[0, 0, 3, 0] = hm[0, 0, 1, 2] = 1.0  # (x=0, y=3) and (x=2, y=1)
    np.testing.assert_array_equal(decode_np(hm, "argmax")[0][0, 0], [2, 1])
    flat = np.full((1, 1, 6, 5), 0.3, np.float32)
    np.testing.assert_array_equal(decode_np(flat, "argmax")[0][0, 0], [0, 0])
    # a flat map: the global soft-argmax is the map's centre, the local one its window's
    np.testing.assert_allclose(decode_np(flat, "soft_argmax")[0][0, 0], [2, 2.5], atol=1e-6)
    np.testing.assert_allclose(decode_np(flat, "local_soft_argmax")[0][0, 0], [1, 1], atol=1e-6)


def test_decode_returns_peak_values():
    xy = np.array([[[10.0, 20.0], [30.5, 40.5]]])
    _, peak = decode_np(encode_np(xy, (64, 48), 2.0) * 0.5, "argmax")
    np.testing.assert_allclose(peak[0], [0.5, 0.5 * math.exp(-0.25 / 8) ** 2], rtol=1e-6)


# --- HeatmapCodec -------------------------------------------------------------------------------

@pytest.mark.parametrize("input_hw,heatmap_hw", [((256, 192), (64, 48)), ((128, 128), (32, 32))])
@SETTINGS
@given(data=st.data())
def test_codec_round_trip_in_input_pixels(input_hw, heatmap_hw, data):
    codec = HeatmapCodec(input_hw, heatmap_hw)
    s = input_hw[0] / heatmap_hw[0]
    margin = (MARGIN + 0.5) * s
    h, w = input_hw
    xs = data.draw(st.lists(st.floats(margin, w - 1 - margin), min_size=5, max_size=5))
    ys = data.draw(st.lists(st.floats(margin, h - 1 - margin), min_size=5, max_size=5))
    xy = np.stack([xs, ys], -1)[None]  # (1, 5, 2) input pixels
    hm = codec.encode(xy)
    assert hm.shape == (1, 5, *heatmap_hw)
    got, score = codec.decode(hm)
    assert got.shape == (1, 5, 2) and score.shape == (1, 5)
    assert np.abs(got - xy).max() < 0.01 * s


def test_codec_uses_the_pixel_centre_convention():
    """x_input = (x_hm + 0.5) * s - 0.5: input pixel 1.5 is the centre of heatmap pixel 0 for s=4."""
    codec = HeatmapCodec((256, 192), (64, 48), decoder="argmax")
    hm = codec.encode(np.array([[[1.5, 1.5 + 4 * 10]]]))
    iy, ix = np.unravel_index(hm[0, 0].argmax(), (64, 48))
    assert (ix, iy) == (0, 10) and hm[0, 0, 10, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(codec.decode(hm)[0][0, 0], [1.5, 41.5])


def test_codec_decode_rejects_maps_of_another_size():
    codec = HeatmapCodec((256, 192), (64, 48))
    with pytest.raises(ValueError, match="codec expects"):
        codec.decode(np.zeros((1, 68, 48, 64), np.float32))  # H and W swapped


def test_codec_encode_rejects_points_of_the_wrong_shape():
    with pytest.raises(ValueError):
        HeatmapCodec().encode(np.zeros((1, 68, 3)))


@pytest.mark.parametrize("kwargs,match", [
    ({"encoding": "ceil"}, "unknown encoding"), ({"decoder": "median"}, "unknown decoder"),
    ({"window": 4}, "odd"), ({"window": 0}, "odd"), ({"sigma": 0.0}, "sigma")])
def test_codec_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HeatmapCodec(**kwargs)


def test_codec_to_dict_from_dict_round_trip_through_json():
    codec = HeatmapCodec((256, 192), (64, 48), sigma=1.5, encoding="round", decoder="argmax_shift",
                         window=7, tau=20.0)
    back = HeatmapCodec.from_dict(json.loads(json.dumps(codec.to_dict())))
    assert back == codec and back.input_hw == (256, 192) and isinstance(back.heatmap_hw, tuple)


def test_every_encoding_and_decoder_name_is_accepted():
    for enc in ENCODINGS:
        for dec in DECODERS:
            codec = HeatmapCodec((128, 128), (32, 32), encoding=enc, decoder=dec)
            xy, _ = codec.decode(codec.encode(np.array([[[60.0, 70.0]]])))
            assert np.abs(xy - [60, 70]).max() < 4  # within a heatmap pixel for every pair
