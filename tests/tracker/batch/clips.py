"""Shared helpers for the batch tests: a small tree of real clips (cut from the fixture clip)
with a corrupt file among them, the CLI called in-process with the tiny model, and readers
of what a batch leaves in its output folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.tracker.runtime_fixtures import CLIP, clip_frames, tiny_model, write_video
from tracker.cli import main


def make_tree(root: Path) -> dict[str, Path]:
    """root/a/one.mp4 (the 72-frame clip, with audio), root/a/b/two.mp4 (24 frames),
    root/c/three.avi (16 frames, MPEG-4) and root/c/broken.mp4 (the clip cut in half: no
    index, nothing decodes)."""
    frames = clip_frames()
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    one = root / "a" / "one.mp4"
    shutil.copy(CLIP, one)
    two = write_video(root / "a" / "b" / "two.mp4", frames[24:48])
    three = write_video(root / "c" / "three.avi", frames[48:64], codec="mpeg4")
    broken = root / "c" / "broken.mp4"
    data = CLIP.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return {"one": one, "two": two, "three": three, "broken": broken}


def tracker_options() -> list[str]:
    return ["--model", str(tiny_model()), "--lost-threshold", "0", "--max-shape-residual", "0",
            "--threads", "1", "--quiet"]


def batch(*args) -> int:
    """`tracker batch ARGS` in-process, with the tiny model (ARGS may override it); the exit code."""
    return main(["batch", *tracker_options(), *map(str, args)])


def landmarks(out: Path) -> dict[str, str]:
    """{result folder relative to OUT: its landmarks.jsonl text} of every finished result."""
    return {p.parent.relative_to(out).as_posix(): p.read_text()
            for p in sorted(out.rglob("landmarks.jsonl")) if (p.parent / "DONE.json").is_file()}


def manifest(out: Path) -> list[dict]:
    return [json.loads(s) for s in (out / "manifest.jsonl").read_text().splitlines()]


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def temporaries(out: Path) -> list[Path]:
    """Folders being written or moved aside (there should be none after a batch)."""
    return [p for p in out.rglob(".*") if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name)]
