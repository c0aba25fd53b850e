"""Webcams (OpenCV VideoCapture) as a live source of frames."""
from __future__ import annotations

import time
from typing import Iterator

from tracker.core.images import to_rgb
from tracker.runtime.frames import Frame, Source, SourceError


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
                image = to_rgb(img, bgr=True)
            except ValueError as e:
                self.skipped.append(f"camera {self.device}: frame {index} unusable ({e})")
                continue
            yield Frame(index, time.monotonic() - t0, image)
            index += 1

    def close(self) -> None:
        self._cap.release()
