"""Opening a source of frames by what the user named: a webcam index, an image folder or
image file, or a video file or stream URL. The sources: `tracker.runtime.video_source`,
`image_source`, `camera_source`; what they yield: `tracker.runtime.frames`."""
from __future__ import annotations

import os
from pathlib import Path

from tracker.core.images import IMAGE_EXTS
from tracker.runtime.camera_source import CameraSource
from tracker.runtime.frames import Source
from tracker.runtime.image_source import ImageFolderSource
from tracker.runtime.video_source import VideoSource


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
