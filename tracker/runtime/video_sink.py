"""The overlay video (PyAV), encoded in a thread of its own.

`VideoSink.write` only stamps the frame with its time and queues it (a bounded queue, so a
slow encoder slows the writer down rather than filling memory; no frame is ever dropped);
a thread converts it to YUV 4:2:0 (OpenCV, which releases the GIL), encodes and muxes it.
`close` waits for the queue to drain, flushes the encoder, copies the audio and finalises
the file. An error in the encoder thread is raised by the next `write` or by `close`.

H.264 settings (`X264`), measured with `scripts/bench_tracker.py` at 720x1280 on the 2-core
machine: see `docs/results/bench_tracker.md`.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from tracker.runtime.frames import Frame, reason
from tracker.runtime.sinks import SinkError

log = logging.getLogger("tracker")

#: Time base of the written video: each frame's time is its own timestamp to 1/60000 s (exact
#: for 24, 25, 30, 50, 60 and the NTSC 30000/1001 and 60000/1001 rates; within MPEG-4 Part
#: 2's 16-bit limit, for the mpeg4 fallback).
TIME_BASE = Fraction(1, 60000)
#: The least step between two frames' times (1 ms, as Matroska stores them), in TIME_BASE units.
MIN_STEP = 60
#: libx264 options, chosen with scripts/bench_tracker.py at 720x1280 on the 2-core machine
#: (under a training job): the encoder thread spent 14.0 ms per frame with "veryfast" (the
#: former setting), 10.6 with superfast + zerolatency and 7.3 with ultrafast + zerolatency
#: (no lookahead, no B-frames, sliced threads), for files of 0.57, 1.25 and 1.93 MB per 160
#: frames at crf 20 (about 3 Mbit/s: enough for an overlay to look at).
X264 = {"preset": "ultrafast", "tune": "zerolatency"}
#: Encoder threads: the pipeline's stages already share the 2 cores, and x264's default (1.5
#: per core) only adds contention.
ENCODER_THREADS = 2

_STOP = object()


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


class VideoSink:
    """The overlay frames as a video, H.264 where the container takes it, each frame at its
    own time: `frame.timestamp` less `origin` (None: the first frame's timestamp), in
    `TIME_BASE` units, kept strictly increasing, so a variable frame rate or frames a live
    run dropped keep their real timing (frames written without a `Frame` follow one another
    at `rate`). `rate` (the input's) is the stream's nominal rate. The audio of `audio_from`
    is copied in (up to the end of the last written frame) when it has any. Odd sizes are
    padded to even; frames of another size than the first are letterboxed to it. `options`
    are the libx264 options (default `X264`, with `crf`), `threads` the encoder's threads,
    `queue_size` the frames waiting for the encoder thread at most. The overlay arrays given
    to `write` must not be changed afterwards (the encoder reads them later)."""

    wants_overlay = True

    def __init__(self, path: str | os.PathLike, rate: float | Fraction = 30,
                 audio_from: str | os.PathLike | None = None, crf: int = 20,
                 origin: float | None = None, options: dict[str, str] | None = None,
                 threads: int = ENCODER_THREADS, queue_size: int = 8):
        import av

        self.path = Path(path)
        self.rate = Fraction(rate).limit_denominator(1001000) if rate else Fraction(30)
        if self.rate <= 0:
            raise SinkError(f"{self.path}: frame rate must be positive, got {rate}")
        self.audio_from = str(audio_from) if audio_from else None
        self.options = {**(X264 if options is None else options), "crf": str(crf)}
        self.threads = threads
        self.origin = origin
        self.frames = 0
        self.audio_packets = 0
        self.encode_s = 0.0  # seconds the encoder thread spent converting, encoding, muxing
        self._last_pts = -1
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._audio_in = self._audio_out = None
        self._closed = False
        self._error: BaseException | None = None  # the encoder thread's, until raised
        self._failure: BaseException | None = None  # the same, kept
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self.path), "w")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SinkError(f"{self.path}: cannot write a video here ({reason(e)}; use a .mp4, "
                              f".mkv, .mov or .avi name in a writable folder)") from None

    # -- the caller's thread -----------------------------------------------------------------
    def write(self, frame: Frame | None, result, overlay: np.ndarray) -> None:
        """Queue the (H, W, 3) uint8 RGB `overlay` at `frame`'s time (waits while the queue
        is full; raises what the encoder thread raised)."""
        if self._closed:
            raise SinkError(f"{self.path}: written after close")
        self._raise_error()
        if self._thread is None:
            self._size = tuple(overlay.shape[:2])
            self._thread = threading.Thread(target=self._encode_loop, name="tracker-encode",
                                            daemon=True)
            self._thread.start()
        item = (overlay, self._pts(frame))
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    self._raise_error()
                    raise SinkError(f"{self.path}: the encoder thread ended") from None
        self.frames += 1

    def _raise_error(self) -> None:
        """Raise the encoder thread's error (once: a later call does not raise it again)."""
        e, self._error = self._error, None
        if isinstance(e, SinkError):
            raise e
        if e is not None:
            raise SinkError(f"{self.path}: cannot encode the video ({reason(e)})") from e

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

    # -- the encoder thread ------------------------------------------------------------------
    def _encode_loop(self) -> None:
        try:
            self._open(*self._size)
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                t0 = time.perf_counter()
                self._encode(*item)
                self.encode_s += time.perf_counter() - t0
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
            self._error = self._failure = e
            while self._queue.get() is not _STOP:  # let close() and blocked writes through
                pass

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
        if self.threads:
            s.codec_context.thread_count = self.threads
        if s.codec_context.name == "libx264":
            s.options = dict(self.options)
        self._stream = s
        if self.audio_from:
            self._add_audio()

    def _encode(self, overlay: np.ndarray, pts: int) -> None:
        import av
        import cv2

        img = letterbox(overlay, self._size)
        h, w = self._size
        if h % 2 or w % 2:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        # BT.601 limited range, as swscale's default, at a third of its cost
        yuv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YUV_I420)
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts = pts
        vf.time_base = TIME_BASE
        for packet in self._stream.encode(vf):
            self._out.mux(packet)

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

    # -- closing -----------------------------------------------------------------------------
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
        """Encode what is queued, flush, copy the audio and finalise the file (safe to call
        twice); raises what the encoder thread raised, after closing the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join()
                self._raise_error()
            if self._stream is not None and self._failure is None:
                for packet in self._stream.encode():
                    self._out.mux(packet)
                if self._audio_in is not None:
                    self._copy_audio()
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
            self._out.close()
            if self.frames == 0 or self._stream is None:  # a header-only file is no video
                self.path.unlink(missing_ok=True)
