"""The search for faces lying turned (tracker/runtime/turned.py), on its own: which quarter
turns it searches and what it remembers, and how a crop is turned about the eyes. The tracker
on real turned footage is tested in test_footage.py."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.core.geometry import quarter_of
from tracker.core.landmarks import IBUG68
from tracker.core.shape import MEAN_SHAPE_IBUG68
from tracker.runtime.detect import Detection
from tracker.runtime.regions import region_from_points
from tracker.runtime.turned import TurnedSearch, turned_about_eyes


def face_at(turn: int, score: float = 0.9, x: float = 100.0) -> Detection:
    box = np.array([x, 100.0, x + 80, 180.0])
    return Detection(box, score, np.zeros((6, 2)), box.copy(), turn)


class Scene:
    """`detect(k)` of a frame whose faces are found at the quarter turns in `faces`."""

    def __init__(self, faces: dict[int, list[Detection]]):
        self.faces, self.calls = faces, []

    def __call__(self, k: int) -> list[Detection]:
        self.calls.append(k)
        return list(self.faces.get(k, []))


def test_nothing_upright_searches_every_turn_then_only_where_faces_were():
    search = TurnedSearch()
    scene = Scene({2: [face_at(2)]})
    assert [d.turn for d in search(scene)] == [2] and scene.calls == [0, 1, 3, 2]
    scene.calls.clear()
    assert [d.turn for d in search(scene)] == [2] and scene.calls == [0, 2]  # remembered
    upright = Scene({0: [face_at(0)]})  # the face is upright again: the memory empties
    assert [d.turn for d in search(upright)] == [0] and upright.calls == [0, 2]
    upright.calls.clear()
    search(upright)
    assert upright.calls == [0] and search.turns == set()


def test_a_face_found_several_ways_is_kept_the_most_confident_way():
    search = TurnedSearch()
    search.turns = {2}
    # upright, BlazeFace takes the upside-down face for an upright one, less confidently
    scene = Scene({0: [face_at(0, 0.69)], 2: [face_at(2, 0.96)], 1: [face_at(1, 0.9, x=400)]})
    found = search(scene)
    assert [(d.turn, d.score) for d in found] == [(2, 0.96)] and search.turns == {2}


def test_upright_faces_cost_one_detection():
    search = TurnedSearch()
    scene = Scene({0: [face_at(0)], 2: [face_at(2, x=400)]})
    assert [d.turn for d in search(scene)] == [0] and scene.calls == [0]


@pytest.mark.parametrize("angle,quarter", [(0, 0), (44, 0), (46, 1), (90, 1), (-90, 3), (178, 2), (-179, 2), (269, 3)])
def test_quarter_of_a_roll(angle, quarter):
    assert quarter_of(angle) == quarter


def test_a_crop_turned_half_way_about_the_eyes_lands_on_the_face_the_right_way_up():
    """An upside-down face fitted the wrong way up keeps its eyes where they are: turned by
    180 degrees about them, the region is that of the face the right way up."""
    upright = MEAN_SHAPE_IBUG68 * 100 + (300, 200)
    face = region_from_points(upright, IBUG68)
    eyes = upright[list(IBUG68.outer_eye_corners)].mean(0)
    wrong = 2 * eyes - upright  # the same eyes, the rest mirrored through them: chin above
    got = turned_about_eyes(region_from_points(wrong, IBUG68), wrong, IBUG68, 180.0)
    np.testing.assert_allclose(got.center, face.center, atol=1e-9)
    assert got.side == pytest.approx(face.side)
    assert abs((got.angle - face.angle + 180) % 360 - 180) < 1e-9
