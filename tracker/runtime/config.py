"""`TrackerConfig`: everything that sets the tracker's behaviour, validated on creation."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from tracker.engines.registry import BACKENDS
from tracker.runtime.detect import CHOICES
from tracker.runtime.shots import THRESHOLD
from tracker.runtime.smooth import SmoothConfig


@dataclass(frozen=True)
class TrackerConfig:
    """Everything that sets the tracker's behaviour; validated on creation.

    model: model file (.onnx, or .pt for the torch backends); None = the bundled model.
    backend: "onnxruntime" | "torch" | "torch-cuda" | "tensorrt".
    threads: onnxruntime intra-op threads (None: its default).
    spin: onnxruntime's threads wait spinning between operators (`BackendOptions.spin`): on
        for a tracker that has the cores to itself, off where processes share them.
    detector: BlazeFace "both" (short and full range merged), "short" (faces within ~2 m),
        "full" (small faces) or "auto" (full where short finds nothing).
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
    reanchor_iou: a matched detection whose box overlaps its track's prediction less than this
        re-anchors the track (its crop comes from the detection this frame).
    max_unconfirmed: a track that no detection confirms on this many detection frames in a
        row is dropped at the next one (on a cut: at once).
    max_overlap: of two faces whose landmark boxes overlap by more than this share of the
        smaller box, the younger is dropped (no face is output twice, or on top of another).
    cut_threshold: thumbnail difference above which a frame is a shot change (see
        `tracker.runtime.shots`; None: no shot test).
    rotate: crops turned to the face's eye line (False: upright crops, as trained).
    turned_faces: faces lying sideways or upside down are found too (with `rotate`;
        `tracker.runtime.turned`): the detections of cuts and of the schedule also search the
        frame turned by quarter turns (those where faces were last found turned, every one
        when nothing is found upright; BlazeFace misses most faces rolled past 90 degrees),
        and a new face that scores under 0.85 is tried with its crop turned about its eyes.
        Costs nothing while faces are found upright, three more detections on such a frame
        without any face.
    motion_deadzone: a track's crop moves on by its last motion less this share of its side
        (`Region.predicted`): 0.05 keeps still faces as steady as no prediction (jitter 0.0068
        against 0.0152 with the full motion, on the sample clip) and follows fast motion.
    tracking: crop from the previous landmarks; False = every frame from fresh detections.
    smooth: One-Euro filter on the output points (off for evaluation), with `smoothing`.
    refine: passes that re-crop a face from its own landmarks when its crop came from a
        detection (a new face, a cut, a re-anchored track), before it is output: the
        detector's box only approximates the landmark-extent crop the model was trained on,
        which every tracked frame already gets from the previous landmarks. Each pass is one
        more inference for such faces only; 0 = the detection's crop as it is.
    flip_test: also infer each face mirrored and average (twice the inference; on HELEN test
        with rt-m, 3.40 -> 3.35 % mean NME with its own detector).
    queue_size: bounded queue length between the pipeline's threads of a file run (a live
        run's queues hold one item each: the newest frame wins).
    """

    model: str | None = None
    backend: str = "onnxruntime"
    threads: int | None = None
    spin: bool = True
    detector: str = "both"
    detect_every: int = 10
    max_faces: int = 4
    min_detection_score: float = 0.5
    lost_threshold: float = 0.4
    max_shape_residual: float | None = 0.5
    min_face_size: float = 12.0
    match_iou: float = 0.3
    reanchor_iou: float = 0.5
    max_unconfirmed: int = 2
    max_overlap: float = 0.2
    cut_threshold: float | None = THRESHOLD
    rotate: bool = True
    turned_faces: bool = True
    motion_deadzone: float = 0.05
    tracking: bool = True
    smooth: bool = False
    smoothing: SmoothConfig = field(default_factory=SmoothConfig)
    refine: int = 1
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
        if isinstance(self.refine, bool) or not isinstance(self.refine, (int, np.integer)) or self.refine < 0:
            raise ValueError(f"refine must be an integer >= 0, got {self.refine!r}")
        if isinstance(self.max_unconfirmed, bool) or not isinstance(self.max_unconfirmed, (int, np.integer)) \
                or self.max_unconfirmed < 0:
            raise ValueError(f"max_unconfirmed must be an integer >= 0, got {self.max_unconfirmed!r}")
        if self.cut_threshold is not None and not 0.0 < float(self.cut_threshold) <= 1.0:
            raise ValueError(f"cut_threshold must be in (0, 1] or None, got {self.cut_threshold!r}")
        if not float(self.motion_deadzone) >= 0:
            raise ValueError(f"motion_deadzone must be >= 0, got {self.motion_deadzone!r}")
        for name in ("min_detection_score", "lost_threshold", "match_iou", "reanchor_iou", "max_overlap"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if not float(self.min_face_size) >= 0:
            raise ValueError(f"min_face_size must be >= 0, got {self.min_face_size!r}")
        if self.max_shape_residual is not None and not float(self.max_shape_residual) > 0:
            raise ValueError(f"max_shape_residual must be > 0 or None, got {self.max_shape_residual!r}")
