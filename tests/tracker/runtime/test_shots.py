"""The shot test on real frames: continuous frames are not cuts, other shots and zooms are."""
import numpy as np
import pytest

from tests.tracker.runtime_fixtures import clip_frames
from tracker.core.geometry import similarity, warp
from tracker.runtime.shots import THRESHOLD, ShotChangeDetector, thumbnail


def test_continuous_frames_are_not_cuts_and_the_first_frame_is():
    shots = ShotChangeDetector()
    cuts = [shots.is_cut(f) for f in clip_frames()]
    assert cuts[0] and not any(cuts[1:])
    assert shots.last_difference < THRESHOLD


def test_a_zoom_and_a_mirror_image_are_cuts():
    frame = clip_frames()[30]
    zoomed = warp(frame, similarity(np.array([340.0, 190.0]), np.array([319.5, 179.5]), 1.5), (360, 640))
    shots = ShotChangeDetector()
    assert shots.is_cut(frame) and shots.is_cut(zoomed) and shots.last_difference > 0.07
    assert shots.is_cut(np.ascontiguousarray(zoomed[:, ::-1]))
    shots.reset()
    assert shots.is_cut(zoomed)  # after a reset the next frame starts a shot


def test_thumbnail_shape_and_odd_sizes():
    assert thumbnail(np.zeros((357, 631, 3), np.uint8)).shape == (16, 16)
    assert thumbnail(np.zeros((10, 10, 3), np.uint8)).shape == (16, 16)
    with pytest.raises(ValueError):
        ShotChangeDetector(threshold=0)


def test_the_decoders_planes_give_the_same_shot_differences():
    """The thumbnail of a YUV420 frame (its luma) and of its RGB conversion: the same cuts and
    frame-to-frame differences on a clip with a cut."""
    from tests.tracker.runtime_fixtures import FIXTURES
    from tracker.core.yuv import YUV420
    from tracker.runtime.video_source import VideoSource

    source = VideoSource(FIXTURES / "footage" / "cut" / "vid.mp4")
    frames = list(source)
    source.close()
    assert all(isinstance(f.pixels, YUV420) for f in frames)
    diffs = []
    for pixels in ([f.pixels for f in frames], [f.image for f in frames]):
        shots, d = ShotChangeDetector(), []
        for p in pixels:
            shots.is_cut(p)
            d.append(shots.last_difference)
        diffs.append(np.array(d))
    assert ((diffs[0] > THRESHOLD) == (diffs[1] > THRESHOLD)).all()
    assert (diffs[0] > THRESHOLD).sum() >= 2  # the first frame and the cut
    assert np.abs(diffs[0] - diffs[1]).max() < 0.002  # measured 0.0006
