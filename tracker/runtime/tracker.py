"""The tracker's Python API: `TrackerConfig` -> `Tracker` -> `FrameResult`s.

    with Tracker(TrackerConfig(detect_every=10)) as tracker:
        for result in tracker.track("clip.mp4"):      # or a folder of images, or 0 (webcam)
            for face in result.faces:
                face.id, face.box, face.points, face.point_scores, face.score

One association step per frame (MediaPipe's face graph and SORT, in small functions):
1. shot test: a frame unlike the previous one (`tracker.runtime.shots`) is a cut;
2. predict: each track's region (`tracker.runtime.regions`: centre, side and roll from its
   last landmarks) moved by its last motion, less a dead zone of 5 % of its side;
3. detect on the first frame, every `detect_every` frames, on a cut, when no face is tracked,
   or when a track is lost (the scheduled detections of the "both" detector run its short-
   and full-range models in turn, the others both; those of cuts and of the schedule also
   find faces lying sideways or upside down, `turned_faces`); match predictions to detections by box
   IoU: a matched detection that disagrees with its track (IoU under `reanchor_iou`, or any
   cut) re-anchors it, a track that no detection confirms is dropped on a cut or after
   `max_unconfirmed` detection frames, an unmatched detection starts a candidate;
4. align every region of the frame in one batch, each crop turned to the face's eye line; a
   face whose crop came from a detection is aligned again from its own landmarks (`refine`);
5. keep the faces that look like faces (heatmap confidence, shape); a track lost on a frame
   without detection triggers one and its own re-anchoring;
6. suppress duplicates in landmark space (the same face twice keeps the older id and the more
   confident points) and overlaps, then cap to `max_faces`, older tracks first.
Points are (68, 2) float64 0-based frame pixels (see `tracker.core.geometry`); boxes are
(x0, y0, x1, y1), the extent of the face's landmarks.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from tracker.core.geometry import eye_angle, points_box, quarter_of
from tracker.core.images import to_rgb
from tracker.core.landmarks import SCHEMES
from tracker.core.yuv import YUV420
from tracker.engines.backend import Backend, BackendOptions
from tracker.engines.registry import load_backend
from tracker.runtime import turned
from tracker.runtime.align import Aligner, Decoder
from tracker.runtime.association import as_boxes, box_iou, keep_distinct, match_boxes
from tracker.runtime.capture import open_source
from tracker.runtime.config import TrackerConfig
from tracker.runtime.detect import Detection, FaceDetector, strongest, with_tiles
from tracker.runtime.frames import Frame, Source
from tracker.runtime.pipeline import Runner, Timings
from tracker.runtime.plausibility import plausible
from tracker.runtime.regions import Region, region_from_box, region_from_points
from tracker.runtime.results import Face, FrameResult
from tracker.runtime.shots import ShotChangeDetector
from tracker.runtime.smooth import LandmarkSmoother

#: Two faces whose points lie within this many inter-ocular distances (median) are one face.
SAME_FACE_TOLERANCE = 0.25


@dataclass
class _Track:
    id: int
    points: np.ndarray  # (K, 2) raw (unsmoothed) points of the last frame
    scores: np.ndarray  # (K,)
    region: Region  # of `points`
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # region centre, per frame
    unconfirmed: int = 0  # detection frames in a row that no detection matched


@dataclass
class _Candidate:
    """A region to align this frame: a track's prediction (`track` set) or a detection's."""

    region: Region
    track: _Track | None = None
    unconfirmed: int = 0
    anchored: bool = False  # the region comes from a detection


class Tracker:
    """Landmark tracker over frames; see the module docstring. `backend`, `detector` and
    `decode` may be given to replace the ones the config names (tests, GPU decoders)."""

    def __init__(self, config: TrackerConfig | None = None, backend: Backend | None = None,
                 detector: FaceDetector | None = None, decode: Decoder | None = None):
        self.config = config = config if config is not None else TrackerConfig()
        self.timings = Timings()
        self.backend = backend if backend is not None else load_backend(
            config.backend, config.model, options=BackendOptions(threads=config.threads, spin=config.spin))
        self.detector = detector if detector is not None else FaceDetector(
            config.detector, config.min_detection_score)
        self.aligner = Aligner(self.backend, decode, timings=self.timings,
                               flip_test=config.flip_test)
        self.smoother = LandmarkSmoother(config.smoothing) if config.smooth else None
        self.info = self.backend.info
        self.scheme = SCHEMES[self.info.scheme]
        self.shots = ShotChangeDetector(config.cut_threshold) if config.cut_threshold else None
        self._detector_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._count = 0
        self._scanned = 0
        self._detected = False
        self._search = turned.TurnedSearch()
        if self.shots is not None:
            self.shots.reset()
        if self.smoother is not None:
            self.smoother.reset()

    # -- one frame -------------------------------------------------------------------------
    def process(self, frame_rgb: np.ndarray | YUV420, index: int = 0, timestamp: float = 0.0,
                detections: list[Detection] | None = None, cut: bool | None = None) -> FrameResult:
        """Faces of one frame ((H, W), (H, W, 3) or (H, W, 4) uint8, RGB; or a decoder's
        `YUV420` planes, from which only the crops are converted). `index` and
        `timestamp` are reported back (and drive the smoother); the detection schedule counts
        the calls. `cut` and `detections`, when given, come from `scan` run on this frame
        ahead of time (in the pipeline's detection thread); otherwise they are found here,
        on the same schedule, so both ways give the same faces."""
        image = _pixels(frame_rgb)
        self._count += 1
        self._detected = detections is not None
        if cut is None:
            cut = self._is_cut(image)
        tracks = self._tracks
        due = self._detection_due(self._count)
        if detections is None and (cut or not tracks or due):
            detections = self._detect(image, None if cut or not due else self._scheduled_model(self._count),
                                      search=cut or due, cut=cut)
        elif detections is not None:
            detections = self._usable(detections)
        with self.timings.measure("associate"):
            candidates = self._associate(tracks, detections, cut)
        alive, lost = self._align(image, candidates)
        if (cut or due) and self.config.turned_faces and self.config.rotate:
            alive += self._turned_others(image, alive, detections or [])
        if lost and not self._detected:  # a track is lost: detect now, re-anchor it
            detections = self._detect(image)
            with self.timings.measure("associate"):
                retry = self._associate(lost, detections, cut=True)
                retry = [c for c in retry if c.track is not None or not self._covered(c, alive)]
            alive += self._align(image, retry)[0]
        with self.timings.measure("associate"):
            alive = self._distinct(alive)
        self._tracks = alive
        return FrameResult(int(index), float(timestamp), self._faces(alive, timestamp),
                           detected=self._detected)

    def _is_cut(self, image: np.ndarray | YUV420) -> bool:
        """A shot change (every frame is one without tracking: faces come from detections)."""
        if not self.config.tracking or self.shots is None:
            return not self.config.tracking
        with self.timings.measure("shots"):
            return self.shots.is_cut(image)

    def _detection_due(self, count: int) -> bool:
        """The schedule: the 1st frame and every `detect_every`-th after it."""
        return (count - 1) % self.config.detect_every == 0

    def _scheduled_model(self, count: int) -> str | None:
        """The model a scheduled (not a cut's) detection runs: the "both" detector's models in
        turn, each every 2 x `detect_every` frames (half the cost; tracks are confirmed as before,
        small new faces a detection later); None (all) on the first frame and for the others."""
        if getattr(self.detector, "model", None) != "both" or count == 1:
            return None
        return ("short", "full")[((count - 1) // self.config.detect_every) % 2]

    def _find(self, image: np.ndarray | YUV420, only: str | None, search: bool = False,
              cut: bool = False) -> list[Detection]:
        """The detector's faces (`only`: one of the "both" detector's models), on a large cut
        also tile by tile (`with_tiles`); `search` (cuts' and scheduled detections, in this
        order in `scan` and `process` alike): also those lying turned (`turned.TurnedSearch`)."""
        def detect(k: int) -> list[Detection]:
            found = turned.detect_turned(self.detector, image, only, k)
            return with_tiles(self.detector, image, only, found) if cut and not k else found

        with self._detector_lock, self.timings.measure("detect"):
            if not (search and self.config.turned_faces and self.config.rotate):
                return detect(0)
            return self._search(detect)

    def _turned_others(self, image: np.ndarray | YUV420, alive: list[_Track],
                       detections: list[Detection]) -> list[_Track]:
        """New faces lying as a searched frame's turned faces lie: the frame searched at their
        quarter turns, unless its detections came from there (BlazeFace finds some upside down)."""
        turns = {quarter_of(t.region.angle) for t in alive} - {0} - {d.turn for d in detections}
        if not turns:
            return []
        with self._detector_lock, self.timings.measure("detect"):
            found = strongest([d for k in sorted(turns) for d in turned.detect_turned(self.detector, image, None, k)])
        with self.timings.measure("associate"):
            fresh = [c for c in self._associate([], self._usable(found), cut=True) if not self._covered(c, alive)]
        return self._align(image, fresh)[0]

    def _detect(self, image: np.ndarray | YUV420, only: str | None = None, **find: bool) -> list[Detection]:
        found = self._find(image, only, **find)
        self._detected = True
        return self._usable(found)

    def scan(self, image: np.ndarray | YUV420) -> tuple[bool, list[Detection] | None]:
        """The detection side of the frame after the last one scanned: whether it is a cut,
        and its detections if the schedule (or the cut) wants them. The pipeline runs this in
        its own thread ahead of `process`, so tracking never waits for the detector."""
        self._scanned += 1
        image = _pixels(image)
        cut = self._is_cut(image)
        if not (cut or self._detection_due(self._scanned)):
            return cut, None
        return cut, self._find(image, None if cut else self._scheduled_model(self._scanned), True, cut)

    def _usable(self, detections: list[Detection]) -> list[Detection]:
        m = self.config.min_face_size
        return [d for d in detections if max(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= m]

    def _detection_region(self, d: Detection) -> Region:
        angle = eye_angle(d.keypoints[0], d.keypoints[1]) if self.config.rotate else 0.0
        return region_from_box(d.box, angle)

    def _associate(self, tracks: list[_Track], detections: list[Detection] | None,
                   cut: bool) -> list[_Candidate]:
        """Regions to align: tracks' predictions, matched to `detections` when there are some
        (see the module docstring, step 3); None = no detection this frame."""
        cfg = self.config
        preds = [t.region.predicted(t.velocity, cfg.motion_deadzone) for t in tracks]
        if detections is None:
            return [_Candidate(p, t, t.unconfirmed) for t, p in zip(tracks, preds)]
        regions = [self._detection_region(d) for d in detections]
        pairs = match_boxes(as_boxes(p.box for p in preds), as_boxes(r.box for r in regions),
                            cfg.match_iou)
        out = []
        for i, (t, p) in enumerate(zip(tracks, preds)):
            if i in pairs:
                j = pairs[i]
                iou = float(box_iou(p.box, regions[j].box)[0, 0])
                if cut or iou < cfg.reanchor_iou:
                    out.append(_Candidate(regions[j], t, 0, anchored=True))
                else:
                    out.append(_Candidate(p, t, 0))
            elif not cut and t.unconfirmed < cfg.max_unconfirmed:
                out.append(_Candidate(p, t, t.unconfirmed + 1))
        taken = set(pairs.values())
        fresh = [j for j in range(len(regions)) if j not in taken][:cfg.max_faces]
        out += [_Candidate(regions[j], None, 0, anchored=True) for j in fresh]  # best score first
        return out

    def _covered(self, c: _Candidate, alive: list[_Track]) -> bool:
        boxes = as_boxes(t.region.box for t in alive)
        return bool(len(boxes)) and float(box_iou(c.region.box, boxes).max()) >= self.config.match_iou

    def _align(self, image: np.ndarray | YUV420, candidates: list[_Candidate]) -> tuple[list[_Track], list[_Track]]:
        """Align every candidate in one batch: (faces that look like faces, tracks lost)."""
        if not candidates:
            return [], []
        points, scores = self._align_regions(image, [c.region for c in candidates])
        for _ in range(self.config.refine):  # re-crop detections' faces from their landmarks
            own = {i: self._region(points[i]) for i, c in enumerate(candidates) if c.anchored}
            redo = [i for i, r in own.items() if self._plausible(points[i], scores[i], r, None)]
            if not redo:
                break
            points[redo], scores[redo] = self._align_regions(image, [own[i] for i in redo])
        if self.config.turned_faces and self.config.rotate:
            self._turn_doubtful(image, candidates, points, scores)
        alive, lost = [], []
        for c, p, s in zip(candidates, points, scores):
            t = c.track
            region = self._region(p)
            prior = None if (t is None or c.anchored) else t.region.side
            if not self._plausible(p, s, region, prior):
                if t is not None:
                    lost.append(t)
                continue
            if t is None:
                alive.append(_Track(self._new_id(), p, s, region))
            else:
                moved = np.zeros(2) if c.anchored else region.center - t.region.center
                alive.append(_Track(t.id, p, s, region, moved, c.unconfirmed))
        return alive, lost

    def _turn_doubtful(self, image: np.ndarray | YUV420, candidates: list[_Candidate],
                       points: np.ndarray, scores: np.ndarray) -> None:
        """Faces from a detection that score under `TURN_BELOW` or do not look like a face,
        aligned again (and refined) with their crop turned about the eyes by each other quarter
        turn: the most confident face-like fit of the four replaces theirs, in place."""
        doubtful = [i for i, c in enumerate(candidates) if c.anchored and (
            float(np.mean(scores[i])) < turned.TURN_BELOW
            or not self._plausible(points[i], scores[i], self._region(points[i]), None))]
        if not doubtful:
            return
        turns = turned.TURNS_DEGREES
        regions = [turned.turned_about_eyes(self._region(points[i]), points[i], self.scheme, a)
                   for i in doubtful for a in turns]
        p, sc = self._align_regions(image, regions)
        for _ in range(self.config.refine):
            p, sc = self._align_regions(image, [self._region(q) for q in p])
        for j, i in enumerate(doubtful):
            tries = [(float(np.mean(sc[k])), k) for k in range(j * len(turns), (j + 1) * len(turns))
                     if self._plausible(p[k], sc[k], self._region(p[k]), None)]
            if tries and max(tries)[0] > float(np.mean(scores[i])):
                k = max(tries)[1]
                points[i], scores[i] = p[k], sc[k]

    def _align_regions(self, image: np.ndarray | YUV420, regions: list[Region]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (N, K, 2) and scores (N, K) of the faces in `regions`, in one batch."""
        ratio = self.info.crop_ratio
        m = np.stack([r.transform(self.aligner.input_hw, ratio) for r in regions])
        return self.aligner.align_crops(image, m)

    def _region(self, points: np.ndarray) -> Region:
        if self.config.rotate:
            return region_from_points(points, self.scheme)
        return region_from_box(points_box(points))

    def _distinct(self, faces: list[_Track]) -> list[_Track]:
        """Older tracks first; duplicates and overlaps suppressed; at most `max_faces`."""
        cfg = self.config
        faces = sorted(faces, key=lambda t: t.id)
        kept = keep_distinct([t.points for t in faces], self.scheme.outer_eye_corners,
                             SAME_FACE_TOLERANCE, cfg.max_overlap)
        out = []
        for k, absorbed in kept.items():
            best = max([faces[k], *(faces[i] for i in absorbed)], key=lambda t: float(np.mean(t.scores)))
            t = faces[k]
            if best is not t:  # the same face, more confident: its points under the older id
                t = _Track(t.id, best.points, best.scores, best.region, t.velocity, t.unconfirmed)
            out.append(t)
        return out[:cfg.max_faces]

    def _new_id(self) -> int:
        fid = self._next_id
        self._next_id += 1
        return fid

    def _plausible(self, points: np.ndarray, scores: np.ndarray, region: Region,
                   prior_side: float | None) -> bool:
        return plausible(points, scores, region, prior_side, self.config, self.scheme)

    def _faces(self, tracks: list[_Track], timestamp: float) -> list[Face]:
        faces = []
        if self.smoother is not None:
            with self.timings.measure("smooth"):
                self.smoother.keep(t.id for t in tracks)
                smoothed = [self.smoother(t.id, t.points, timestamp) for t in tracks]
        else:
            smoothed = [t.points for t in tracks]
        for t, p in zip(tracks, smoothed):
            faces.append(Face(t.id, points_box(p), np.array(p, np.float64),
                              np.asarray(t.scores, np.float32), float(np.mean(t.scores))))
        return faces

    # -- streams ---------------------------------------------------------------------------
    def track(self, source: str | int | os.PathLike | Source | Iterable[Frame]) -> Iterator[FrameResult]:
        """Results of every frame of `source` (a video file or URL, a folder of images, a
        webcam index, a `Source`, or any iterable of `Frame`s), decoded in a thread."""
        for _, result in self.track_frames(source):
            yield result

    def track_frames(self, source, stages=()) -> Iterator[tuple[Frame, FrameResult]]:
        """(frame, result) pairs; `stages` are further (name, callable) pipeline stages that
        map each (frame, result) pair on, in threads of their own."""
        self.reset()
        owned = isinstance(source, (str, bytes, int, os.PathLike))
        src = open_source(source) if owned else source
        live = bool(getattr(src, "live", False))
        runner = Runner(src, [("scan", self._scan_stage), ("track", self._track_stage), *stages],
                        self.config.queue_size, live, self.timings)
        self.runner = runner
        try:
            yield from runner
        finally:
            if owned and runner.close():  # never released under a read still in progress
                src.close()

    def _scan_stage(self, frame: Frame) -> tuple[Frame, bool, list[Detection] | None]:
        return (frame, *self.scan(frame.pixels))

    def _track_stage(self, item: tuple[Frame, bool, list[Detection] | None]) -> tuple[Frame, FrameResult]:
        frame, cut, detections = item
        return frame, self.process(frame.pixels, frame.index, frame.timestamp, detections, cut)

    def close(self) -> None:
        """Release the detector (the backend holds no OS resources)."""
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pixels(image: np.ndarray | YUV420) -> np.ndarray | YUV420:
    """A frame as the tracker takes it: YUV planes as they are, any image array as RGB."""
    return image if isinstance(image, YUV420) else to_rgb(image)
