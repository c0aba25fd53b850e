"""Video files and streams decoded with PyAV.

Frames are numbered from the stream's timestamps when it has a constant frame rate (the
container's average rate equals its base rate) and timestamps: index = round((t - t_start) *
fps), kept strictly increasing, so a packet that cannot be decoded leaves a gap instead of
shifting every later frame's number (a 300VW label stays on its frame). Otherwise (variable
rate, or no timestamps) frames are numbered in decoding order. A frame's timestamp is its
presentation time in seconds since the stream's start (`FrameNumbers`). Frames decoded as
8-bit 4:2:0 of even size in BT.601 or BT.709 (nearly every H.264 and HEVC file) come as their
planes (`tracker.core.yuv.YUV420`), with PyAV's own RGB conversion for whoever needs the whole
frame; any other format is converted to RGB here. Frames come as players show them: a file
whose display matrix turns its frames (phones store portrait video sideways and say so there)
has them turned here, to the nearest quarter turn, so landmarks and the overlay are in the
upright frame's pixels.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from tracker.core.geometry import quarter_of
from tracker.core.images import to_rgb
from tracker.core.yuv import BT601, BT709, YUV420
from tracker.runtime.frames import Frame, Source, SourceError, reason

log = logging.getLogger("tracker")

#: Decoding stops after this many consecutive undecodable packets (a corrupt tail).
MAX_CONSECUTIVE_ERRORS = 25
#: FFmpeg's colour spaces (AVColorSpace) that YUV420 converts as swscale does: BT.709 (1),
#: unspecified (2: swscale's default, BT.601), BT.470BG and SMPTE 170M (5, 6: BT.601).
COLOURS = {1: BT709, 2: BT601, 5: BT601, 6: BT601}


def pixels_of(vf):
    """A PyAV VideoFrame -> its YUV420 planes (see the module doc) or an RGB array, turned as
    its display matrix says (PyAV's `rotation`, 0 without one)."""
    turns = quarter_of(vf.rotation)
    colour = COLOURS.get(vf.colorspace)
    if (vf.format.name == "yuv420p" and colour is not None and vf.width % 2 == 0
            and vf.height % 2 == 0 and vf.color_range != 2):  # 2: full range (JPEG)
        yuv = YUV420.from_i420(vf.to_ndarray(), colour, lambda: to_rgb(vf.to_ndarray(format="rgb24")))
        return yuv.turned(turns)
    rgb = to_rgb(vf.to_ndarray(format="rgb24"))
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class FrameNumbers:
    """Numbers and times of a stream's frames, in the order they are decoded: call it with
    each frame's presentation time in seconds (None when it has none) for (index, timestamp).

    `rate`: the constant frame rate, or None (variable rate: decoding order); `origin`: the
    stream's start time in seconds (None: the first frame's time); `fps`: the rate for
    frames without a time. Indices are strictly increasing; timestamps are seconds since
    `origin`.
    """

    def __init__(self, rate: float | None, origin: float | None, fps: float):
        self.rate, self.origin, self.fps = rate, origin, fps
        self.last = -1

    def __call__(self, time_s: float | None) -> tuple[int, float]:
        if time_s is None:
            self.last += 1
            return self.last, self.last / self.fps
        if self.origin is None:
            self.origin = time_s
        t = time_s - self.origin
        index = self.last + 1
        if self.rate:
            index = max(index, int(round(t * self.rate)))
        self.last = index
        return index, t


class VideoSource(Source):
    """Frames of a video file or stream URL decoded with PyAV (frame threading on)."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        import av

        self.path = str(path)
        local = "://" not in self.path
        if local:
            p = Path(self.path)
            if not p.exists():
                raise SourceError(f"{p}: no such file")
            if p.is_file() and p.stat().st_size == 0:
                raise SourceError(f"{p}: empty file (0 bytes)")
        try:
            self._container = av.open(self.path, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SourceError(f"{self.path}: not a readable video ({reason(e)}; truncated, "
                              f"corrupt or not a video file?)") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: no video stream in the file")
        self.stream = self._container.streams.video[0]
        ctx = self.stream.codec_context
        codec = getattr(ctx, "name", None)
        if ctx is None or not codec or codec == "none":
            self._container.close()
            raise SourceError(f"{self.path}: unsupported or damaged video stream (FFmpeg has no "
                              f"decoder for it)")
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate = rate if rate else None  # exact Fraction, for writing at the same rate
        self.fps = float(rate) if rate else 30.0
        avg, base = self.stream.average_rate, self.stream.base_rate
        #: frames numbered from their timestamps (else in decoding order); see the module doc
        self.constant_rate = bool(avg and base and abs(float(avg) / float(base) - 1) < 1e-3)
        self.codec = codec
        self.size_hw = (self.stream.height, self.stream.width)
        self.frames_declared = int(self.stream.frames or 0)
        self.has_audio = bool(self._container.streams.audio)
        self._lock = threading.Lock()  # held while demuxing and decoding: close() waits for it
        self._closed = False

    @property
    def description(self) -> str:
        h, w = self.size_hw
        return f"{self.path} ({self.codec} {w}x{h} @ {self.fps:.3g} fps)"

    def __iter__(self) -> Iterator[Frame]:
        import av

        start = self.stream.start_time
        tb = self.stream.time_base
        numbers = FrameNumbers(self.fps if self.constant_rate else None,
                               float(start * tb) if start is not None and tb else None, self.fps)
        count = errors = 0
        packets = self._container.demux(self.stream)
        while True:
            try:
                with self._lock:
                    if self._closed:
                        return
                    packet = next(packets)
                    decoded = packet.decode()
            except StopIteration:
                break
            except (av.error.FFmpegError, ValueError) as e:
                if isinstance(e, av.error.EOFError):
                    break
                errors += 1
                self.skipped.append(f"{self.path}: undecodable data after frame {numbers.last} "
                                    f"({reason(e)})")
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    self.skipped.append(f"{self.path}: gave up after {errors} consecutive "
                                        f"decoding errors (truncated or corrupt file)")
                    break
                continue
            errors = 0
            for vf in decoded:
                index, t = numbers(float(vf.time) if vf.time is not None else None)
                try:
                    pixels = pixels_of(vf)
                except (ValueError, av.error.FFmpegError) as e:
                    self.skipped.append(f"{self.path}: frame {index} unusable ({reason(e)})")
                    continue
                yield Frame(index, t, pixels)
                count += 1
        if self.frames_declared and count < self.frames_declared:
            self.skipped.append(f"{self.path}: the file declares {self.frames_declared} frames, "
                                f"only {count} could be decoded (truncated or damaged file?)")

    def close(self, timeout: float = 5.0) -> None:
        """Close the file once a decode in progress has returned (safe to call twice); one
        still running after `timeout` seconds is logged and the file left open to it."""
        self._closed = True
        if not self._lock.acquire(timeout=timeout):
            log.warning("%s: still decoding %.1f s after the stop; not closed under it", self.path,
                        timeout)
            return
        try:
            self._container.close()
        finally:
            self._lock.release()
