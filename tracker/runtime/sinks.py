"""Where results go: an overlay video (PyAV, `tracker.runtime.video_sink`),
a live window (OpenCV), and landmark logs (300VW-style .pts per frame, CSV, JSONL).

Every sink has `write(frame, result, overlay)` (overlay: the (H, W, 3) uint8 RGB frame with
the landmarks drawn, or None when no sink needs one) and `close()`, which is safe to call
twice and leaves a complete file: the video is flushed and finalised (playable after an
interrupt), the logs are flushed after every frame.

Log coordinates: .pts files are 1-based (iBUG/300VW convention, via `tracker.core.pts`); CSV and
JSONL hold 0-based pixel centres as the rest of the project (see `tracker.core.geometry`).
CSV columns: index, timestamp, face, score, box_x0, box_y0, box_x1, box_y1, then x0, y0 ...
x67, y67; a frame without a face is one row with only index and timestamp. JSONL: one object
per frame, {"index", "timestamp", "detected", "faces": [{"id", "score", "box", "points",
"point_scores"}]}.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from tracker.core.pts import write_pts
from tracker.runtime.frames import Frame
from tracker.runtime.results import Face, FrameResult

log = logging.getLogger("tracker")


class SinkError(RuntimeError):
    """An output that cannot be written; the message names it and the problem."""


class StopRequested(Exception):
    """The user closed the live window (or pressed q / Esc): end the run normally."""


# -- drawing ---------------------------------------------------------------------------------
def draw_overlay(image_rgb: np.ndarray, faces: list[Face], copy: bool = True) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image with each face's box, id and 68 points drawn."""
    import cv2

    out = np.array(image_rgb, copy=True) if copy else np.ascontiguousarray(image_rgb)
    for f in faces:
        side = max(f.box[2] - f.box[0], f.box[3] - f.box[1])
        r = max(1, int(round(side / 120)))
        good = f.score >= 0.4
        colour = (60, 230, 60) if good else (240, 180, 40)
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (90, 160, 255), 1, cv2.LINE_AA)
        cv2.putText(out, f"{f.id} {f.score:.2f}", (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (90, 160, 255), 1, cv2.LINE_AA)
        for x, y in f.points:
            if np.isfinite(x) and np.isfinite(y):  # 4 fractional bits: sub-pixel positions
                cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), r * 16, colour, -1,
                           cv2.LINE_AA, shift=4)
    return out


# -- live window -----------------------------------------------------------------------------
def has_display() -> bool:
    """Whether a window can be opened (on Linux: an X11 or Wayland display is set)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink:
    """The overlay in an OpenCV window; q, Esc or closing the window ends the run
    (`StopRequested`)."""

    wants_overlay = True

    def __init__(self, title: str = "tracker"):
        import cv2

        if not has_display():
            raise SinkError("no display to open a window on (DISPLAY is not set); record with "
                            "-o/--csv/--jsonl and --no-window instead")
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise SinkError(f"cannot open a window ({e})") from None
        self._open = True

    def write(self, frame: Frame | None, result: FrameResult | None, overlay: np.ndarray) -> None:
        import cv2

        cv2.imshow(self.title, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        if key in (27, ord("q")) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("window closed")

    def close(self) -> None:
        import cv2

        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


# -- landmark logs ---------------------------------------------------------------------------
class PtsSink:
    """One 300VW-style .pts per frame and face in `folder`: `NNNNNN.pts` (1-based frame number,
    or the image's stem for image folders) for the face with the lowest id, `NNNNNN_<id>.pts`
    for the others. Frames without a face get no file (as in 300VW)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"{self.folder}: cannot create the .pts folder ({e.strerror})") from None
        if not os.access(self.folder, os.W_OK):
            raise SinkError(f"{self.folder}: folder is not writable")
        self.files = 0

    @staticmethod
    def stem(frame: Frame | None, result: FrameResult) -> str:
        if frame is not None and frame.name:
            return frame.name
        return f"{result.index + 1:06d}"

    def write(self, frame: Frame | None, result: FrameResult, overlay=None) -> None:
        stem = self.stem(frame, result)
        for rank, face in enumerate(sorted(result.faces, key=lambda f: f.id)):
            name = f"{stem}.pts" if rank == 0 else f"{stem}_{face.id}.pts"
            write_pts(self.folder / name, face.points)
            self.files += 1

    def close(self) -> None:
        pass


def _open_text(path: str | os.PathLike, what: str):
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", newline="")
    except OSError as e:
        raise SinkError(f"{path}: cannot write the {what} ({e.strerror or e})") from None


def csv_header(n_points: int = 68) -> list[str]:
    cols = ["index", "timestamp", "face", "score", "box_x0", "box_y0", "box_x1", "box_y1"]
    for k in range(n_points):
        cols += [f"x{k}", f"y{k}"]
    return cols


class CsvSink:
    """One row per face and frame (0-based pixel coordinates); see the module docstring."""

    def __init__(self, path: str | os.PathLike, n_points: int = 68):
        self.path = Path(path)
        self._file = _open_text(self.path, "CSV log")
        self._csv = csv.writer(self._file)
        self._csv.writerow(csv_header(n_points))
        self.rows = 0

    def write(self, frame: Frame | None, result: FrameResult, overlay=None) -> None:
        head = [result.index, f"{result.timestamp:.6f}"]
        if not result.faces:
            self._csv.writerow(head)
        for f in result.faces:
            self._csv.writerow(head + [f.id, f"{f.score:.4f}"] + [f"{v:.3f}" for v in f.box]
                               + [f"{v:.3f}" for v in np.asarray(f.points).reshape(-1)])
            self.rows += 1
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class JsonlSink:
    """One JSON object per frame (0-based pixel coordinates); see the module docstring."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = _open_text(self.path, "JSONL log")
        self.lines = 0

    def write(self, frame: Frame | None, result: FrameResult, overlay=None) -> None:
        faces = [{"id": f.id, "score": round(f.score, 4),
                  "box": [round(float(v), 3) for v in f.box],
                  "points": np.round(np.asarray(f.points, np.float64), 3).tolist(),
                  "point_scores": np.round(np.asarray(f.point_scores, np.float64), 4).tolist()}
                 for f in result.faces]
        self._file.write(json.dumps({"index": result.index, "timestamp": round(result.timestamp, 6),
                                     "detected": result.detected, "faces": faces}) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class Sinks:
    """Several sinks as one; `close` closes them all even if one fails (the first error is
    raised after)."""

    def __init__(self, sinks: list):
        self.sinks = list(sinks)

    @property
    def need_overlay(self) -> bool:
        """Whether a sink draws the overlay (its class says `wants_overlay = True`)."""
        return any(getattr(s, "wants_overlay", False) for s in self.sinks)

    def write(self, frame: Frame | None, result: FrameResult, overlay: np.ndarray | None) -> None:
        for s in self.sinks:
            s.write(frame, result, overlay)

    def close(self) -> None:
        error = None
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - close the rest, report the first
                error = error or e
        if error is not None:
            raise error

