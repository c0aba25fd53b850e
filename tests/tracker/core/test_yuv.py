"""YUV 4:2:0 frames: the whole-frame conversion and the crops match FFmpeg's RGB (swscale, the
reference every other path uses) within rounding, for BT.601 and BT.709; the thumbnail's grey
matches the RGB one."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from tracker.core.geometry import warp
from tracker.core.yuv import BT601, BT709, YUV420, Colour, cut, yuv_to_rgb

CLIP = Path(__file__).resolve().parents[2] / "fixtures" / "feat_single" / "vid.mp4"


@functools.lru_cache(maxsize=None)
def decoded(colourspace: str) -> tuple[np.ndarray, np.ndarray]:
    """(I420 buffer, swscale's RGB of it) of the clip's 10th frame, read as `colourspace`."""
    import av

    with av.open(str(CLIP)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i == 10:
                rgb = vf.reformat(format="rgb24", src_colorspace=colourspace).to_ndarray()
                return vf.to_ndarray(), rgb
    raise AssertionError("clip too short")


COLOURS = [("itu601", BT601), ("itu709", BT709)]


def random_transforms(n: int, hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Frame-to-crop transforms of 128x128 crops: any centre, roll up to 35 deg, scale
    0.2-1.5 (faces of 85-640 px)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, s = rng.uniform(-0.6, 0.6), rng.uniform(0.2, 1.5)
        c = rng.uniform(0, 1, 2) * [hw[1], hw[0]]
        m = s * np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]])
        m[:, 2] = 63.5 - m[:, :2] @ c
        out.append(m)
    return out


@pytest.mark.parametrize("name,colour", COLOURS)
def test_whole_frame_matches_swscale(name, colour):
    i420, ref = decoded(name)
    got = YUV420.from_i420(i420, colour).rgb()  # converted here: no decoder converter given
    assert got.shape == ref.shape and got.dtype == np.uint8 and got.flags.c_contiguous
    d = np.abs(got.astype(int) - ref)
    # measured: mean 1.28 (601) levels, 99th percentile 3 (chroma upsampled bilinearly here,
    # by nearest neighbour in swscale); a wrong matrix (601 for 709) gives 2.4 and 8
    assert d.mean() < 1.5 and np.percentile(d, 99) <= 3


def test_the_wrong_matrix_is_caught():
    i420, ref = decoded("itu709")
    d = np.abs(YUV420.from_i420(i420, BT601).rgb().astype(int) - ref)
    assert d.mean() > 1.5 or np.percentile(d, 99) > 3


@pytest.mark.parametrize("name,colour", COLOURS)
def test_crops_match_crops_of_the_rgb_frame(name, colour):
    i420, ref = decoded(name)
    frame = YUV420.from_i420(i420, colour)
    d = np.stack([np.abs(cut(frame, m, (128, 128)).astype(int) - warp(ref, m, (128, 128)))
                  for m in random_transforms(20, ref.shape[:2])])
    assert d.mean() < 1.2 and np.percentile(d, 99) <= 3  # measured: 1.00, 3


def test_crop_outside_the_frame_is_black_as_the_rgb_path():
    i420, ref = decoded("itu601")
    m = np.array([[1.0, 0.0, 5000.0], [0.0, 1.0, 0.0]])  # the crop lies right of the frame
    assert np.abs(cut(YUV420.from_i420(i420), m, (32, 32)).astype(int)).max() <= 1
    np.testing.assert_array_equal(cut(ref, m, (32, 32)), 0)


def test_known_colours():
    yuv = np.array([[[16, 128, 128], [235, 128, 128], [81, 90, 240], [145, 54, 34]]], np.uint8)
    np.testing.assert_allclose(yuv_to_rgb(yuv, BT601)[0].astype(int),
                               [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]], atol=2)
    full = Colour(0.299, 0.114, full_range=True)
    np.testing.assert_array_equal(yuv_to_rgb(np.array([[[200, 128, 128]]], np.uint8), full), [[[200] * 3]])


def test_grey_sample_is_the_rgb_grey():
    import cv2

    i420, ref = decoded("itu601")
    grey = YUV420.from_i420(i420).grey_sample(4)
    want = cv2.cvtColor(np.ascontiguousarray(ref[2::4, 2::4]), cv2.COLOR_RGB2GRAY)
    assert grey.shape == want.shape
    assert np.abs(grey.astype(int) - want).mean() < 1.6  # measured 1.40 (rounding in swscale)


def test_planes_of_an_odd_frame_are_refused():
    with pytest.raises(ValueError, match="4:2:0"):
        YUV420(np.zeros((5, 4), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))


def test_the_decoders_converter_is_used_once():
    i420, ref = decoded("itu601")
    calls = []
    frame = YUV420.from_i420(i420, to_rgb=lambda: calls.append(1) or ref)
    assert frame.rgb() is frame.rgb() and calls == [1]
    assert frame.shape == ref.shape


def test_half_size_rgb_is_the_rgb_frame_averaged():
    import cv2

    i420, ref = decoded("itu601")
    half = YUV420.from_i420(i420).half_rgb()
    h, w = ref.shape[:2]
    want = cv2.resize(ref, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    assert half.shape == want.shape
    d = np.abs(half.astype(int) - want)
    assert d.mean() < 1.5 and np.percentile(d, 99) <= 3  # measured 1.28, 3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_turned_frame_is_the_rgb_frame_turned(k):
    """Planes turned as `np.rot90` turns the RGB frame (a phone's sideways video shown upright):
    the whole frame, the half-size frame and any crop are those of the turned RGB frame."""
    i420, ref = decoded("itu601")
    frame = YUV420.from_i420(i420, BT601)
    turned = frame.turned(k)
    want = np.rot90(ref, k)
    assert turned.shape == want.shape and frame.turned(4 + k).shape == want.shape
    # converted here: OpenCV's bilinear chroma upsampling rounds a little differently across
    # rows than along them (measured: 0.028 levels on average, at most 3, at a quarter turn)
    d = np.abs(turned.rgb().astype(int) - np.rot90(frame.rgb(), k))
    assert d.mean() < 0.04 and d.max() <= 3
    np.testing.assert_array_equal(YUV420.from_i420(i420, BT601, lambda: ref).turned(k).rgb(), want)
    np.testing.assert_array_equal(turned.half_rgb(), np.rot90(frame.half_rgb(), k))
    d = np.stack([np.abs(cut(turned, m, (128, 128)).astype(int) - warp(want, m, (128, 128)))
                  for m in random_transforms(20, want.shape[:2])])
    assert d.mean() < 1.2 and np.percentile(d, 99) <= 3  # as unturned: measured 1.00, 3
    assert frame.turned(0) is frame
