"""300VW videos: the tracker runs frame by frame on each clip exactly as deployed (its own
detector, its own detection schedule; the annotations never touch the cropping) and every
annotated frame is scored (`tracker.evaluation.scoring`).

Per-frame NME is normalised by the outer-eye-corner distance (points 37 and 46, 1-based), on
the 49 inner points of the 300VW protocol and on all 68; AUC and failure rate at 0.08 per video
and per category (the official 300VW test scenarios; other clips fall in "other"). Frames
without an annotation are unlabelled, neither scored nor failures; frames in 300VW's
broken_frames.npy are excluded and counted.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from tracker.core.datasets import video_clip
from tracker.evaluation.scoring import (
    CATEGORIES_300VW,
    OTHER,
    EvalError,
    FrameRow,
    aggregate_300vw,
    category_of,
    score_frame,
)

if TYPE_CHECKING:
    from tracker.runtime.frames import Frame


def clip_folders(root: str | os.PathLike, category: str = "all",
                 names: Sequence[str] | None = None) -> list[Path]:
    """300VW clip folders under `root` (or `root` itself when it is a clip, with annot/), sorted,
    restricted to a category ("A", "B", "C", "other" or "all") and to `names` if given."""
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"{root}: no such folder")
    clips = [root] if (root / "annot").is_dir() else sorted(
        p for p in root.iterdir() if p.is_dir() and (p / "annot").is_dir())
    if not clips:
        raise EvalError(f"{root}: no 300VW clip folders (clip/annot/NNNNNN.pts with vid.mp4, vid.avi "
                        f"or imgs/)")
    if category not in ("all", *CATEGORIES_300VW, OTHER):
        raise EvalError(f"unknown category {category!r}: A, B, C, other or all")
    if category != "all":
        clips = [c for c in clips if category_of(c.name) == category]
        if not clips:
            raise EvalError(f"{root}: no clip of category {category}")
    if names is not None:
        missing = sorted(set(names) - {c.name for c in clips})
        if missing:
            raise EvalError(f"{root}: no clip folder {', '.join(missing)}")
        clips = [c for c in clips if c.name in set(names)]
    return clips


def load_broken_frames(path: str | os.PathLike | None) -> dict[str, set[int]]:
    """300VW's broken_frames.npy ({clip: [1-based frames]}) as {clip: set}; {} for None."""
    if path is None:
        return {}
    try:
        d = np.load(path, allow_pickle=True).item()
        return {str(k): {int(f) for f in v} for k, v in d.items()}
    except (OSError, ValueError, AttributeError) as e:
        raise EvalError(f"{path}: not a broken-frames file ({{clip: [frames]}} in .npy): {e}") from None


def predict_clip(tracker, video: str | os.PathLike, last_frame: int, max_frames: int | None = None,
                 on_frame: Callable[[], None] | None = None) -> Iterator[tuple[int, list[np.ndarray], float]]:
    """Run a tracker (`reset()`, `process(frame_rgb, index, timestamp) -> result with .faces`)
    over a clip's frames (`numbered_frames`); yields (1-based frame number, [(K, 2) faces],
    seconds spent in `process`). Stops after `last_frame` (the last annotated one) or
    `max_frames` frames. Our `Tracker` takes the frames as decoded (YUV planes, as in
    `tracker track`); any other tracker gets RGB arrays."""
    from tracker.runtime.tracker import Tracker

    planes = isinstance(tracker, Tracker)
    tracker.reset()
    with contextlib.closing(numbered_frames(video, last_frame, max_frames)) as frames:
        for number, fr in frames:
            t0 = time.perf_counter()
            result = tracker.process(fr.pixels if planes else fr.image, index=fr.index,
                                     timestamp=fr.timestamp)
            dt = time.perf_counter() - t0
            if on_frame is not None:
                on_frame()
            yield number, [np.asarray(f.points, np.float64) for f in result.faces], dt


def numbered_frames(video: str | os.PathLike, last_frame: int,
                    max_frames: int | None = None) -> Iterator[tuple[int, Frame]]:
    """(1-based frame number, Frame) of a clip's video file or imgs/ folder from its first
    frame, up to `last_frame` or `max_frames` frames; the source is closed when the iteration
    ends or is closed. In an imgs/ folder the frame number is the file name (000006.jpg -> 6)."""
    from tracker.runtime.capture import open_source

    source = open_source(video)
    try:
        for n, fr in enumerate(source):
            number = int(fr.name) if fr.name is not None and fr.name.isdigit() else fr.index + 1
            if number > last_frame or (max_frames is not None and n >= max_frames):
                break
            yield number, fr
    finally:
        source.close()


def _frames_to_run(clip_dir: Path, labels: dict, max_frames: int | None) -> int:
    """How many frames `predict_clip` will decode (for the progress bar)."""
    last = max(labels, default=0)
    imgs = clip_dir / "imgs"
    n = last
    if not any((clip_dir / f"vid{e}").is_file() for e in (".mp4", ".avi", ".mkv", ".mov")) and imgs.is_dir():
        n = sum(1 for p in imgs.iterdir() if p.stem.isdigit() and int(p.stem) <= last)
    return min(n, max_frames) if max_frames is not None else n


def evaluate_300vw(root: str | os.PathLike, config=None, tracker=None, category: str = "all",
                   max_frames: int | None = None, broken_frames: str | os.PathLike | None = "auto",
                   progress: bool = True, clips: Sequence[str] | None = None,
                   predicted: Mapping[str, Iterable[tuple[int, list[np.ndarray]]]] | None = None) -> dict:
    """Run the tracker over every clip of a 300VW-layout folder and score it.

    `tracker` is any object with `reset()` and `process(...)` (default: `Tracker(config)`).
    `predicted` holds clips tracked elsewhere (e.g. by `tracker batch`, on Ray): {clip folder
    name: (1-based frame number, [(68, 2) faces]) of each frame}; those clips are scored from
    it, the others run here (they alone count in "speed").
    `broken_frames` is a broken_frames.npy, None, or "auto" (ROOT/broken_frames.npy if present).
    `max_frames` caps the frames decoded per clip (from the first; labels after it are not
    scored); `clips` restricts the run to these clip folder names. Returns {"root",
    "category", "videos", "categories" (see `aggregate_300vw`), "counts", "speed", "rows"
    (list of FrameRow), "predictions" ({clip: (frames (F,), points (F, 68, 2), NaN if
    missed)})}.
    """
    clips = clip_folders(root, category, clips)
    if broken_frames == "auto":
        auto = Path(root) / "broken_frames.npy"
        broken_frames = auto if auto.is_file() else None
    broken = load_broken_frames(broken_frames)
    owned = tracker is None and any(c.name not in (predicted or {}) for c in clips)
    if owned:
        from tracker.runtime.tracker import Tracker

        tracker = Tracker(config)
    clip_data = {c.name: video_clip(c) for c in clips}  # (video, {frame: (68, 2)})
    labels = {k: v[1] for k, v in clip_data.items()}
    total = sum(_frames_to_run(c, labels[c.name], max_frames) for c in clips)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", desc="eval-300vw", disable=None if progress else True,
               file=sys.stderr)
    rows: list[FrameRow] = []
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    counts = {"clips": len(clips), "frames_run": 0, "frames_labelled": 0, "frames_scored": 0,
              "frames_excluded_broken": 0, "frames_unrun": 0, "missed": 0,
              "several_faces": 0, "faces_returned": 0}
    timed = [0.0, 0, 0]  # seconds, frames, faces; the first frame of a clip (warm-up) untimed
    try:
        for clip in clips:
            bar.set_postfix_str(clip.name)
            lab = labels[clip.name]
            counts["frames_labelled"] += len(lab)
            frames, pts = [], []
            seen: set[int] = set()
            if predicted is not None and clip.name in predicted:
                run = _replayed(predicted[clip.name], max(lab, default=0), max_frames, bar)
            else:
                run = predict_clip(tracker, clip_data[clip.name][0], max(lab, default=0), max_frames,
                                   lambda: bar.update(1))
            for number, faces, dt in run:
                if seen and dt is not None:
                    timed[0], timed[1], timed[2] = timed[0] + dt, timed[1] + 1, timed[2] + len(faces)
                counts["frames_run"] += 1
                counts["faces_returned"] += len(faces)
                seen.add(number)
                gt = lab.get(number)
                if gt is None:
                    continue  # unlabelled frame
                if number in broken.get(clip.name, ()):
                    counts["frames_excluded_broken"] += 1
                    continue
                row, pred = score_frame(clip.name, number, faces, gt)
                rows.append(row)
                counts["several_faces"] += len(faces) > 1
                frames.append(number)
                pts.append(pred if pred is not None else np.full_like(gt, np.nan))
            counts["frames_unrun"] += sum(1 for f in lab if f not in seen)
            predictions[clip.name] = (np.asarray(frames, np.int64),
                                      np.asarray(pts, np.float64).reshape(-1, 68, 2))
    finally:
        bar.close()
        if owned:
            tracker.close()
    counts["frames_scored"] = len(rows)
    counts["missed"] = int(sum(r.missed for r in rows))
    counts["missed_no_face"] = int(sum(r.missed and r.n_faces == 0 for r in rows))
    result = aggregate_300vw(rows)
    result.update(root=str(root), category=category, counts=counts, rows=rows,
                  predictions=predictions,
                  speed=_speed(*timed),
                  broken_frames=str(broken_frames) if broken_frames else None)
    return result


def _replayed(frames: Iterable[tuple[int, list[np.ndarray]]], last_frame: int, max_frames: int | None,
              bar) -> Iterator[tuple[int, list[np.ndarray], None]]:
    """`predict_clip`'s items from frames tracked elsewhere (no time: None)."""
    for n, (number, faces) in enumerate(frames):
        if number > last_frame or (max_frames is not None and n >= max_frames):
            return
        bar.update(1)
        yield number, [np.asarray(f, np.float64) for f in faces], None


def _speed(seconds: float, frames: int, faces: int) -> dict:
    """Time spent in the model's `process` calls (the first frame of each clip, the warm-up,
    not counted): total, frames per second, ms per frame and per face returned."""
    nan = float("nan")
    return {"seconds": seconds, "fps": frames / seconds if seconds else nan,
            "ms_per_frame": 1000 * seconds / frames if frames else nan,
            "ms_per_face": 1000 * seconds / faces if faces else nan}

