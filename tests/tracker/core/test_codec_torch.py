"""Torch twins of the codec (tracker/core/codec_torch.py): same numbers as numpy, differentiable."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core import codec_torch
from tracker.core.codec import DECODERS, ENCODINGS, decode_np, encode_np

HW = (64, 48)


def _random_points(seed, hw=HW, b=3, k=7, margin=0.0):
    g = np.random.default_rng(seed)
    h, w = hw
    return g.uniform([margin, margin], [w - 1 - margin, h - 1 - margin], (b, k, 2))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("hw", [HW, (32, 32)])
def test_encode_matches_numpy(encoding, hw):
    xy = _random_points(0, hw)
    mask = np.random.default_rng(1).random(xy.shape[:2]) > 0.3
    want = encode_np(xy, hw, 2.0, encoding, mask)
    got = codec_torch.encode(torch.from_numpy(xy), hw, 2.0, encoding, torch.from_numpy(mask))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    assert not got.numpy()[~mask].any()  # masked points: all-zero maps


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), decoder=st.sampled_from(DECODERS))
def test_decode_matches_numpy(seed, decoder):
    """On Gaussians (anywhere, borders included) plus noise, so windows get truncated."""
    g = np.random.default_rng(seed)
    xy = _random_points(seed, margin=-0.4)
    hm = encode_np(xy, HW, 2.0) + g.uniform(0, 0.05, (3, 7, *HW)).astype(np.float32)
    want, want_peak = decode_np(hm, decoder)
    got, peak = codec_torch.decode(torch.from_numpy(hm), decoder)
    assert got.shape == (3, 7, 2) and peak.shape == (3, 7)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)
    np.testing.assert_array_equal(peak.numpy(), want_peak)


@pytest.mark.parametrize("hw", [HW, (32, 32)])
def test_round_trip_recovers_subpixel_positions(hw):
    xy = torch.from_numpy(_random_points(2, hw, b=4, k=68, margin=3.0)).float()
    got, _ = codec_torch.decode(codec_torch.encode(xy, hw, 2.0), "local_soft_argmax", 5, 10.0)
    assert (got - xy).abs().max() < 0.01


def test_ties_take_the_first_maximum_as_numpy_does():
    hm = np.zeros((1, 1, 6, 5), np.float32)
    hm[0, 0, 3, 0] = hm[0, 0, 1, 2] = 1.0
    got, _ = codec_torch.decode(torch.from_numpy(hm), "argmax")
    np.testing.assert_array_equal(got[0, 0].numpy(), [2, 1])


@pytest.mark.parametrize("decoder", ["soft_argmax", "local_soft_argmax"])
def test_soft_decoders_pass_gradients_to_the_heatmap(decoder):
    xy = torch.tensor([[[20.3, 30.6], [5.2, 60.1]]])
    hm = codec_torch.encode(xy, HW, 2.0).requires_grad_(True)
    got, _ = codec_torch.decode(hm, decoder)
    got[..., 0].sum().backward()
    g = hm.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    if decoder == "local_soft_argmax":
        # only the 5x5 window around each peak receives a gradient
        nz = (g[0, 0] != 0).nonzero()
        assert nz[:, 0].min() >= 31 - 2 and nz[:, 0].max() <= 31 + 2
        assert nz[:, 1].min() >= 20 - 2 and nz[:, 1].max() <= 20 + 2
        # raising the pixel right of the peak moves x to the right
        assert g[0, 0, 31, 21] > 0 and g[0, 0, 31, 19] < 0


def test_gradient_of_x_matches_finite_differences():
    hm = codec_torch.encode(torch.tensor([[[20.3, 30.6]]], dtype=torch.float64), HW, 2.0)
    hm.requires_grad_(True)
    x = codec_torch.decode(hm, "local_soft_argmax")[0][0, 0, 0]
    (g,) = torch.autograd.grad(x, hm)
    eps = 1e-6
    bumped = hm.detach().clone()
    bumped[0, 0, 30, 21] += eps
    x2 = codec_torch.decode(bumped, "local_soft_argmax")[0][0, 0, 0]
    assert float(g[0, 0, 30, 21]) == pytest.approx(float(x2 - x.detach()) / eps, rel=1e-4)


def test_unknown_names_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="unknown encoding"):
        codec_torch.encode(torch.zeros(1, 1, 2), HW, 2.0, "ceil")
    with pytest.raises(ValueError, match="unknown decoder"):
        codec_torch.decode(torch.zeros(1, 1, *HW), "median")
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        codec_torch.decode(torch.zeros(1, *HW))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, 2\)"):
        codec_torch.encode(torch.zeros(1, 3, 3), HW, 2.0)


def test_works_in_float16_and_keeps_dtype():
    xy = torch.tensor([[[20.3, 30.6]]])
    hm = codec_torch.encode(xy, HW, 2.0).half()
    got, peak = codec_torch.decode(hm, "local_soft_argmax")
    assert got.dtype == torch.float16 and peak.dtype == torch.float16
    assert (got.float() - xy).abs().max() < 0.05
