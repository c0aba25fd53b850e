"""Webcams (OpenCV VideoCapture) as a live source of frames, with time budgets for reads that
fail and reopening of a camera that stops.

A camera's reads fail now and then (a USB hiccup, exposure changes), some cameras take seconds
to deliver their first frame, and a camera can be unplugged and plugged in again. So failures
are judged by time, never by count (`CameraConfig`):

- after opening (and after each reopening), the first frame may take `first_frame_s`;
- once frames flow, reads may fail for up to `stall_s` without consequence;
- past that the camera is released and reopened, up to `reopen_attempts` times within
  `reopen_s` seconds in all (each reopened camera again gets `first_frame_s`, within that
  budget); when no attempt delivers a frame, `SourceLost` ends the stream.

A camera that opens but never delivers a first frame raises `SourceError` (as one that does
not open). Timestamps are seconds since opening on one clock, so the gap of an outage shows
in them; indices count the frames delivered.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from tracker.core.images import to_rgb
from tracker.runtime.frames import Frame, Source, SourceError, SourceLost

log = logging.getLogger("tracker")

#: cv2.CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FPS (cv2 is imported only to open one)
PROP_WIDTH, PROP_HEIGHT, PROP_FPS = 3, 4, 5


@dataclass(frozen=True)
class CameraConfig:
    """Time budgets of a live camera, in seconds (see the module docstring).

    first_frame_s: wait for the first frame after opening or reopening.
    stall_s: reads may fail this long once frames flow; longer ends the stream (-> reopen).
    reopen_attempts: how many times a stopped camera is reopened (0: never).
    reopen_s: total time for reopening, attempts and their first frames included.
    retry_s: pause after a failed read.
    reopen_pause_s: pause before each reopen attempt (a device re-enumerating).
    """

    first_frame_s: float = 5.0
    stall_s: float = 2.0
    reopen_attempts: int = 3
    reopen_s: float = 10.0
    retry_s: float = 0.01
    reopen_pause_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("first_frame_s", "stall_s", "reopen_s", "retry_s", "reopen_pause_s"):
            v = getattr(self, name)
            if not float(v) >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {v!r}")
        if isinstance(self.reopen_attempts, bool) or int(self.reopen_attempts) != self.reopen_attempts \
                or self.reopen_attempts < 0:
            raise ValueError(f"reopen_attempts must be an integer >= 0, got {self.reopen_attempts!r}")


def _video_capture(device: int) -> Any:
    import cv2

    return cv2.VideoCapture(device)


class CameraSource(Source):
    """Frames of a webcam; see the module docstring. `open_capture(device)` makes the capture
    object (default `cv2.VideoCapture`: `isOpened()`, `read() -> (ok, BGR image)`, `set`,
    `get`, `release()`); `clock` and `sleep` default to `time.monotonic` and `time.sleep`
    (tests pass a fake camera and a fake clock). `reopened` counts successful reopenings."""

    def __init__(self, device: int = 0, size_hw: tuple[int, int] | None = None,
                 config: CameraConfig | None = None,
                 open_capture: Callable[[int], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__()
        self.live = True
        self.device = int(device)
        self.config = config if config is not None else CameraConfig()
        self.size_hw = size_hw
        self._open_capture = open_capture if open_capture is not None else _video_capture
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()  # held while reading, so close() never pulls the device away
        self._closed = False
        self.reopened = 0
        self._cap = self._open()
        if self._cap is None:
            raise SourceError(f"camera {self.device}: no such camera, or it cannot be opened "
                              f"(is it connected and not in use?)")
        fps = self._cap.get(PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._t0 = self._clock()

    def _open(self) -> Any | None:
        """A newly opened capture, or None when the device does not open."""
        cap = self._open_capture(self.device)
        if not cap.isOpened():
            cap.release()
            return None
        if self.size_hw is not None:
            cap.set(PROP_HEIGHT, self.size_hw[0])
            cap.set(PROP_WIDTH, self.size_hw[1])
        return cap

    @property
    def description(self) -> str:
        return f"camera {self.device}"

    def _read(self) -> np.ndarray | None:
        """One BGR image, or None when the read failed (or the source is closed)."""
        with self._lock:
            if self._closed or self._cap is None:
                return None
            ok, img = self._cap.read()
        return img if ok and img is not None else None

    def _wait_frame(self, budget_s: float) -> np.ndarray | None:
        """The first image read within `budget_s` seconds, else None."""
        start = self._clock()
        while not self._closed:
            img = self._read()
            if img is not None:
                return img
            if self._clock() - start >= budget_s:
                return None
            self._sleep(self.config.retry_s)
        return None

    def _reopen(self, index: int, gap_s: float) -> np.ndarray | None:
        """The first image of a reopened camera (None once closed); `SourceLost` when no
        attempt gives one."""
        cfg = self.config
        start = self._clock()
        tried, why = 0, "not tried (reopen_attempts is 0)"
        log.warning("camera %d: no frame for %.1f s after frame %d; reopening it", self.device,
                    gap_s, index)
        while tried < cfg.reopen_attempts and not self._closed:
            left = cfg.reopen_s - (self._clock() - start)
            if left <= 0:
                break
            tried += 1
            with self._lock:
                if self._cap is not None:
                    self._cap.release()
                    self._cap = None
            self._sleep(min(cfg.reopen_pause_s, left))
            try:
                cap = self._open()
            except Exception as e:  # noqa: BLE001 - a backend error is one failed attempt
                cap, why = None, f"opening failed ({e})"
            else:
                why = "the device does not open"
            if cap is None:
                continue
            with self._lock:
                self._cap = cap
            left = cfg.reopen_s - (self._clock() - start)
            img = self._wait_frame(min(cfg.first_frame_s, max(left, 0.0)))
            if img is not None:
                self.reopened += 1
                log.warning("camera %d: reopened (attempt %d), frames flow again", self.device, tried)
                return img
            why = "it opens but delivers no frame"
        if self._closed:
            return None
        raise SourceLost(f"camera {self.device}: the camera stopped delivering frames (none for "
                         f"{gap_s:.1f} s after frame {index}) and could not be reopened ({tried} "
                         f"attempt{'s' * (tried != 1)} in {self._clock() - start:.1f} s: {why}); "
                         f"was it unplugged?")

    def __iter__(self) -> Iterator[Frame]:
        cfg = self.config
        img = self._wait_frame(cfg.first_frame_s)
        if img is None:
            if self._closed:
                return
            raise SourceError(f"camera {self.device}: opened, but delivered no frame within "
                              f"{cfg.first_frame_s:g} s")
        index = 0
        last_ok = self._clock()
        while True:
            if img is not None:
                last_ok = self._clock()
                try:
                    image = to_rgb(img, bgr=True)
                except ValueError as e:
                    self.skipped.append(f"camera {self.device}: frame {index} unusable ({e})")
                else:
                    yield Frame(index, last_ok - self._t0, image)
                    index += 1
            if self._closed:
                return
            img = self._read()
            if img is None and not self._closed:
                gap = self._clock() - last_ok
                if gap > cfg.stall_s:
                    img = self._reopen(index, gap)
                else:
                    self._sleep(cfg.retry_s)

    def close(self, timeout: float = 5.0) -> None:
        """Release the camera once a read in progress has returned (safe to call twice); a
        read still blocked after `timeout` seconds is logged and the camera left to it."""
        self._closed = True
        if not self._lock.acquire(timeout=timeout):
            log.warning("camera %d: a read is still in progress %.1f s after the stop; the "
                        "camera is not released under it", self.device, timeout)
            return
        try:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
        finally:
            self._lock.release()
