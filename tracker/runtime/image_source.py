"""Folders of images (or one image) as a source of frames."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from tracker.core.images import IMAGE_EXTS, read_rgb
from tracker.runtime.frames import Frame, Source, SourceError


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
        for index, p in enumerate(self.files):
            try:
                image = read_rgb(p)  # as viewers show it (EXIF orientation applied)
            except ValueError as e:
                self.skipped.append(f"{p}: {e}, skipped")
                continue
            yield Frame(index, index / self.fps, image, name=p.stem)
