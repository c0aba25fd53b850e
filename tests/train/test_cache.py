import numpy as np

from tracker.core.datasets import image_folder, read_image
from tracker.core.geometry import CROP_RATIO, points_box
from train.cache import CACHE_SIDE, MARGIN, cut, smooth_track, video_faces

from .conftest import FIXTURES


def test_cut_keeps_points_on_their_pixels():
    rec = next(iter(image_folder(FIXTURES / "stills")))
    img = read_image(rec.image)
    crop, pts = cut(img, rec.points)
    assert crop.shape == (CACHE_SIDE, CACHE_SIDE, 3) and crop.dtype == np.uint8
    # the landmark box fills CACHE_SIDE / (MARGIN * CROP_RATIO) pixels, centred
    x0, y0, x1, y1 = points_box(pts)
    side = max(x1 - x0, y1 - y0)
    assert abs(side - CACHE_SIDE / (MARGIN * CROP_RATIO)) < 1e-6
    assert abs((x0 + x1) / 2 - (CACHE_SIDE - 1) / 2) < 1e-6
    # the colour under a landmark is the colour at that landmark in the source image
    k = 30  # nose tip
    sx, sy = np.round(rec.points[k]).astype(int)
    cx, cy = np.round(pts[k]).astype(int)
    assert np.abs(crop[cy, cx].astype(int) - img[sy, sx].astype(int)).max() < 60


def test_video_faces_reads_the_fixture_clip():
    faces = video_faces(FIXTURES / "feat_single", every=24)
    assert len(faces) == 3  # labelled frames 1, 25, 49 of 72
    for crop, pts in faces:
        assert crop.shape == (CACHE_SIDE, CACHE_SIDE, 3)
        assert crop.std() > 10  # real pixels, not padding
        assert np.all((pts > 0) & (pts < CACHE_SIDE))


def test_smooth_track_removes_jitter_and_keeps_motion():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    truth = np.zeros((60, 68, 2)) + (t * 0.7)[:, None, None]  # linear motion
    noisy = truth + rng.uniform(-0.5, 0.5, truth.shape)  # whole-pixel-like jitter
    sm = smooth_track(list(t + 1), noisy, sigma=1.0)
    inner = slice(5, -5)
    assert np.abs(sm - truth)[inner].mean() < 0.6 * np.abs(noisy - truth)[inner].mean()
    # a gap in the frame numbers splits runs: frames across the gap are not mixed
    frames = [1, 2, 3, 10, 11, 12]
    xy = np.array([0, 0, 0, 100, 100, 100], float)[:, None, None] * np.ones((6, 68, 2))
    assert np.allclose(smooth_track(frames, xy), xy)
