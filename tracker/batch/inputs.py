"""Which videos a batch processes, and where each one's results go.

Inputs are video files, folders (searched recursively for video files), glob patterns
(`clips/**/*.mp4`, expanded here so that quoting them works) and list files (`.txt`, `.lst`,
`.list`, or any file named with a leading `@`: one path per line, relative to the list
file's folder; blank lines and `#` comments ignored; entries may themselves be folders or
globs). Videos are found by extension (`VIDEO_EXTS`), deduplicated by resolved path, and
sorted.

Result folders mirror the input tree under the output folder, relative to the common root
of the videos: `root/a/clip.mp4` -> `OUT/a/clip/`. Two videos of the same stem in one folder
(`clip.mp4`, `clip.avi`) keep their extension apart: `OUT/a/clip_mp4/`, `OUT/a/clip_avi/`.
"""
from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path

VIDEO_EXTS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                        ".flv", ".ts", ".mts", ".3gp", ".ogv"})
LIST_EXTS = frozenset({".txt", ".lst", ".list"})
GLOB_CHARS = frozenset("*?[")


class InputError(ValueError):
    """An input that names nothing usable (no such path, a glob or folder without videos)."""


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS and not path.name.startswith(".")


def _videos_in(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in filenames if is_video(Path(f))]
    return out


def _expand(spec: str, base: Path | None, depth: int) -> list[Path]:
    """The videos one input names (`base`: the folder relative entries of a list file are in)."""
    if depth > 8:
        raise InputError(f"{spec}: list files nested too deep (a list that includes itself?)")
    is_list = spec.startswith("@")
    path = Path(spec[1:] if is_list else spec).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not is_list and GLOB_CHARS & set(str(path)) and not path.exists():
        found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
        videos = [v for p in found for v in (_videos_in(p) if p.is_dir() else [p] if is_video(p) else [])]
        if not videos:
            raise InputError(f"{spec}: the pattern matches no video")
        return videos
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        videos = _videos_in(path)
        if not videos:
            raise InputError(f"{path}: no video files in this folder (extensions: "
                             f"{', '.join(sorted(VIDEO_EXTS))})")
        return videos
    if is_list or path.suffix.lower() in LIST_EXTS:
        return read_list(path, depth)
    return [path]  # a file: whatever its extension, the user named it


def read_list(path: Path, depth: int = 0) -> list[Path]:
    """The videos of a list file: one path (file, folder or glob) per line."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the list file ({e})") from None
    out: list[Path] = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out += _expand(entry, path.parent, depth + 1)
    return out


def find_videos(inputs: list[str | os.PathLike]) -> list[Path]:
    """Every video the inputs name, as absolute paths, deduplicated and sorted; raises
    InputError for an input that names nothing."""
    if not inputs:
        raise InputError("no input given")
    found: dict[Path, None] = {}
    for spec in inputs:
        for p in _expand(os.fspath(spec), None, 0):
            found.setdefault(Path(os.path.abspath(p)), None)
    return sorted(found)


def common_root(videos: list[Path]) -> Path:
    """The deepest folder that holds every video (the folder of a single video)."""
    if not videos:
        raise InputError("no videos")
    return Path(os.path.commonpath([str(v.parent) for v in videos]))


def result_folders(videos: list[Path], root: Path | None = None) -> dict[Path, Path]:
    """{video: its result folder, relative to the output folder}; see the module docstring."""
    root = common_root(videos) if root is None else root
    stems = Counter((v.parent, v.stem) for v in videos)
    out = {}
    for v in videos:
        rel = v.parent.relative_to(root)
        name = v.stem if stems[(v.parent, v.stem)] == 1 else f"{v.stem}_{v.suffix.lstrip('.').lower()}"
        out[v] = rel / name
    return out
