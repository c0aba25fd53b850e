"""The tracker's Python API: `TrackerConfig` -> `Tracker` -> `FrameResult`s.

    tracker = Tracker(TrackerConfig(detect_every=10))
    for result in tracker.track("clip.mp4"):          # or a folder of images, or 0 (webcam)
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
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from tracker.core.geometry import points_box
from tracker.core.landmarks import IBUG68
from tracker.core.shape import shape_residual
from tracker.engines.backends import BACKENDS, Backend, load_backend
from tracker.runtime.align import Aligner, Decoder
from tracker.runtime.capture import Frame, Source, as_rgb, open_source
from tracker.runtime.detect import CHOICES, Detection, FaceDetector
from tracker.runtime.pipeline import Runner, Timings
from tracker.runtime.smooth import LandmarkSmoother, SmoothConfig


@dataclass(frozen=True)
class TrackerConfig:
    """Everything that sets the tracker's behaviour; validated on creation.

    model: model file (.onnx, or .pt for the torch backends); None = the bundled model.
    backend: "onnxruntime" | "torch" | "torch-cuda" | "tensorrt".
    threads: onnxruntime intra-op threads (None: its default).
    detector: BlazeFace "short" (faces within ~2 m), "full" (small faces) or "auto".
    detect_every: re-detect every N frames (N >= 1) to pick up new faces.
    max_faces: most faces tracked at once.
    min_detection_score: BlazeFace score threshold.
    lost_threshold: mean heatmap peak under which a track is dropped (and the frame
        re-detected); a new detection whose landmarks score under it is not started.
        `scripts/score_separation.py` (docs/results/score_separation.md) measures the bundled
        model: held-out 300-W faces score 0.83 and more (1st percentile), clip frames 0.88,
        crops shifted by half a face 0.47 (median), crops of background 0.27 (median); 0.4
        drops no face there and 90 % of off-face crops. An untrained model scores about 0.25
        everywhere (use 0 to track with one).
    max_shape_residual: points further than this from the mean face shape (RMS, inter-ocular
        units, after a similarity fit; see `tracker.core.shape`) are not a face: the track is lost.
        300-W's labelled faces reach 0.24; a track sliding off the face scatters its points
        to 1 and more (clm_franck: 0.3 to 6 as its crop grew frame after frame). 0.5 stops
        that and keeps faces whose jaw line alone is off. None turns the check off (an
        untrained model's points are not face-shaped).
    min_face_size: detections whose landmark box side is smaller (pixels) are ignored.
    match_iou: box IoU from which a detection belongs to an existing track.
    tracking: crop from the previous landmarks; False = every frame from fresh detections.
    smooth: One-Euro filter on the output points (off for evaluation), with `smoothing`.
    flip_test: also infer each face mirrored and average (twice the inference; on HELEN test
        with rt-m, 3.55 -> 3.47 % mean NME with its own detector).
    queue_size: bounded queue length between the pipeline's threads.
    """

    model: str | None = None
    backend: str = "onnxruntime"
    threads: int | None = None
    detector: str = "short"
    detect_every: int = 10
    max_faces: int = 4
    min_detection_score: float = 0.5
    lost_threshold: float = 0.4
    max_shape_residual: float | None = 0.5
    min_face_size: float = 12.0
    match_iou: float = 0.3
    tracking: bool = True
    smooth: bool = False
    smoothing: SmoothConfig = field(default_factory=SmoothConfig)
    flip_test: bool = False
    queue_size: int = 4

    def __post_init__(self) -> None:
        if self.model is not None:
            object.__setattr__(self, "model", os.fspath(self.model))
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.detector not in CHOICES:
            raise ValueError(f"detector must be one of {list(CHOICES)}, got {self.detector!r}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        for name in ("detect_every", "max_faces", "queue_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("min_detection_score", "lost_threshold", "match_iou"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if not float(self.min_face_size) >= 0:
            raise ValueError(f"min_face_size must be >= 0, got {self.min_face_size!r}")
        if self.max_shape_residual is not None and not float(self.max_shape_residual) > 0:
            raise ValueError(f"max_shape_residual must be > 0 or None, got {self.max_shape_residual!r}")


@dataclass(frozen=True)
class Face:
    """One face in one frame: a track `id` stable across frames, `box` (4,) the extent of
    its landmarks, `points` (68, 2) float64 0-based frame pixels, `point_scores` (68,)
    float32 heatmap peaks, `score` their mean."""

    id: int
    box: np.ndarray
    points: np.ndarray
    point_scores: np.ndarray
    score: float


@dataclass(frozen=True)
class FrameResult:
    """The faces of frame `index` (0-based) at `timestamp` seconds; `detected` tells whether
    the detector ran on this frame."""

    index: int
    timestamp: float
    faces: list[Face]
    detected: bool = False


@dataclass
class _Track:
    id: int
    points: np.ndarray  # (K, 2) raw (unsmoothed) points of the last frame
    scores: np.ndarray  # (K,)

    @property
    def box(self) -> np.ndarray:
        return points_box(self.points)


def _boxes(boxes) -> np.ndarray:
    """Any iterable of (4,) boxes as an (N, 4) float64 array (N may be 0)."""
    return np.array(list(boxes), np.float64).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(tracks: np.ndarray, dets: np.ndarray, min_iou: float) -> dict[int, int]:
    """Greedy one-to-one matching by IoU: {track index: detection index} for pairs with
    IoU >= min_iou, best pairs first."""
    if len(tracks) == 0 or len(dets) == 0:
        return {}
    iou = box_iou(tracks, dets)
    out: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i in out or j in used:
            continue
        out[i] = j
        used.add(j)
    return out


class Tracker:
    """Landmark tracker over frames; see the module docstring. `backend`, `detector` and
    `decode` may be given to replace the ones the config names (tests, GPU decoders)."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), backend: Backend | None = None,
                 detector: FaceDetector | None = None, decode: Decoder | None = None):
        self.config = config
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
        image = as_rgb(frame_rgb)
        cfg = self.config
        self._count += 1
        self._detected = False
        previous = self._tracks
        tracks = previous if cfg.tracking else []  # detector-only: faces from detections
        dets = self._detect(image) if self._detection_due() else None
        assigned = match_boxes(_boxes(t.box for t in tracks), _boxes(d.box for d in dets or []),
                               cfg.match_iou)
        taken = set(assigned.values())
        fresh = [d for j, d in enumerate(dets or []) if j not in taken]
        fresh = fresh[:max(cfg.max_faces - len(tracks), 0)]
        # ids for new faces: detector-only mode keeps the id of the face it overlaps
        reuse = match_boxes(_boxes(d.box for d in fresh), _boxes(t.box for t in previous),
                            cfg.match_iou) if not cfg.tracking else {}
        boxes = _boxes([t.box for t in tracks] + [d.box for d in fresh])
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
            covered = match_boxes(_boxes(d.box for d in dets), _boxes(t.box for t in alive), iou)
            candidates = [d for j, d in enumerate(dets) if j not in covered]
            by_lost = match_boxes(_boxes(t.box for t, _ in lost), _boxes(d.box for d in candidates), iou)
            retry = [(lost[i][0].id, candidates[j]) for i, j in by_lost.items()]
            used = set(by_lost.values())
            retry += [(None, d) for j, d in enumerate(candidates) if j not in used]
        else:
            retry = [(t.id, d) for t, d in lost if d is not None]
        retry = retry[:max(self.config.max_faces - len(alive), 0)]
        if not retry:
            return []
        points, scores = self.aligner.align(image, _boxes(d.box for _, d in retry))
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
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()


__all__ = ["Face", "FrameResult", "Tracker", "TrackerConfig", "box_iou", "match_boxes"]
