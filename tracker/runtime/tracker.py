"""The tracker's Python API: `TrackerConfig` -> `Tracker` -> `FrameResult`s.

    with Tracker(TrackerConfig(detect_every=10)) as tracker:
        for result in tracker.track("clip.mp4"):      # or a folder of images, or 0 (webcam)
            for face in result.faces:
                face.id, face.box, face.points, face.point_scores, face.score

Per frame: faces being tracked are cropped from their previous landmarks; the detector runs
on the first frame, every `detect_every` frames (to find new faces) and whenever a track is
lost (mean heatmap peak under `lost_threshold`, or an implausible shape). New detections are
matched to tracks by box IoU, so a face keeps its id. All faces of a frame go through the
backend as one batch. Points are (68, 2) float64 0-based frame pixels (see
`tracker.core.geometry`); boxes are (x0, y0, x1, y1), the extent of the face's landmarks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from tracker.core.geometry import points_box
from tracker.core.images import to_rgb
from tracker.core.landmarks import IBUG68
from tracker.core.shape import shape_residual
from tracker.engines.backends import Backend, load_backend
from tracker.runtime.align import Aligner, Decoder
from tracker.runtime.association import as_boxes, match_boxes
from tracker.runtime.capture import open_source
from tracker.runtime.config import TrackerConfig
from tracker.runtime.detect import Detection, FaceDetector
from tracker.runtime.frames import Frame, Source
from tracker.runtime.pipeline import Runner, Timings
from tracker.runtime.results import Face, FrameResult
from tracker.runtime.smooth import LandmarkSmoother


@dataclass
class _Track:
    id: int
    points: np.ndarray  # (K, 2) raw (unsmoothed) points of the last frame
    scores: np.ndarray  # (K,)

    @property
    def box(self) -> np.ndarray:
        return points_box(self.points)


class Tracker:
    """Landmark tracker over frames; see the module docstring. `backend`, `detector` and
    `decode` may be given to replace the ones the config names (tests, GPU decoders)."""

    def __init__(self, config: TrackerConfig | None = None, backend: Backend | None = None,
                 detector: FaceDetector | None = None, decode: Decoder | None = None):
        self.config = config = config if config is not None else TrackerConfig()
        self.timings = Timings()
        self.backend = backend if backend is not None else load_backend(
            config.backend, config.model, config.threads)
        self.detector = detector if detector is not None else FaceDetector(
            config.detector, config.min_detection_score)
        self.aligner = Aligner(self.backend, decode, timings=self.timings,
                               flip_test=config.flip_test)
        self.smoother = LandmarkSmoother(config.smoothing) if config.smooth else None
        self.info = self.backend.info
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_detection: int | None = None
        self._count = 0
        self._detected = False
        if self.smoother is not None:
            self.smoother.reset()

    # -- one frame -------------------------------------------------------------------------
    def process(self, frame_rgb: np.ndarray, index: int = 0, timestamp: float = 0.0) -> FrameResult:
        """Faces of one frame ((H, W), (H, W, 3) or (H, W, 4) uint8; RGB). `index` and
        `timestamp` are reported back (and drive the smoother); the detection schedule counts
        the calls."""
        image = to_rgb(frame_rgb)
        cfg = self.config
        self._count += 1
        self._detected = False
        previous = self._tracks
        tracks = previous if cfg.tracking else []  # detector-only: faces from detections
        dets = self._detect(image) if self._detection_due() else None
        assigned = match_boxes(as_boxes(t.box for t in tracks), as_boxes(d.box for d in dets or []),
                               cfg.match_iou)
        taken = set(assigned.values())
        fresh = [d for j, d in enumerate(dets or []) if j not in taken]
        fresh = fresh[:max(cfg.max_faces - len(tracks), 0)]
        # ids for new faces: detector-only mode keeps the id of the face it overlaps
        reuse = match_boxes(as_boxes(d.box for d in fresh), as_boxes(t.box for t in previous),
                            cfg.match_iou) if not cfg.tracking else {}
        boxes = as_boxes([t.box for t in tracks] + [d.box for d in fresh])
        points, scores = self.aligner.align(image, boxes)

        alive: list[_Track] = []
        lost: list[tuple[_Track, Detection | None]] = []
        for i, t in enumerate(tracks):
            if self._plausible(points[i], scores[i], t):
                alive.append(_Track(t.id, points[i], scores[i]))
            else:
                lost.append((t, dets[assigned[i]] if i in assigned else None))
        for j in range(len(fresh)):
            k = len(tracks) + j
            if self._plausible(points[k], scores[k], None):
                fid = previous[reuse[j]].id if j in reuse else self._new_id()
                alive.append(_Track(fid, points[k], scores[k]))

        if lost:  # recover lost faces from a detection (this frame's, or a new one)
            alive += self._recover(image, lost, dets, alive)
        alive.sort(key=lambda t: t.id)
        self._tracks = alive
        return FrameResult(int(index), float(timestamp), self._faces(alive, timestamp),
                           detected=self._detected)

    def _detection_due(self) -> bool:
        last = self._last_detection
        return (not self._tracks or not self.config.tracking or last is None
                or self._count - last >= self.config.detect_every)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        with self.timings.measure("detect"):
            found = self.detector.detect(image)
        self._last_detection = self._count
        self._detected = True
        m = self.config.min_face_size
        return [d for d in found if max(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= m]

    def _recover(self, image: np.ndarray, lost: list[tuple[_Track, Detection | None]],
                 dets: list[Detection] | None, alive: list[_Track]) -> list[_Track]:
        """Re-align lost tracks from a detection that overlaps them (keeping their ids); on a
        frame without detection yet, detect first and also start the faces it finds anew."""
        iou = self.config.match_iou
        if dets is None:
            dets = self._detect(image)
            covered = match_boxes(as_boxes(d.box for d in dets), as_boxes(t.box for t in alive), iou)
            candidates = [d for j, d in enumerate(dets) if j not in covered]
            by_lost = match_boxes(as_boxes(t.box for t, _ in lost), as_boxes(d.box for d in candidates), iou)
            retry = [(lost[i][0].id, candidates[j]) for i, j in by_lost.items()]
            used = set(by_lost.values())
            retry += [(None, d) for j, d in enumerate(candidates) if j not in used]
        else:
            retry = [(t.id, d) for t, d in lost if d is not None]
        retry = retry[:max(self.config.max_faces - len(alive), 0)]
        if not retry:
            return []
        points, scores = self.aligner.align(image, as_boxes(d.box for _, d in retry))
        out = []
        for (tid, _), p, s in zip(retry, points, scores):
            if self._plausible(p, s, None):
                out.append(_Track(tid if tid is not None else self._new_id(), p, s))
        return out

    def _new_id(self) -> int:
        fid = self._next_id
        self._next_id += 1
        return fid

    def _plausible(self, points: np.ndarray, scores: np.ndarray, prev: _Track | None) -> bool:
        """Heatmap confidence and shape checks that decide whether a face is (still) there."""
        if not np.isfinite(points).all() or float(np.mean(scores)) < self.config.lost_threshold:
            return False
        box = points_box(points)
        side = max(box[2] - box[0], box[3] - box[1])
        if side < 0.5 * self.config.min_face_size or side <= 0:
            return False
        if prev is not None:
            pbox = prev.box
            pside = max(pbox[2] - pbox[0], pbox[3] - pbox[1], 1e-6)
            if not 0.5 <= side / pside <= 2.0:
                return False
        if len(points) == IBUG68.n_points:
            a, b = IBUG68.outer_eye_corners
            iod = float(np.linalg.norm(points[a] - points[b]))
            if not 0.05 * side <= iod <= 1.0 * side:
                return False
            limit = self.config.max_shape_residual
            if limit is not None and shape_residual(points) > limit:
                return False
        return True

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
        runner = Runner(src, [("track", self._track_stage), *stages], self.config.queue_size,
                        live, self.timings)
        self.runner = runner
        try:
            yield from runner
        finally:
            if owned:
                src.close()

    def _track_stage(self, frame: Frame) -> tuple[Frame, FrameResult]:
        return frame, self.process(frame.image, frame.index, frame.timestamp)

    def close(self) -> None:
        """Release the detector (the backend holds no OS resources)."""
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
