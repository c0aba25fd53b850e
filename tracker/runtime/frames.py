"""What sources yield: `Frame`s, and the `Source` base with its error type.

Every source yields `Frame`s: the frame index (0-based; a video's frames are numbered from
their timestamps where the rate is constant, so an undecodable frame leaves a gap, see
`tracker.runtime.video_source`), a timestamp in seconds and the image as a C-contiguous
(H, W, 3) uint8 RGB array (`tracker.core.images.to_rgb` is applied where frames enter). A
frame that cannot be decoded or read is skipped and counted (`source.skipped`, one message
per frame); a source that cannot be opened at all raises `SourceError`, whose message names
the file or device and the problem. A video decoder's frames may come as their YUV planes
(`tracker.core.yuv.YUV420`, `Frame.pixels`): the tracker cuts its crops from the planes, and
`Frame.image` converts the whole frame only when something asks for it (the overlay).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from tracker.core.yuv import YUV420, rgb_of


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it and the problem."""


class SourceLost(SourceError):
    """A live source that delivered frames, stopped, and could not be reopened (a camera
    unplugged mid-run); the frames before it were delivered."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` 0-based (strictly increasing; gaps where a frame was lost),
    `timestamp` in seconds, `pixels` an (H, W, 3) uint8 RGB C-contiguous array or a `YUV420`
    frame, `name` the file stem for image folders."""

    index: int
    timestamp: float
    pixels: np.ndarray | YUV420
    name: str | None = None

    @property
    def image(self) -> np.ndarray:
        """The frame as (H, W, 3) uint8 RGB (YUV planes converted once, on first use)."""
        return rgb_of(self.pixels)


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


def reason(e: BaseException | None) -> str:
    """A one-line reason from an (FFmpeg, OS, ...) error, without FFmpeg's log tail."""
    if e is None:
        return "unknown error"
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return msg.split("; last error log:")[0].strip()
