"""Reading and writing iBUG .pts files.

A .pts file stores 1-based pixel coordinates (the top-left pixel's centre is (1, 1)); the
project works in 0-based pixel centres, so 1 is subtracted on reading and added on writing,
here and nowhere else.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class PtsError(ValueError):
    """A .pts file that cannot be read; the message names the file and the problem."""


def parse_pts(text: str, source: str = "<string>", n_points: int | None = None) -> np.ndarray:
    """Parse .pts text into (K, 2) float64 0-based points."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    declared = None
    body_start = 0
    for i, ln in enumerate(lines):
        if ln.startswith("version"):
            continue
        if ln.startswith("n_points"):
            try:
                declared = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise PtsError(f"{source}: bad n_points line {ln!r}") from None
            continue
        if ln == "{":
            body_start = i + 1
            break
        raise PtsError(f"{source}: expected a header ('version', 'n_points', '{{'), got {ln!r}")
    else:
        raise PtsError(f"{source}: no '{{' opening the point list (empty or truncated file)")
    try:
        end = lines.index("}", body_start)
    except ValueError:
        raise PtsError(f"{source}: no closing '}}' (truncated file)") from None
    pts = []
    for ln in lines[body_start:end]:
        parts = ln.split()
        if len(parts) != 2:
            raise PtsError(f"{source}: expected 'x y' per line, got {ln!r}")
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise PtsError(f"{source}: non-numeric point {ln!r}") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise PtsError(f"{source}: non-finite point {ln!r}")
        pts.append((x, y))
    if declared is not None and declared != len(pts):
        raise PtsError(f"{source}: header says {declared} points, file has {len(pts)}")
    if n_points is not None and len(pts) != n_points:
        raise PtsError(f"{source}: expected {n_points} points, got {len(pts)}")
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2) - 1.0


def read_pts(path: str | os.PathLike, n_points: int | None = 68) -> np.ndarray:
    """Read a .pts file into (K, 2) float64 0-based (x, y) points."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PtsError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise PtsError(f"{path}: not a text file") from None
    return parse_pts(text, str(path), n_points)


def format_pts(xy: np.ndarray) -> str:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"format_pts: expected (K, 2) points, got shape {xy.shape}")
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in xy)
    return f"version: 1\nn_points:  {len(xy)}\n{{\n{body}\n}}\n"


def write_pts(path: str | os.PathLike, xy: np.ndarray) -> None:
    """Write (K, 2) 0-based points as a 1-based .pts file (3 decimals)."""
    Path(path).write_text(format_pts(xy))
