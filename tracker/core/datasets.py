"""Readers for face-landmark dataset layouts. Every reader yields `FaceRecord`s whose points are
0-based pixel centres (see `tracker.core.geometry`), converted from the files' 1-based .pts.

Layouts:
- image folder: `<stem>.<jpg|png>` with `<stem>.pts` (one face) or `<stem>_<k>.pts` (face k);
  300-W's folders (lfpw_trainset, helen_*, afw, ...) are this layout;
- 300VW: `<clip>/vid.mp4` (or `vid.avi`) with `<clip>/annot/NNNNNN.pts`, frames numbered from 1
  as PyAV decodes them, unlabelled frames simply have no file; or `<clip>/imgs/NNNNNN.jpg`;
- WFLW: the annotation list `list_98pt_rect_attr_*.txt`, 98 points (x y)*98, box, 6 attributes,
  image path relative to the images folder.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from tracker.core.images import IMAGE_EXTS, read_rgb, to_rgb
from tracker.core.pts import PtsError, read_pts


class DatasetError(ValueError):
    """A dataset file or folder that cannot be used; the message names it."""


@dataclass(frozen=True)
class FaceRecord:
    image: Path  # image file (or video file, with `frame` set)
    points: np.ndarray  # (K, 2) 0-based pixel centres
    frame: int | None = None  # 1-based frame number in a video
    group: str = ""  # identity unit for splits: source image, clip or person


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, as viewers (and labelling tools) show it
    (`tracker.core.images.read_rgb`); grey and RGBA images are converted."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such image file")
    try:
        return read_rgb(path)
    except ValueError as e:
        raise DatasetError(f"{path}: {e}") from None


def image_folder(root: str | os.PathLike, n_points: int = 68) -> Iterator[FaceRecord]:
    """Faces of a folder of images with .pts files (`<stem>.pts` or `<stem>_<k>.pts`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    images = {p.stem: p for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_EXTS}
    for pts in sorted(root.glob("*.pts")):
        stem = pts.stem
        img = images.get(stem)
        if img is None:
            m = re.fullmatch(r"(.+)_(\d+)", stem)
            img = images.get(m.group(1)) if m else None
        if img is None:
            raise DatasetError(f"{pts}: no image beside it ({stem}.jpg/png or its prefix)")
        yield FaceRecord(img, read_pts(pts, n_points), group=_group_of(img.stem))


def _group_of(stem: str) -> str:
    """Identity unit of an image: the source image for 300-W crops (`100032540_1` ->
    `100032540`), the person for LFW (`AJ_Cook_0001` -> `AJ_Cook`). LFPW numbers its source
    images `image_NNNN` (`image_0006_01` -> `image_0006`): there the number is the image."""
    if re.fullmatch(r"image_\d+", stem):
        return stem
    m = re.fullmatch(r"(.+?)_(\d+)", stem)
    return m.group(1) if m else stem


def faces_by_image(records: Iterable[FaceRecord]) -> dict[Path, list[np.ndarray]]:
    """The labelled faces of each image, in the records' order: {image: [(K, 2) float64 points]}."""
    out: dict[Path, list[np.ndarray]] = {}
    for r in records:
        out.setdefault(Path(r.image), []).append(np.asarray(r.points, np.float64))
    return out


def video_clip(clip_dir: str | os.PathLike, n_points: int = 68) -> tuple[Path, dict[int, np.ndarray]]:
    """A 300VW clip: its video file and {1-based frame number: (K, 2) points}."""
    clip_dir = Path(clip_dir)
    annot = clip_dir / "annot"
    if not annot.is_dir():
        raise DatasetError(f"{clip_dir}: no annot/ folder (300VW layout: vid.mp4 + annot/NNNNNN.pts)")
    video = next((clip_dir / f"vid{ext}" for ext in (".mp4", ".avi", ".mkv", ".mov")
                  if (clip_dir / f"vid{ext}").is_file()), None)
    if video is None and (clip_dir / "imgs").is_dir():
        video = clip_dir / "imgs"
    if video is None:
        raise DatasetError(f"{clip_dir}: no vid.mp4/vid.avi or imgs/ folder")
    labels = {}
    for p in sorted(annot.glob("*.pts")):
        if not p.stem.isdigit():
            raise DatasetError(f"{p}: 300VW annotation names are frame numbers (NNNNNN.pts)")
        labels[int(p.stem)] = read_pts(p, n_points)
    return video, labels


def videos_300vw(root: str | os.PathLike, n_points: int = 68) -> Iterator[FaceRecord]:
    """Every labelled frame of every clip folder under `root`."""
    root = Path(root)
    clips = sorted(p for p in root.iterdir() if (p / "annot").is_dir()) if root.is_dir() else []
    if not clips:
        raise DatasetError(f"{root}: no 300VW clip folders (with annot/) found")
    for clip in clips:
        video, labels = video_clip(clip, n_points)
        for f, xy in labels.items():
            yield FaceRecord(video, xy, frame=f, group=clip.name)


def wflw_list(list_file: str | os.PathLike, images_root: str | os.PathLike) -> Iterator[FaceRecord]:
    """WFLW annotation list: 196 coordinates, 4 box values, 6 attributes, image path per line.
    WFLW's coordinates are 0-based already."""
    list_file = Path(list_file)
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 196 + 4 + 6 + 1:
            raise DatasetError(f"{list_file}:{n}: expected 207 fields, got {len(parts)}")
        try:
            xy = np.asarray(parts[:196], dtype=np.float64).reshape(98, 2)
        except ValueError:
            raise DatasetError(f"{list_file}:{n}: non-numeric coordinates") from None
        img = Path(images_root) / parts[-1]
        yield FaceRecord(img, xy, group=_group_of(img.stem))


__all__ = ["DatasetError", "FaceRecord", "PtsError", "image_folder", "read_image", "to_rgb",
           "video_clip", "videos_300vw", "wflw_list"]
