"""The numpy mirror of the CUDA kernel equals the codec's local soft-argmax (CPU, in CI).

The kernel rounds each point to float32 once, at the end; the comparisons allow that rounding
(half a float32 ulp of the value) on top of 1e-6.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engines.heatmaps import real_heatmaps
from tracker.core.codec import HeatmapCodec, decode_np, local_soft_argmax_np
from tracker.core.geometry import apply, compose, similarity
from tracker.engines.cuda_decode import heatmap_to_frame
from tracker.engines.kernel_reference import argmax_ref, local_soft_argmax_ref, refine_ref


def assert_matches_codec(hm: np.ndarray, window: int = 5, tau: float = 10.0) -> None:
    xy, peak = local_soft_argmax_ref(hm, window, tau)
    ref_xy, ref_peak = decode_np(hm, "local_soft_argmax", window, tau)
    np.testing.assert_array_equal(peak, ref_peak)
    ix, iy, _ = argmax_ref(hm)
    # before the final rounding: within 1e-6 of the codec
    np.testing.assert_allclose(refine_ref(hm, ix, iy, window, tau), ref_xy, rtol=0, atol=1e-6)
    # after it: that, plus half a float32 ulp
    tol = 1e-6 + np.spacing(np.abs(ref_xy).astype(np.float32)) / 2
    assert (np.abs(xy - ref_xy) <= tol).all(), np.abs(xy - ref_xy).max()
    assert xy.dtype == np.float32 and peak.dtype == np.float32


@pytest.mark.parametrize("shape", [(4, 68, 32, 32), (3, 68, 64, 64), (2, 5, 16, 12), (2, 3, 12, 16)])
@pytest.mark.parametrize("scale", [0.03, 0.3, 3.0])
def test_random_heatmaps(shape, scale):
    hm = (np.random.default_rng(1).standard_normal(shape) * scale).astype(np.float32)
    assert_matches_codec(hm)


@pytest.mark.parametrize("hw", [(32, 32), (64, 64), (16, 12)])
def test_real_looking_heatmaps_including_borders(hw):
    codec = HeatmapCodec((hw[0] * 4, hw[1] * 4), hw)
    hm = real_heatmaps(codec)
    ix, iy, _ = argmax_ref(hm)
    assert (ix == 0).any() and (iy == 0).any() and (ix == hw[1] - 1).any() and (iy == hw[0] - 1).any()
    assert_matches_codec(hm)


@pytest.mark.parametrize("window,tau", [(1, 10.0), (3, 10.0), (5, 1.0), (7, 10.0), (9, 50.0)])
def test_windows_and_temperatures(window, tau):
    hm = real_heatmaps(HeatmapCodec((128, 128), (32, 32)), seed=2)
    assert_matches_codec(hm, window, tau)


def test_peaks_on_every_border_pixel():
    h, w = 6, 5
    hm = np.zeros((1, h * w, h, w), np.float32)
    for i in range(h * w):
        hm[0, i].flat[i] = 1.0
        hm[0, i].flat[(i + 1) % (h * w)] = 0.5  # a neighbour, so the offset is not zero
    assert_matches_codec(hm)


def test_ties_go_to_the_lowest_flat_index():
    hm = np.zeros((1, 4, 8, 8), np.float32)  # map 0: all equal
    hm[0, 1, 2, 5] = hm[0, 1, 6, 1] = 1.0  # two equal maxima: (5, 2) comes first
    hm[0, 2, 7, 7] = hm[0, 2, 7, 6] = 2.0  # neighbours on the last row
    hm[0, 3] = -np.inf
    hm[0, 3, 4, 4] = -1.0
    xy, _ = local_soft_argmax_ref(hm, 5, 10.0)
    ix, iy, _ = argmax_ref(hm)
    assert (ix.tolist(), iy.tolist()) == ([[0, 5, 6, 4]], [[0, 2, 7, 4]])
    assert_matches_codec(hm[:, :3])
    assert xy[0, 3].tolist() == [4.0, 4.0]  # -inf neighbours weigh nothing


def test_nan_maps_decode_to_nan_like_the_codec():
    hm = np.random.default_rng(3).random((1, 2, 8, 8)).astype(np.float32)
    hm[0, 0, 3, 3] = np.nan
    xy, peak = local_soft_argmax_ref(hm)
    ref, ref_peak = decode_np(hm)
    assert np.isnan(xy[0, 0]).all() and np.isnan(ref[0, 0]).all() and np.isnan(peak[0, 0])
    np.testing.assert_allclose(xy[0, 1], ref[0, 1], atol=1e-5)


def test_float16_heatmaps_decode_as_their_float32_values():
    hm = real_heatmaps(HeatmapCodec((128, 128), (32, 32)), seed=4).astype(np.float16)
    xy16, _ = local_soft_argmax_ref(hm)
    xy32, _ = local_soft_argmax_ref(hm.astype(np.float32))
    np.testing.assert_array_equal(xy16, xy32)


def test_transforms_map_points_like_geometry_apply():
    codec = HeatmapCodec((128, 96), (32, 24))
    hm = real_heatmaps(codec, seed=5)[:3]
    b = len(hm)
    # input -> frame: each face somewhere in a 1280x720 frame, scaled and rotated
    to_frame = np.stack([similarity(np.array([47.5, 63.5]), np.array([300.0 + 200 * i, 360.0]),
                                    2.5 + i, 10.0 * i) for i in range(b)])
    tr = heatmap_to_frame(codec, to_frame)
    np.testing.assert_allclose(tr, compose(to_frame, codec.to_input[None]), rtol=1e-6)
    xy, _ = local_soft_argmax_ref(hm, codec.window, codec.tau, tr)
    ref = apply(to_frame, codec.decode(hm)[0])  # (B, K, 2) frame pixels
    # float32 matrices and a float32 result: about 1e-4 px in a 1280-px frame
    np.testing.assert_allclose(xy, ref, rtol=0, atol=2e-4)


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        local_soft_argmax_ref(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="odd"):
        local_soft_argmax_ref(np.zeros((1, 1, 8, 8), np.float32), window=4)
    with pytest.raises(ValueError, match="transforms"):
        local_soft_argmax_ref(np.zeros((2, 1, 8, 8), np.float32), transforms=np.zeros((1, 2, 3)))


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), k=st.integers(1, 4), h=st.integers(1, 20), w=st.integers(1, 20),
       window=st.sampled_from([1, 3, 5, 7]), tau=st.floats(0.5, 40.0), seed=st.integers(0, 2**31),
       levels=st.sampled_from([0, 3, 1000]))
def test_property_equal_to_codec(b, k, h, w, window, tau, seed, levels):
    g = np.random.default_rng(seed)
    hm = g.random((b, k, h, w)).astype(np.float32)
    if levels:  # quantised values: many ties
        hm = (np.round(hm * levels) / levels).astype(np.float32)
    assert_matches_codec(hm, window, tau)
    ix, iy, _ = argmax_ref(hm)
    np.testing.assert_allclose(local_soft_argmax_np(hm, ix, iy, window, tau),
                               refine_ref(hm, ix, iy, window, tau), atol=1e-6)
