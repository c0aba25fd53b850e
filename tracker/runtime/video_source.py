"""Video files and streams decoded with PyAV."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Iterator

from tracker.core.images import to_rgb
from tracker.runtime.frames import Frame, Source, SourceError, reason

log = logging.getLogger("tracker")

#: Decoding stops after this many consecutive undecodable packets (a corrupt tail).
MAX_CONSECUTIVE_ERRORS = 25


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

        index = 0
        errors = 0
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
                self.skipped.append(f"{self.path}: undecodable data after frame {index} "
                                    f"({reason(e)})")
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    self.skipped.append(f"{self.path}: gave up after {errors} consecutive "
                                        f"decoding errors (truncated or corrupt file)")
                    break
                continue
            errors = 0
            for vf in decoded:
                try:
                    image = to_rgb(vf.to_ndarray(format="rgb24"))
                except (ValueError, av.error.FFmpegError) as e:
                    self.skipped.append(f"{self.path}: frame {index} unusable ({reason(e)})")
                    index += 1
                    continue
                t = float(vf.time) if vf.time is not None else index / self.fps
                yield Frame(index, t, image)
                index += 1
        if self.frames_declared and index < self.frames_declared:
            self.skipped.append(f"{self.path}: the file declares {self.frames_declared} frames, "
                                f"only {index} could be decoded (truncated file?)")

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
