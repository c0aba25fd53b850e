"""Faces lying sideways or upside down (`TrackerConfig.turned_faces`).

A photo turned with no EXIF tag, a camera mounted upside down, a head rolled over: BlazeFace
misses most faces rolled past 90 degrees, and takes many upside-down faces for upright ones
with its eye keypoints on the mouth; on such a crop the landmark model still draws a
face-like shape, only a less confident one. The tracker (`tracker.runtime.tracker`) therefore
- searches the frame turned by quarter turns (`TurnedSearch`, `detect_turned`) on the
  detections of cuts and of the schedule: upright, then where the last search found faces
  turned, and at every other quarter turn when that finds none;
- aligns a face from a detection that scores under `TURN_BELOW` again with its crop turned
  about its eyes (`turned_about_eyes`) by each quarter turn, and keeps the most confident fit;
- where faces turn out to lie turned, searches the frame that way for others.

Quarter turns are counted counter-clockwise, as `np.rot90` turns an image; a face whose eye
line has roll `angle` (degrees, `tracker.runtime.regions`) lies upright on the frame turned by
`tracker.core.geometry.quarter_of(angle)`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tracker.core.landmarks import LandmarkScheme
from tracker.core.yuv import YUV420
from tracker.runtime.detect import Detection, strongest
from tracker.runtime.regions import Region

#: A face from a detection whose mean heatmap peak is under this is also tried turned by each
#: quarter turn: held-out upright faces score 0.83 and more (1st percentile,
#: `TrackerConfig.lost_threshold`), the same faces cropped upside down 0.54-0.76.
TURN_BELOW = 0.85
#: The other quarter turns of a crop, in degrees of roll.
TURNS_DEGREES = (90.0, 180.0, 270.0)


def detect_turned(detector, image: np.ndarray | YUV420, only: str | None, turns: int) -> list[Detection]:
    """The detector's faces (`only` one of the "both" detector's models, when given) on the
    frame turned by `turns` quarter turns, in the frame's own pixels."""
    turned = image
    if turns:
        turned = image.turned(turns) if isinstance(image, YUV420) else np.ascontiguousarray(np.rot90(image, turns))
    found = detector.detect(turned, only) if only else detector.detect(turned)
    return [d.found_turned(turns, image.shape[:2]) for d in found] if turns else found


class TurnedSearch:
    """The search of a cut's or a scheduled detection, with its memory of the quarter turns
    where it last found faces (one more detection per search on an upside-down shot, none
    while faces are found upright, three more on a frame without any face)."""

    def __init__(self) -> None:
        self.turns: set[int] = set()

    def __call__(self, detect: Callable[[int], list[Detection]]) -> list[Detection]:
        """Faces found by `detect(turns)` upright, at the remembered quarter turns, and, when
        those find none, at every other; a face found several ways, the most confident way."""
        found = detect(0)
        turned = [d for k in sorted(self.turns) for d in detect(k)]
        if not (found or turned):
            turned = [d for k in (1, 3, 2) if k not in self.turns for d in detect(k)]
        if turned:
            found = strongest(found + turned)
        self.turns = {d.turn for d in found if d.turn}
        return found


def turned_about_eyes(region: Region, points: np.ndarray, scheme: LandmarkScheme, degrees: float) -> Region:
    """`region` (of `points`) turned by `degrees` about the eyes' midpoint: the eyes are what a
    detector or a model gets right on a face it sees the wrong way up, so the face turned
    about them lies where a face the right way up would."""
    a, b = scheme.outer_eye_corners
    eyes = (points[a] + points[b]) / 2
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return Region(eyes + rot @ (region.center - eyes), region.side, region.angle + degrees)
