"""Face detection with mediapipe's bundled BlazeFace, boxes mapped to the landmark-extent
convention that the landmark model was trained with.

BlazeFace's box is not the extent of the 68 landmarks: it sits higher (it covers the brows and
forehead but not the chin) and is narrower or wider depending on the face. `BoxMapping` moves
its centre by a fraction of its size and rescales it, per axis; the constants in `CALIBRATION`
were fitted by `scripts/calibrate_detector.py` on the human-labelled 300-W training faces
(lfpw_trainset, helen_trainset, afw) and are the medians of the per-face ratios.

Boxes are (x0, y0, x1, y1) float in pixel-centre coordinates (see `tracker.core.geometry`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.core.yuv import YUV420

MODELS = {"short": 0, "full": 1}  # mediapipe's model_selection: short range (< 2 m), full range
#: auto: short range, full range where short finds nothing; both: short and full range on
#: every detection, merged (full range finds small faces beside large ones that short misses)
CHOICES = ("short", "full", "auto", "both")
#: Of a short- and a full-range box overlapping by this IoU, the short one is kept (its box
#: mapping is the more accurate: see CALIBRATION).
MERGE_IOU = 0.3
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear", "left_ear")
#: A cut (a photo, a new shot) whose longer side is at least TILE_FROM pixels is also searched
#: tile by tile (`with_tiles`): BlazeFace sees the whole frame at 128 or 192 pixels, where a
#: face under about 3 % of the longer side vanishes (`scripts/footage_study.py`: of the 11
#: faces of its photos, each in a 4000 x 3000 frame, 7 missed without tiles, 1 with). Tiles of
#: TILE pixels overlap by a quarter of their side.
TILE_FROM, TILE = 2000, 1600
#: A YUV420 frame whose longer side is at least this is detected on at half size: BlazeFace
#: fits the longer side into 128 (short) or 192 (full range) pixels, so half of 384 loses
#: nothing the model would see.
HALF_SIZE_FROM = 384


@dataclass(frozen=True)
class BoxMapping:
    """Landmark-extent box from a detector box: centre moved by (dx * w, dy * h), size scaled by
    (sx, sy), where (w, h) is the detector box's size."""

    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) detector boxes -> (N, 4) landmark-extent boxes."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        cx = (b[:, 0] + b[:, 2]) / 2 + self.dx * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * h
        hw, hh = self.sx * w / 2, self.sy * h / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], -1)

    @classmethod
    def fit(cls, det_boxes: np.ndarray, target_boxes: np.ndarray) -> "BoxMapping":
        """Median per-axis offsets and size ratios from (N, 4) detector boxes to (N, 4)
        landmark-extent boxes (medians: robust to the odd mismatched detection)."""
        d = np.asarray(det_boxes, np.float64).reshape(-1, 4)
        t = np.asarray(target_boxes, np.float64).reshape(-1, 4)
        if len(d) == 0 or len(d) != len(t):
            raise ValueError(f"BoxMapping.fit: need as many detector as target boxes, got "
                             f"{len(d)} and {len(t)}")
        dw, dh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
        tw, th = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        dx = ((t[:, 0] + t[:, 2]) - (d[:, 0] + d[:, 2])) / 2 / dw
        dy = ((t[:, 1] + t[:, 3]) - (d[:, 1] + d[:, 3])) / 2 / dh
        return cls(float(np.median(dx)), float(np.median(dy)), float(np.median(tw / dw)),
                   float(np.median(th / dh)))


#: Fitted by scripts/calibrate_detector.py on the 2,008 human-labelled 300-W training faces
#: (lfpw_trainset, helen_trainset, afw); residual (crop centre error / crop side error over the
#: side, medians): short 3.8 % / 4.8 %, full 7.5 % / 5.1 % (unmapped: 6.4 % / 5.9 % and
#: 14.0 % / 11.9 %). Detection rates there: short 100 %, full 89.8 %; on every 10th labelled
#: frame of the 80 clips: short 99.8 %, full 96.3 % (full finds the small full-body face of
#: lp_s13 that short misses, hence "auto"). See docs/results/detector_calibration.md.
CALIBRATION = {
    "short": BoxMapping(-0.0013, 0.0558, 0.9402, 0.9264),
    "full": BoxMapping(0.0025, 0.1019, 0.8757, 0.8588),
}


@dataclass(frozen=True)
class Detection:
    """A detected face: `box` (4,) in the landmark-extent convention, `score` in [0, 1],
    `keypoints` (6, 2) in pixels (order of `KEYPOINTS`), `raw_box` (4,) BlazeFace's own box;
    `turn`: the counter-clockwise quarter turns of the frame it was found on (0: as it is)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    raw_box: np.ndarray
    turn: int = 0

    def moved(self, dx: float, dy: float) -> "Detection":
        """This detection shifted by (dx, dy) pixels (from a tile into its frame)."""
        d = np.array([dx, dy, dx, dy])
        return Detection(self.box + d, self.score, self.keypoints + d[:2], self.raw_box + d, self.turn)

    def found_turned(self, turns: int, size_hw: tuple[int, int]) -> "Detection":
        """This detection, made on a frame of `size_hw` turned by `turns` quarter turns
        (`np.rot90`), in the frame's own pixels: boxes stay the face's extent (a quarter turn
        maps an axis-aligned box onto one), keypoints follow the face."""
        from tracker.core.geometry import apply, invert, quarter_turn

        back = invert(quarter_turn(turns, size_hw))

        def box(b: np.ndarray) -> np.ndarray:
            c = apply(back, np.asarray(b, np.float64).reshape(2, 2))
            return np.concatenate([c.min(0), c.max(0)])

        return Detection(box(self.box), self.score, apply(back, self.keypoints), box(self.raw_box),
                         turns % 4)


class FaceDetector:
    """BlazeFace (mediapipe's face_detection solution). `model` is "short" (faces within
    about 2 m, the default: it detects best on the calibration data), "full" (small, distant
    faces) or "auto" (short, then full on frames where short finds nothing). `mapping`
    overrides the calibrated box mapping (the calibration script uses the identity)."""

    def __init__(self, model: str = "short", min_score: float = 0.5,
                 mapping: BoxMapping | None = None):
        if model not in CHOICES:
            raise ValueError(f"unknown detector model {model!r}; expected one of {list(CHOICES)}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        import mediapipe as mp

        self.model = model
        self.min_score = float(min_score)
        names = ("short", "full") if model in ("auto", "both") else (model,)
        self._stages = [(mp.solutions.face_detection.FaceDetection(
            model_selection=MODELS[n], min_detection_confidence=self.min_score),
            CALIBRATION[n] if mapping is None else mapping) for n in names]

    def detect(self, image_rgb: np.ndarray | YUV420, only: str | None = None) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image or a decoder's YUV420 frame (detected on at
        half size when large: `HALF_SIZE_FROM`), highest score first, in frame pixels.
        `only` ("short" or "full") runs just that one of the "both" detector's models."""
        size_hw = image_rgb.shape[:2]
        if isinstance(image_rgb, YUV420):
            image_rgb = image_rgb.half_rgb() if max(size_hw) >= HALF_SIZE_FROM else image_rgb.rgb()
        image_rgb = np.ascontiguousarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"detect: expected an (H, W, 3) uint8 RGB image, got "
                             f"{image_rgb.shape} {image_rgb.dtype}")
        if only is not None and self.model == "both":
            solution, mapping = self._stages[("short", "full").index(only)]
            return self._run(solution, mapping, image_rgb, size_hw)
        if self.model == "both":
            return _merge(*(self._run(s, m, image_rgb, size_hw) for s, m in self._stages))
        for solution, mapping in self._stages:
            found = self._run(solution, mapping, image_rgb, size_hw)
            if found:
                return found
        return []

    @staticmethod
    def _run(solution, mapping: BoxMapping, image_rgb: np.ndarray,
             size_hw: tuple[int, int]) -> list[Detection]:
        """One model on `image_rgb`, a frame of `size_hw` (or that frame scaled)."""
        h, w = size_hw
        result = solution.process(image_rgb)
        out = []
        for det in result.detections or []:
            ld = det.location_data
            bb = ld.relative_bounding_box
            # relative coordinates are fractions of the image's extent [-0.5, W - 0.5]
            raw = np.array([bb.xmin * w - 0.5, bb.ymin * h - 0.5,
                            (bb.xmin + bb.width) * w - 0.5, (bb.ymin + bb.height) * h - 0.5])
            if raw[2] <= raw[0] or raw[3] <= raw[1]:
                continue
            kp = np.array([[k.x * w - 0.5, k.y * h - 0.5] for k in ld.relative_keypoints],
                          np.float64).reshape(-1, 2)
            score = float(det.score[0]) if det.score else 0.0
            out.append(Detection(mapping.apply(raw)[0], score, kp, raw))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        for solution, _ in self._stages:
            solution.close()
        self._stages = []

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _merge(first: list[Detection], second: list[Detection]) -> list[Detection]:
    """`first`'s detections, and `second`'s that overlap none of them (IoU < MERGE_IOU);
    highest score first."""
    from tracker.runtime.association import box_iou

    if first and second:
        iou = box_iou(np.stack([d.raw_box for d in second]), np.stack([d.raw_box for d in first]))
        second = [d for d, row in zip(second, iou) if row.max() < MERGE_IOU]
    return sorted(first + second, key=lambda d: -d.score)


def strongest(detections: list[Detection]) -> list[Detection]:
    """One detection per face: of detections that overlap (IoU of BlazeFace's boxes at least
    MERGE_IOU: the same face found on the frame turned different ways), the highest scoring;
    highest score first."""
    from tracker.runtime.association import box_iou

    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        if not kept or box_iou(d.raw_box, np.stack([k.raw_box for k in kept])).max() < MERGE_IOU:
            kept.append(d)
    return kept


def tile_origins(length: int, tile: int = TILE) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `length`, overlapping by a quarter of
    a tile, the last flush with the end."""
    if length <= tile:
        return [0]
    step = tile * 3 // 4
    return sorted({*range(0, length - tile, step), length - tile})


def with_tiles(detector, image, only: str | None, found: list[Detection]) -> list[Detection]:
    """`found` (the detector's faces on the whole of `image`, RGB or YUV420) and those it
    finds tile by tile when the frame is large (TILE_FROM): one detection per face, the most
    confident."""
    h, w = image.shape[:2]
    if max(h, w) < TILE_FROM:
        return found
    rgb = image.rgb() if isinstance(image, YUV420) else image
    for y in tile_origins(h):
        for x in tile_origins(w):
            tile = np.ascontiguousarray(rgb[y:y + TILE, x:x + TILE])
            part = detector.detect(tile, only) if only else detector.detect(tile)
            found = found + [d.moved(x, y) for d in part]
    return strongest(found)
