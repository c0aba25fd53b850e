"""BlazeFace detection on the real clip, the landmark-extent box mapping, and the fallback to
the full-range model for small faces."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.tracker.runtime_fixtures import ANNOT, clip_frames
from tracker.core.geometry import points_box
from tracker.core.pts import read_pts
from tracker.runtime.association import box_iou
from tracker.runtime.detect import CALIBRATION, BoxMapping, Detection, FaceDetector


@pytest.fixture(scope="module")
def short():
    with FaceDetector("short") as d:
        yield d


def test_box_mapping_fit_recovers_known_constants():
    g = np.random.default_rng(0)
    xy = g.uniform(0, 500, (50, 2))
    wh = g.uniform(40, 200, (50, 2))
    det = np.concatenate([xy, xy + wh], 1)
    truth = BoxMapping(0.02, 0.08, 0.9, 1.1)
    fitted = BoxMapping.fit(det, truth.apply(det))
    for k in ("dx", "dy", "sx", "sy"):
        assert getattr(fitted, k) == pytest.approx(getattr(truth, k), abs=1e-9)
    # an identity mapping changes nothing; apply keeps (N, 4)
    assert np.allclose(BoxMapping().apply(det), det)
    assert BoxMapping().apply(det[0]).shape == (1, 4)
    with pytest.raises(ValueError):
        BoxMapping.fit(det[:0], det[:0])


def test_calibrated_boxes_match_the_landmark_extent_on_the_clip(short):
    frames = clip_frames()
    ious, raw_ious = [], []
    for i in range(0, 72, 8):
        dets = short.detect(frames[i])
        assert len(dets) == 1
        d = dets[0]
        assert isinstance(d, Detection) and 0.5 <= d.score <= 1.0
        assert d.keypoints.shape == (6, 2)
        truth = points_box(read_pts(ANNOT / f"{i + 1:06d}.pts"))
        ious.append(box_iou(d.box, truth)[0, 0])
        raw_ious.append(box_iou(d.raw_box, truth)[0, 0])
        # eyes and nose tip inside the face box
        x0, y0, x1, y1 = d.box
        assert ((d.keypoints[:3] >= [x0, y0]) & (d.keypoints[:3] <= [x1, y1])).all()
    assert np.mean(ious) > 0.8
    assert np.mean(ious) > np.mean(raw_ious)  # the calibration helps on a face it never saw


def test_no_face_in_a_blank_frame(short):
    assert short.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert short.detect(np.full((240, 320, 3), 255, np.uint8)) == []


def test_row_padded_view_gives_the_same_detection(short):
    frame = clip_frames()[0]
    wide = np.zeros((360, 700, 3), np.uint8)
    wide[:, :640] = frame
    view = wide[:, :640]
    assert not view.flags["C_CONTIGUOUS"]
    a, b = short.detect(frame), short.detect(view)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].box, b[0].box, atol=1e-6)


def test_auto_falls_back_to_the_full_range_model_for_a_small_face():
    small = cv2.resize(clip_frames()[0], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((720, 1280, 3), np.uint8)
    canvas[300:300 + small.shape[0], 500:500 + small.shape[1]] = small
    with FaceDetector("short") as s, FaceDetector("auto") as a:
        assert s.detect(canvas) == []
        found = a.detect(canvas)
    assert len(found) == 1
    truth = points_box(read_pts(ANNOT / "000001.pts")) * 0.5 + [500, 300, 500, 300]
    assert box_iou(found[0].box, truth)[0, 0] > 0.6


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown detector model"):
        FaceDetector("medium")
    with pytest.raises(ValueError, match="min_score"):
        FaceDetector("short", min_score=1.5)
    with FaceDetector("short") as d, pytest.raises(ValueError, match="RGB"):
        d.detect(np.zeros((10, 10), np.uint8))


def test_constants_are_the_calibrated_ones():
    # fitted by scripts/calibrate_detector.py: BlazeFace's box sits above the landmark extent
    for name in ("short", "full"):
        m = CALIBRATION[name]
        assert m.dy > 0 and 0.8 < m.sx < 1.0 and 0.8 < m.sy < 1.0


def test_both_merges_short_and_full_range_without_duplicates():
    import av

    from tests.tracker.runtime_fixtures import FIXTURES, clip_frames

    with av.open(str(FIXTURES / "footage" / "two_faces" / "vid.mp4")) as c:
        wide = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")  # a 300 px and a 130 px face
    with FaceDetector("short") as short, FaceDetector("both") as both:
        assert len(short.detect(wide)) == 1  # short range misses the small face
        found = both.detect(wide)
        assert len(found) == 2 and found[0].score >= found[1].score
        assert {d.box[0] < 640 for d in found} == {True, False}  # one on each side
        one = both.detect(clip_frames()[0])
        assert len(one) == 1  # found by both models, kept once (the short range's box)
        np.testing.assert_allclose(one[0].box, short.detect(clip_frames()[0])[0].box)


def test_a_large_yuv_frame_is_detected_at_half_size_with_the_same_faces():
    """Two faces crossing in a 960x540 clip: the decoder's planes, detected on at half size,
    give the faces that the full RGB frame gives, in frame pixels."""
    from tests.tracker.runtime_fixtures import FIXTURES
    from tracker.core.yuv import YUV420
    from tracker.runtime.detect import HALF_SIZE_FROM
    from tracker.runtime.video_source import VideoSource

    source = VideoSource(FIXTURES / "footage" / "crossing" / "vid.mp4")
    frames = list(source)[::6]
    source.close()
    assert isinstance(frames[0].pixels, YUV420) and max(frames[0].pixels.shape[:2]) >= HALF_SIZE_FROM
    ious = []
    with FaceDetector("both") as det:
        for f in frames:
            half, full = det.detect(f.pixels), det.detect(f.image)
            assert len(half) == len(full) == 2
            ious += list(box_iou(np.stack([d.box for d in full]), np.stack([d.box for d in half])).max(1))
    assert np.mean(ious) > 0.9 and np.min(ious) > 0.65  # measured 0.93, 0.73


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_face_found_on_the_turned_frame_comes_back_in_the_frames_pixels(short, turns):
    """The clip turned by quarter turns, its face found on the frame turned back upright and
    mapped into the turned frame: the same box and keypoints as the upright detection, moved
    as the frame was (`np.rot90`)."""
    from tracker.core.geometry import apply, quarter_turn

    frame = clip_frames()[10]
    (upright,) = short.detect(frame)
    lying = np.ascontiguousarray(np.rot90(frame, -turns))  # the face lies turned in this frame
    (d,) = [x.found_turned(turns, lying.shape[:2]) for x in short.detect(np.rot90(lying, turns).copy())]
    to_lying = quarter_turn(-turns, frame.shape[:2])
    assert d.turn == turns and d.score == pytest.approx(upright.score)
    np.testing.assert_allclose(d.keypoints, apply(to_lying, upright.keypoints), atol=1e-6)
    corners = apply(to_lying, upright.box.reshape(2, 2))
    np.testing.assert_allclose(d.box, np.concatenate([corners.min(0), corners.max(0)]), atol=1e-6)
    assert box_iou(d.raw_box, d.box)[0, 0] > 0.5


@pytest.mark.parametrize("length", [500, 1600, 1601, 2000, 4000, 4032])
def test_tiles_cover_the_side_overlapping_by_a_quarter(length):
    from tracker.runtime.detect import TILE, tile_origins

    starts = tile_origins(length)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert starts[-1] + TILE >= length and all(s + TILE <= max(length, TILE) for s in starts)
    assert all(b - a <= TILE * 3 // 4 for a, b in zip(starts, starts[1:]))  # a quarter or more shared


def test_small_faces_of_a_large_photo_are_found_tile_by_tile():
    """The group photo (faces 80-145 px) at its own scale in a 4000 x 3000 frame: BlazeFace on
    the whole frame misses its faces, the tiles find them (all but the partly hidden one, which
    BlazeFace also misses at most rolls: docs/results/roll_study.md)."""
    from pathlib import Path

    from tracker.core.datasets import faces_by_image, image_folder, read_image
    from tracker.runtime.detect import with_tiles

    root = Path(__file__).resolve().parents[2] / "fixtures" / "photos_multi"
    (path, faces), = [(p, f) for p, f in faces_by_image(image_folder(root)).items() if "selfie" in p.name]
    image = read_image(path)
    h, w = image.shape[:2]
    frame = np.full((3000, 4000, 3), 120, np.uint8)
    frame[1100:1100 + h, 1700:1700 + w] = image
    truth = [points_box(f + (1700, 1100)) for f in faces]
    with FaceDetector("both") as d:
        whole = d.detect(frame)
        tiled = with_tiles(d, frame, None, whole)

    def hits(found):
        return sum(any(box_iou(x.box, t)[0, 0] > 0.5 for x in found) for t in truth)

    assert hits(whole) <= 1 and hits(tiled) >= 3  # measured 0 and 3 of 4
