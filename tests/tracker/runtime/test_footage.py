"""The tracker, as deployed (bundled model, default options), on footage edited the way real
footage is: tests/fixtures/footage (`scripts/make_footage_fixtures.py`, real clips with their
teacher labels carried through every edit). Bounds sit near what `scripts/footage_study.py`
measured (docs/results/footage.md) with the default rt-sep-kd: 2.40-2.62 % mean NME, 3.15-3.47 %
at worst on any frame, no face missed, no duplicate, no id switch (rt-sep: 2.56-2.67 %, 3.14-3.68 %;
rt-l-112: 2.42-2.61 %, 3.28-3.52 %; rt-m: 2.5-2.7 %, 3.4 %).
(Against the teacher's labels: the bundled models' offsets, `tracker.core.calibration`, move
their points toward the human annotators' convention, 0.3 points away from the teacher's.)"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.datasets import faces_by_image, image_folder
from tracker.core.landmarks import IBUG68
from tracker.core.shape import MEAN_SHAPE_IBUG68
from tracker.evaluation.footage import save_turned, score_tracks, stack_labels
from tracker.runtime.association import keep_distinct, overlap_fraction
from tracker.runtime.config import TrackerConfig
from tracker.runtime.frames import Frame
from tracker.runtime.tracker import Tracker
from tracker.runtime.video_source import VideoSource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FOOTAGE = FIXTURES / "footage"
MEAN, WORST = 0.0275, 0.036  # measured 0.0240-0.0262 and 0.0315-0.0347 (roll_full)


@functools.lru_cache(maxsize=None)
def run(case: str, **overrides):
    """(results, labels) of the default tracker on a footage case (cached per process)."""
    labels = np.load(FOOTAGE / case / "labels.npz")["points"]
    with Tracker(dataclasses.replace(TrackerConfig(), **overrides)) as t:
        results = list(t.track(FOOTAGE / case / "vid.mp4"))
    return results, labels


def scored(case: str, **overrides) -> dict:
    results, labels = run(case, **overrides)
    return score_tracks([r.faces for r in results], labels)


def assert_tracked(s: dict, frames: int) -> None:
    assert s["exact"] == frames and s["missed"] == 0 and s["extra"] == 0
    assert s["mean_nme"] < MEAN and np.nanmax(s["nme"]) < WORST


@pytest.mark.parametrize("case", ["cut", "zoom"])
def test_a_cut_gives_one_face_per_frame_and_the_right_landmarks_at_once(case):
    s = scored(case)
    assert_tracked(s, 72)
    results, _ = run(case)
    assert results[36].detected  # the cut forced a detection


def test_max_faces_1_after_a_cut_still_returns_the_face():
    s = scored("cut", max_faces=1)
    assert_tracked(s, 72)


def test_two_faces_of_different_sizes_are_both_tracked_with_stable_ids():
    s = scored("two_faces")
    assert_tracked(s, 48)
    assert s["switches"] == 0 and len(set(s["ids"][:, 0])) == 1 and len(set(s["ids"][:, 1])) == 1
    assert s["ids"][0, 0] != s["ids"][0, 1]


def test_the_short_range_detector_alone_misses_the_small_face():
    """Why the default detector is "both": short range alone never finds the second face."""
    s = scored("two_faces", detector="short")
    assert s["missed"] == 48


def test_faces_moving_past_each_other_keep_their_ids():
    s = scored("crossing")
    assert_tracked(s, 48)
    assert s["switches"] == 0 and s["ids"][0, 0] != s["ids"][0, 1]


def test_fast_motion_is_followed():
    s = scored("fast")
    assert_tracked(s, 48)
    assert s["switches"] == 0


def test_a_head_rolled_up_to_60_degrees_tracks_as_well_as_upright():
    rolled = scored("rotated")
    assert_tracked(rolled, 72)
    upright = scored("zoom")["nme"][:36, 0]  # the same frames, unedited
    assert rolled["nme"][:36, 0].mean() < upright.mean() + 0.003
    assert rolled["switches"] == 0


def test_a_phone_video_stored_sideways_is_tracked_upright():
    """A phone's portrait video: frames stored turned a quarter, with a display matrix. Points
    come in the upright picture, as players show it (read as stored: every face missed)."""
    s = scored("portrait")
    assert_tracked(s, 48)  # measured 2.46 %, 3.18 % at worst (rt-sep: 2.59, 3.14)
    results, _ = run("portrait")
    assert s["switches"] == 0 and results[0].faces[0].points[:, 1].max() > 360  # portrait rows


@pytest.mark.parametrize("stored", ["exif", "turned"])
def test_a_folder_of_photos_stored_turned_is_tracked(tmp_path, stored):
    """Photos turned by quarter and half turns: with an EXIF orientation tag (as phones store
    them), read as viewers show them; with none (faces lying sideways or upside down), found
    by `turned_faces`. Either way every face is found, with its points where they belong."""
    labels = []
    for i, (image, pts) in enumerate(sorted(faces_by_image(image_folder(FIXTURES / "stills")).items())):
        rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
        labels.append(save_turned(tmp_path / f"{i:03d}.jpg", rgb, pts, (1, -1, 2)[i % 3], stored == "exif"))
    with Tracker(TrackerConfig()) as t:
        res = list(t.track(tmp_path))
    s = score_tracks([r.faces for r in res], stack_labels(labels))
    # measured 2.73 % (exif) and 2.80 % (turned) with rt-sep-kd (rt-sep: 2.78, 2.93); with the
    # photos_multi ones (scripts/footage_study.py) 2.82 and 3.38 against 2.80 upright (rt-sep:
    # 2.97, 3.05, 2.91), and the code before frames came turned as stored missed 8 and 4 of
    # those 11 faces
    assert len(res) == len(labels) and s["missed"] == 0 and s["extra"] == 0
    assert s["mean_nme"] < 0.030


@pytest.mark.parametrize("case,frames", [("upside_down", 48), ("roll_full", 72)])
def test_faces_upside_down_or_rolling_over_are_tracked(case, frames):
    """An upside-down shot (BlazeFace takes the face for an upright one, eyes on the mouth) and
    a head rolling over to 180 degrees: the right points on every frame (measured 2.59 and
    2.67 %, 3.25 and 3.68 % at worst)."""
    s = scored(case)
    assert_tracked(s, frames)
    assert s["switches"] == 0


def test_the_search_remembers_where_it_found_turned_faces():
    """Once the upside-down face has been found on the frame turned over, each scheduled
    detection looks there and upright only (two detections, not the four of a full search)."""
    from tracker.runtime.detect import FaceDetector

    frames = [f.pixels for f in VideoSource(FOOTAGE / "upside_down" / "vid.mp4")]
    calls: list[int] = []
    with FaceDetector("both") as real:
        class Counting:
            model = "both"

            def detect(self, image, only=None):
                calls.append(index)
                return real.detect(image, only)

        with Tracker(TrackerConfig(), detector=Counting()) as t:
            for index, f in enumerate(frames):
                t.process(f, index)
    per_frame = {i: calls.count(i) for i in sorted(set(calls))}
    assert sorted(per_frame) == [0, 10, 20, 30, 40]  # the schedule only
    assert per_frame[20] == per_frame[30] == per_frame[40] == 2


def test_without_turned_faces_the_upside_down_face_is_fitted_the_wrong_way_up():
    """What `turned_faces` buys: without it the upside-down shot's points are upside down."""
    assert scored("upside_down", turned_faces=False)["mean_nme"] > 0.5  # measured 1.22


def test_the_small_faces_of_a_12_megapixel_photo_are_found():
    """The group photo at its own scale (faces 80-145 px) in a 4000 x 3000 photo: found tile by
    tile on the cut (`tracker.runtime.detect.with_tiles`); BlazeFace on the whole frame alone
    finds none of them."""
    (path, faces), = [(p, f) for p, f in faces_by_image(image_folder(FIXTURES / "photos_multi")).items()
                      if "selfie" in p.name]
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    y, x = (3000 - h) // 2, (4000 - w) // 3
    frame = np.full((3000, 4000, 3), 60, np.uint8)
    frame[y:y + h, x:x + w] = image
    with Tracker(TrackerConfig(max_faces=10)) as t:
        found = t.process(frame).faces
    s = score_tracks([found], stack_labels([[f + (x, y) for f in faces]]))
    # measured: 3 of the 4 at 1.7-3.8 %; the partly hidden face is missed here, as at most rolls
    assert (s["nme"] < 0.04).sum() >= 3 and s["extra"] == 0


def test_upright_crops_lose_accuracy_on_the_rolled_head():
    """What turning the crops buys: without it the rolled clip is clearly worse."""
    assert scored("rotated", rotate=False)["mean_nme"] > scored("rotated")["mean_nme"] + 0.015  # 4.5 vs 2.2 %


def test_no_two_output_faces_overlap_on_any_footage():
    limit = TrackerConfig().max_overlap
    for case in ("cut", "zoom", "two_faces", "crossing", "rotated", "fast", "upside_down", "roll_full",
                 "portrait"):
        for r in run(case)[0]:
            for i, a in enumerate(r.faces):
                for b in r.faces[i + 1:]:
                    assert overlap_fraction(a.box, b.box) <= limit, (case, r.index)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 600), st.floats(0, 400), st.floats(20, 200), st.floats(-60, 60)),
                min_size=0, max_size=8),
       st.floats(0.05, 0.9))
def test_kept_faces_never_overlap_property(faces, max_overlap):
    """Whatever faces the alignment returns, the kept ones overlap by at most `max_overlap`."""
    pts = []
    for x, y, size, angle in faces:
        a = np.radians(angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        pts.append(MEAN_SHAPE_IBUG68 @ rot.T * size + (x, y))
    kept = list(keep_distinct(pts, IBUG68.outer_eye_corners, 0.25, max_overlap))
    boxes = [np.concatenate([p.min(0), p.max(0)]) for p in pts]
    for i, a in enumerate(kept):
        for b in kept[i + 1:]:
            assert overlap_fraction(boxes[a], boxes[b]) <= max_overlap
    assert (0 in kept) == bool(pts)  # the first (oldest) face is always kept


def test_a_folder_of_unrelated_photos_matches_no_tracking(tmp_path):
    """Each photo gets its own faces with default options: exactly what --no-tracking gives
    (the shot test makes every unrelated photo a cut)."""
    frames, labels = [], []
    for root in (FIXTURES / "stills", FIXTURES / "photos_multi"):
        for image, pts in sorted(faces_by_image(image_folder(root)).items()):
            frames.append(cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB))
            labels.append(pts)
    lab = stack_labels(labels)
    out = {}
    for tracking in (True, False):
        with Tracker(TrackerConfig(tracking=tracking)) as t:
            res = list(t.track([Frame(i, i / 30, f) for i, f in enumerate(frames)]))
        out[tracking] = res
        s = score_tracks([r.faces for r in res], lab)
        assert s["missed"] == 0 and s["extra"] == 0 and s["mean_nme"] < 0.032  # measured 2.91 % (rt-l-112 3.04, rt-m 3.35)
    for a, b in zip(out[True], out[False]):
        assert len(a.faces) == len(b.faces)
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.points, fb.points, atol=1e-9)


@pytest.mark.parametrize("case", ["cut", "two_faces", "upside_down"])
def test_the_pipeline_detects_in_its_own_thread_and_gives_what_process_gives(case):
    threaded, _ = run(case)
    source = VideoSource(FOOTAGE / case / "vid.mp4")
    frames = [f.pixels for f in source]  # as the pipeline gets them (YUV planes)
    source.close()
    with Tracker(TrackerConfig()) as t:
        inline = [t.process(f, i) for i, f in enumerate(frames)]
        assert "scan" not in t.timings.seconds
    assert [r.detected for r in inline] == [r.detected for r in threaded]
    for a, b in zip(inline, threaded):
        assert [f.id for f in a.faces] == [f.id for f in b.faces]
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.points, fb.points, atol=1e-9)
