"""Landmarks of the faces of one frame: crop -> normalise -> infer -> decode -> back-project.

Boxes are in the landmark-extent convention the model was trained with (the (x0, y0, x1, y1)
extent of the 68 points, see `tracker.core.geometry.landmarks_crop_transform`): each face is cropped
with `crop_transform(box, input_hw, info.crop_ratio)`, all faces of a frame go through the
backend as one batch, the heatmaps are decoded by the model's codec (or an injected `decode`,
e.g. a CUDA kernel with the same signature) and the points are mapped back to the frame with
the inverse crop transform. A backend that offers `decode_on_device(x, to_frame)` (torch-cuda,
tensorrt: the CUDA kernel decodes on the device and maps to the frame) does both steps itself.
Either way a model's per-point offsets (`ModelInfo.offsets`, `tracker.core.calibration`) are
then added in the frame.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from tracker.core.calibration import add_offsets
from tracker.core.geometry import apply, crop_transform, invert, points_box
from tracker.core.landmarks import SCHEMES
from tracker.core.yuv import YUV420, cut
from tracker.engines.backend import Backend

#: (B, K, h, w) heatmaps -> ((B, K, 2) points in network-input pixels, (B, K) peak values)
Decoder = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


class Aligner:
    """Landmark localisation of the faces of a frame with one backend call.

    `timings`, when given, is called as `timings(stage, seconds)` for the stages "crop",
    "infer", "decode" and "project".

    `flip_test` also runs each crop mirrored and averages its heatmaps, mirrored back and
    relabelled with the scheme's flip permutation, with the plain ones (test-time flip
    augmentation: twice the inference for a steadier estimate). Mirroring an input of width W
    maps input x to W - 1 - x and, with pixel centres on integers and a whole stride, heatmap
    x to w - 1 - x: the heatmap array's columns reversed, exactly."""

    def __init__(self, backend: Backend, decode: Decoder | None = None,
                 timings: Callable[[str, float], None] | None = None, flip_test: bool = False):
        self.backend = backend
        self.info = backend.info
        self.decode = decode if decode is not None else self.info.codec.decode
        self.timings = timings
        self.input_hw = tuple(self.info.model.input_hw)
        self.n_points = int(self.info.model.n_points)
        self.flip_test = bool(flip_test)
        self._flip = list(SCHEMES[self.info.scheme].flip)
        self._eyes = SCHEMES[self.info.scheme].outer_eye_corners
        self._offsets = self.info.point_offsets  # (K, 2) or None
        # a GPU backend's own decoder (the CUDA local soft-argmax kernel on the device output),
        # unless a decoder is given or the heatmaps must be averaged with their mirror first
        self._on_device = (decode is None and not self.flip_test
                           and callable(getattr(backend, "decode_on_device", None)))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) normalised crops -> (N, K, h, w) heatmaps (flip-averaged if asked)."""
        if not self.flip_test:
            return self.backend(x)
        n = len(x)
        hm = np.asarray(self.backend(np.concatenate([x, x[..., ::-1]])))  # a new, contiguous batch
        return 0.5 * (hm[:n] + hm[n:, self._flip, :, ::-1])

    def crop_transforms(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) landmark-extent boxes -> (N, 2, 3) frame-to-crop transforms."""
        return np.stack([crop_transform(b, self.input_hw, self.info.crop_ratio) for b in boxes])

    def align(self, image_rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of the faces in `boxes`.

        image_rgb: (H, W, 3) uint8; boxes: (N, 4) float (x0, y0, x1, y1), landmark extent.
        Returns (N, K, 2) float64 points in frame pixels and (N, K) float32 heatmap peaks.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            raise ValueError(f"align: empty or non-finite boxes {boxes[bad].tolist()}")
        m = self.crop_transforms(boxes) if len(boxes) else np.zeros((0, 2, 3))
        return self.align_crops(image_rgb, m)

    def align_crops(self, image_rgb: np.ndarray | YUV420, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of the faces that the (N, 2, 3) frame-to-crop transforms `m` cut out of
        `image_rgb` ((H, W, 3) uint8, or a decoder's YUV420 planes): (N, K, 2) float64 frame
        pixels, (N, K) float32 peaks."""
        if not isinstance(image_rgb, YUV420):
            image_rgb = np.asarray(image_rgb)
            if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
                raise ValueError(f"align: expected an (H, W, 3) uint8 RGB image, got "
                                 f"{image_rgb.shape} {image_rgb.dtype}")
        m = np.asarray(m, np.float64).reshape(-1, 2, 3)
        n, k = len(m), self.n_points
        if n == 0:
            return np.zeros((0, k, 2)), np.zeros((0, k), np.float32)
        t0 = time.perf_counter()
        crops = np.stack([cut(image_rgb, mi, self.input_hw) for mi in m])  # (N, H, W, 3)
        x = self.info.normalise(crops)  # (N, 3, H, W)
        t1 = time.perf_counter()
        to_frame = invert(m)
        if self._on_device:  # the backend decodes where its heatmaps lie: only points come back
            points, scores = self.backend.decode_on_device(x, to_frame=to_frame)  # frame pixels
            points = self._offset(np.asarray(points, np.float64), to_frame)
            if self.timings is not None:
                self.timings("crop", t1 - t0)
                self.timings("infer+decode", time.perf_counter() - t1)
            return points, np.asarray(scores, np.float32)
        heatmaps = self.infer(x)  # (N, K, h, w)
        t2 = time.perf_counter()
        xy, scores = self.decode(heatmaps)  # (N, K, 2) input pixels, (N, K)
        t3 = time.perf_counter()
        points = self._offset(apply(to_frame, xy), to_frame)  # (N, K, 2) frame pixels
        t4 = time.perf_counter()
        if self.timings is not None:
            self.timings("crop", t1 - t0)
            self.timings("infer", t2 - t1)
            self.timings("decode", t3 - t2)
            self.timings("project", t4 - t3)
        return points, np.asarray(scores, np.float32)

    def _offset(self, points: np.ndarray, to_frame: np.ndarray) -> np.ndarray:
        """Frame points plus the model's per-point offsets, if it has them."""
        if self._offsets is None:
            return points
        return add_offsets(points, self._offsets, self._eyes, to_frame)

    def align_from_points(self, image_rgb: np.ndarray,
                          prev_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracking: crop each face from the extent of its (K, 2) landmarks in the previous
        frame; prev_points (N, K, 2) -> as `align`."""
        prev = np.asarray(prev_points, np.float64).reshape(-1, self.n_points, 2)
        boxes = np.stack([points_box(p) for p in prev]) if len(prev) else np.zeros((0, 4))
        return self.align(image_rgb, boxes)
