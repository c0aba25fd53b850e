"""Where results go: an overlay video (PyAV), a live window (OpenCV), and landmark logs
(300VW-style .pts per frame, CSV, JSONL).

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
from fractions import Fraction
from pathlib import Path

import numpy as np

from tracker.core.pts import write_pts
from tracker.runtime.frames import Frame, reason
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


def letterbox(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit (H, W) keeping its aspect ratio, centred on black."""
    import cv2

    h, w = size_hw
    ih, iw = image.shape[:2]
    if (ih, iw) == (h, w):
        return image
    s = min(h / ih, w / iw)
    nh, nw = max(1, int(round(ih * s))), max(1, int(round(iw * s)))
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


# -- video -----------------------------------------------------------------------------------
#: Time base of the written video: each frame's time is its own timestamp to 1/60000 s (exact
#: for 24, 25, 30, 50, 60 and the NTSC 30000/1001 and 60000/1001 rates; within MPEG-4 Part
#: 2's 16-bit limit, for the mpeg4 fallback).
TIME_BASE = Fraction(1, 60000)
#: The least step between two frames' times (1 ms, as Matroska stores them), in TIME_BASE units.
MIN_STEP = 60


class VideoSink:
    """The overlay frames as a video, H.264 where the container takes it, each frame at its
    own time: `frame.timestamp` less `origin` (None: the first frame's timestamp), in
    `TIME_BASE` units, kept strictly increasing, so a variable frame rate or frames a live
    run dropped keep their real timing (frames written without a `Frame` follow one another
    at `rate`). `rate` (the input's) is the stream's nominal rate. The audio of `audio_from`
    is copied in (up to the end of the last written frame) when it has any. Odd sizes are
    padded to even; frames of another size than the first are letterboxed to it."""

    def __init__(self, path: str | os.PathLike, rate: float | Fraction = 30,
                 audio_from: str | os.PathLike | None = None, crf: int = 20,
                 origin: float | None = None):
        import av

        self.path = Path(path)
        self.rate = Fraction(rate).limit_denominator(1001000) if rate else Fraction(30)
        if self.rate <= 0:
            raise SinkError(f"{self.path}: frame rate must be positive, got {rate}")
        self.audio_from = str(audio_from) if audio_from else None
        self.crf = crf
        self.origin = origin
        self.frames = 0
        self._last_pts = -1
        self.audio_packets = 0
        self._stream = None
        self._audio_in = self._audio_out = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self.path), "w")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SinkError(f"{self.path}: cannot write a video here ({reason(e)}; use a .mp4, "
                            f".mkv, .mov or .avi name in a writable folder)") from None

    def _open(self, h: int, w: int) -> None:
        import av

        fmt = self._out.format.name
        names = ["libx264", "h264", "mpeg4"] if fmt in ("mp4", "mov,mp4,m4a,3gp,3g2,mj2", "mov",
                                                         "matroska", "avi") else []
        names.append(self._out.default_video_codec)
        last = None
        for name in names:
            try:
                s = self._out.add_stream(name, rate=self.rate)
                break
            except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError) as e:
                last = e
        else:
            raise SinkError(f"{self.path}: no video encoder for this container ({reason(last)})")
        s.width, s.height = w + w % 2, h + h % 2
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = TIME_BASE
        if s.codec_context.name == "libx264":
            s.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._stream = s
        self._size = (h, w)
        if self.audio_from:
            self._add_audio()

    def _add_audio(self) -> None:
        import av

        try:
            src = av.open(self.audio_from)
        except (av.error.FFmpegError, OSError) as e:
            log.warning("%s: audio not copied (%s)", self.audio_from, reason(e))
            return
        if not src.streams.audio:
            src.close()
            return
        try:
            self._audio_out = self._out.add_stream_from_template(src.streams.audio[0])
            self._audio_in = src
        except (av.error.FFmpegError, ValueError) as e:
            log.warning("%s: audio not copied into %s (%s)", self.audio_from, self.path.name,
                        reason(e))
            src.close()

    def write(self, frame: Frame | None, result: FrameResult | None, overlay: np.ndarray) -> None:
        import av

        if self._closed:
            raise SinkError(f"{self.path}: written after close")
        if self._stream is None:
            self._open(*overlay.shape[:2])
        img = letterbox(overlay, self._size)
        h, w = self._size
        if h % 2 or w % 2:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        vf.pts = self._pts(frame)
        vf.time_base = TIME_BASE
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self.frames += 1

    def _pts(self, frame: Frame | None) -> int:
        """The presentation time of the next frame in `TIME_BASE` units (strictly increasing,
        by `MIN_STEP` at least)."""
        if frame is None:
            pts = 0 if self._last_pts < 0 else self._last_pts + int(round(1 / (self.rate * TIME_BASE)))
        else:
            if self.origin is None:
                self.origin = float(frame.timestamp)
            pts = int(round((float(frame.timestamp) - self.origin) / TIME_BASE))
        self._last_pts = max(pts, 0 if self._last_pts < 0 else self._last_pts + MIN_STEP)
        return self._last_pts

    def _copy_audio(self) -> None:
        import av

        end = self._last_pts * TIME_BASE + 1 / self.rate  # the end of the last frame
        ain = self._audio_in
        try:
            for packet in ain.demux(ain.streams.audio[0]):
                if packet.dts is None:
                    continue
                if packet.pts is not None and packet.pts * packet.time_base >= end:
                    break
                packet.stream = self._audio_out
                self._out.mux(packet)
                self.audio_packets += 1
        except (av.error.FFmpegError, ValueError) as e:
            log.warning("%s: audio copy stopped early (%s)", self.audio_from, reason(e))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._out.mux(packet)
                if self._audio_in is not None:
                    self._copy_audio()
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
            self._out.close()
            if self.frames == 0:  # a header-only file is no video: leave none
                self.path.unlink(missing_ok=True)


# -- live window -----------------------------------------------------------------------------
def has_display() -> bool:
    """Whether a window can be opened (on Linux: an X11 or Wayland display is set)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink:
    """The overlay in an OpenCV window; q, Esc or closing the window ends the run
    (`StopRequested`)."""

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
        return any(isinstance(s, (VideoSink, WindowSink)) for s in self.sinks)

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

