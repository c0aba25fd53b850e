"""Frame sources: video files and streams (PyAV), webcams (OpenCV), folders of images.

Every source yields `Frame`s: the frame index (0-based, in decoding order), a timestamp in
seconds and the image as a C-contiguous (H, W, 3) uint8 RGB array. PyAV's `to_ndarray` returns
row-padded arrays for some widths (360, 590, 700, ...), and grey or RGBA images are common in
folders, so every image goes through `as_rgb` before it leaves a source.

A frame that cannot be decoded or read is skipped and counted (`source.skipped`, one message
per frame); a source that cannot be opened at all raises `SourceError`, whose message names the
file or device and the problem.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger("tracker")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Decoding stops after this many consecutive undecodable packets (a corrupt tail).
MAX_CONSECUTIVE_ERRORS = 25


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it and the problem."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` 0-based in decoding order, `timestamp` in seconds,
    `image` (H, W, 3) uint8 RGB C-contiguous, `name` the file stem for image folders."""

    index: int
    timestamp: float
    image: np.ndarray
    name: str | None = None


def as_rgb(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8/uint16 -> C-contiguous (H, W, 3) uint8 RGB.

    Raises ValueError for anything else (float images, wrong shapes, empty images)."""
    from tracker.core.datasets import DatasetError, to_rgb

    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    try:
        return to_rgb(image, bgr=bgr)
    except DatasetError as e:
        raise ValueError(str(e)) from None


class Source:
    """Base of the sources: iterate it for `Frame`s. `live` sources (cameras) may drop
    stale frames downstream; file sources never do. `skipped` holds one message per frame
    that could not be used."""

    def __init__(self) -> None:
        self.live = False
        self.fps = 30.0
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def description(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


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
            raise SourceError(f"{self.path}: not a readable video ({_reason(e)}; truncated, "
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
                packet = next(packets)
                decoded = packet.decode()
            except StopIteration:
                break
            except (av.error.FFmpegError, ValueError) as e:
                if isinstance(e, av.error.EOFError):
                    break
                errors += 1
                self.skipped.append(f"{self.path}: undecodable data after frame {index} "
                                    f"({_reason(e)})")
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    self.skipped.append(f"{self.path}: gave up after {errors} consecutive "
                                        f"decoding errors (truncated or corrupt file)")
                    break
                continue
            errors = 0
            for vf in decoded:
                try:
                    image = as_rgb(vf.to_ndarray(format="rgb24"))
                except (ValueError, av.error.FFmpegError) as e:
                    self.skipped.append(f"{self.path}: frame {index} unusable ({_reason(e)})")
                    index += 1
                    continue
                t = float(vf.time) if vf.time is not None else index / self.fps
                yield Frame(index, t, image)
                index += 1
        if self.frames_declared and index < self.frames_declared:
            self.skipped.append(f"{self.path}: the file declares {self.frames_declared} frames, "
                                f"only {index} could be decoded (truncated file?)")

    def close(self) -> None:
        self._container.close()


class ImageFolderSource(Source):
    """The images of a folder (sorted by name) or a single image file, as frames at `fps`."""

    def __init__(self, path: str | os.PathLike, fps: float = 30.0):
        super().__init__()
        self.path = Path(path)
        self.fps = float(fps)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir()
                                if p.suffix.lower() in IMAGE_EXTS and p.is_file())
            if not self.files:
                raise SourceError(f"{self.path}: folder has no images ({', '.join(IMAGE_EXTS)})")
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise SourceError(f"{self.path}: no such file or folder")

    @property
    def description(self) -> str:
        return f"{self.path} ({len(self.files)} image{'s' * (len(self.files) != 1)})"

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        for index, p in enumerate(self.files):
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None or img.size == 0:
                self.skipped.append(f"{p}: unreadable or empty image, skipped")
                continue
            try:
                image = as_rgb(img, bgr=True)
            except ValueError as e:
                self.skipped.append(f"{p}: {e}, skipped")
                continue
            yield Frame(index, index / self.fps, image, name=p.stem)


class CameraSource(Source):
    """Frames of a webcam (OpenCV VideoCapture); timestamps are seconds since opening."""

    def __init__(self, device: int = 0, size_hw: tuple[int, int] | None = None):
        super().__init__()
        import cv2

        self.live = True
        self.device = int(device)
        self._cap = cv2.VideoCapture(self.device)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {self.device}: no such camera, or it cannot be opened "
                              f"(is it connected and not in use?)")
        if size_hw is not None:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size_hw[0])
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size_hw[1])
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 30.0

    @property
    def description(self) -> str:
        return f"camera {self.device}"

    def __iter__(self) -> Iterator[Frame]:
        t0 = time.monotonic()
        index = 0
        failures = 0
        while True:
            ok, img = self._cap.read()
            if not ok or img is None:
                failures += 1
                if failures >= 10:
                    self.skipped.append(f"camera {self.device}: stopped delivering frames")
                    return
                time.sleep(0.01)
                continue
            failures = 0
            try:
                image = as_rgb(img, bgr=True)
            except ValueError as e:
                self.skipped.append(f"camera {self.device}: frame {index} unusable ({e})")
                continue
            yield Frame(index, time.monotonic() - t0, image)
            index += 1

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str | int | os.PathLike, fps: float | None = None) -> Source:
    """A source for a webcam index (int or digit string), an image folder or image file,
    or a video file / stream URL."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec))
    s = str(spec)
    p = Path(s)
    if p.is_dir() or (p.is_file() and p.suffix.lower() in IMAGE_EXTS):
        return ImageFolderSource(p, fps if fps else 30.0)
    return VideoSource(s)


def _reason(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return msg.split("; last error log:")[0].strip()
