"""Face regions: the landmark extent of the face turned upright, and the crop it gives."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tracker.runtime_fixtures import ANNOT
from tracker.core.geometry import apply, crop_transform, eye_angle, points_box, similarity
from tracker.core.landmarks import IBUG68
from tracker.core.pts import read_pts
from tracker.runtime.regions import Region, region_from_box, region_from_points

LABELS = read_pts(ANNOT / "000001.pts")


def test_an_upright_face_gives_the_training_crop():
    level = region_from_points(LABELS, IBUG68)
    upright = apply(similarity(level.center, level.center, 1.0, level.angle), LABELS)
    r = region_from_points(upright, IBUG68)
    assert abs(r.angle) < 1e-9
    np.testing.assert_allclose(r.transform((128, 128)), crop_transform(points_box(upright), (128, 128)),
                               atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.floats(-80, 80), st.floats(0.3, 3.0), st.floats(-300, 300), st.floats(-300, 300))
def test_the_region_turns_scales_and_moves_with_the_face(angle, scale, dx, dy):
    base = region_from_points(LABELS, IBUG68)
    m = similarity(base.center, base.center + (dx, dy), scale, -angle)  # turns the face by +angle
    r = region_from_points(apply(m, LABELS), IBUG68)
    assert abs((r.angle - base.angle - angle + 180) % 360 - 180) < 1e-6
    assert abs(r.side - scale * base.side) < 1e-6 * scale * base.side
    np.testing.assert_allclose(r.center, base.center + (dx, dy), atol=1e-6)
    # the crop of the moved face equals the crop of the original: the face arrives upright
    np.testing.assert_allclose(apply(r.transform((128, 96)), apply(m, LABELS)),
                               apply(base.transform((128, 96)), LABELS), atol=1e-6)


def test_eye_angle_and_box_regions():
    assert eye_angle((0, 0), (10, 0)) == 0 and abs(eye_angle((0, 0), (10, 10)) - 45) < 1e-12
    r = region_from_box(np.array([10.0, 20.0, 110.0, 140.0]), 30.0)
    assert r.side == 120 and r.angle == 30 and tuple(r.center) == (60, 80)
    assert tuple(Region(np.array([5.0, 5.0]), 4.0).box) == (3, 3, 7, 7)


def test_prediction_follows_motion_beyond_the_dead_zone_only():
    r = Region(np.array([100.0, 100.0]), 200.0)
    assert r.predicted(np.array([6.0, 8.0]), 0.05) is r  # 10 px <= 5 % of 200
    np.testing.assert_allclose(r.predicted(np.array([30.0, 40.0]), 0.05).center, [124.0, 132.0])
    np.testing.assert_allclose(r.predicted(np.array([30.0, 40.0]), 0.0).center, [130.0, 140.0])
