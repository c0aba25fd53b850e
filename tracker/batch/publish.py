"""A video's result folder: written beside, then renamed into place with its marker.

    OUT/a/clip/                 the result folder (see `tracker.batch.inputs`)
        landmarks.jsonl ...     the outputs (`tracker.batch.config.Outputs`)
        DONE.json               the completion marker: hashes, counts, timings
    OUT/a/clip/FAILED.json      instead, for a video that failed: the error and the hashes
    OUT/a/.clip.tmp-XXXX/       a result being written (removed when its writer fails)

A result folder appears whole, with its marker, by one rename (`publish`); a folder being
written is hidden and named `.NAME.tmp-*`, so a crash leaves at most such a folder, which the
next attempt at the same video removes (`remove_leftovers`) before it starts. A folder at a
result's place without a marker is not the batch's: it is never replaced.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

DONE, FAILED = "DONE.json", "FAILED.json"


class ResultFolderError(RuntimeError):
    """A result's place is taken by a folder the batch did not write."""


def temp_folder(final: Path) -> Path:
    """A new empty folder beside `final`, `.NAME.tmp-HOST-PID-XXXX`, for its result to be
    written into."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{socket.gethostname()}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{tag}", dir=final.parent))


def leftovers(final: Path) -> list[Path]:
    """Folders that earlier attempts at `final` left behind (being written, or moved aside)."""
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return []
    heads = (f".{final.name}.tmp-", f".{final.name}.old-")
    return sorted(p for p in entries if p.name.startswith(heads))


def remove_leftovers(final: Path) -> int:
    """Remove what `leftovers` finds; how many were removed."""
    found = leftovers(final)
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return len(found)


def read_marker(final: Path) -> tuple[str, dict] | None:
    """("done", marker) or ("failed", marker) for a result folder, None when there is none (or
    the marker cannot be read, as if there were none)."""
    for status, name in (("done", DONE), ("failed", FAILED)):
        path = final / name
        if path.is_file():
            try:
                return status, json.loads(path.read_text())
            except (OSError, ValueError):
                return None
    return None


def check_place(final: Path) -> None:
    if final.exists() and read_marker(final) is None:
        raise ResultFolderError(f"{final}: a folder that is not a batch result is in the way "
                                f"(no {DONE} or {FAILED} in it); move it away")


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync_files(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def publish(tmp: Path, final: Path, marker: dict, name: str = DONE) -> None:
    """Write `marker` into `tmp` as `name`, then put `tmp` in `final`'s place by a rename (an
    earlier result there, which must carry a marker, is moved aside and removed)."""
    check_place(final)
    _fsync_files(tmp)
    _write_json(tmp / name, marker)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, old / "result")
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_failure(final: Path, marker: dict) -> None:
    """Record a failed video: a result folder holding only `FAILED.json`."""
    tmp = temp_folder(final)
    try:
        publish(tmp, final, marker, FAILED)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_landmarks(path: str | os.PathLike) -> Iterator[tuple[int, float, list[np.ndarray]]]:
    """(0-based frame index, timestamp, [(68, 2) float64 points per face]) from a result's
    landmarks.jsonl (0-based pixel centres, as `tracker.runtime.sinks.JsonlSink` writes)."""
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            yield d["index"], d["timestamp"], [np.asarray(face["points"], np.float64)
                                               for face in d["faces"]]
