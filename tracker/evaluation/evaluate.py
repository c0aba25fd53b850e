"""Accuracy evaluation: the tracker (or any landmarker) against labelled videos and images.

Two protocols, each split into *running* a model (`predict_*`) and *scoring* what it returned
(`score_*`, `aggregate_*`), so the metrics can be checked on constructed predictions:

- 300VW videos (`evaluate_300vw`, `tracker eval-300vw`): the tracker runs frame by frame on
  each clip exactly as deployed (its own detector, its own detection schedule; the annotations
  never touch the cropping) and every annotated frame is scored. Per-frame NME is normalised by
  the outer-eye-corner distance (points 37 and 46, 1-based), on the 49 inner points of the 300VW
  protocol (`tracker.core.landmarks.INNER49`) and on all 68; AUC and failure rate at 0.08 per video
  and per category. Categories are the official 300VW test scenarios (`CATEGORIES_300VW`);
  other clips (our own data) fall in "other".
- Still images (`evaluate_images`, `tracker eval-images`): faces cropped from the ground-truth
  box (the landmarks' extent, the papers' protocol: "gt-box") or found by the tracker's own
  detector ("detector"); NME by inter-ocular distance, box size sqrt(w * h) and box diagonal;
  AUC and FR at 0.08 and 0.10.

Conventions for both:
- a labelled face the model did not return counts as a failure with NME `MISSED_NME` (1.0), is
  never dropped, and is also counted separately ("missed");
- when the model returns several faces, the one whose landmark-box centre is closest to the
  ground truth's is scored, among those whose centre lies inside the ground truth's landmark
  box; if none does, the face is missed (a detection of another person is not this face);
- a frame without an annotation file is unlabelled: neither scored nor a failure. Frames listed
  in 300VW's `broken_frames.npy` (frames whose official annotation is wrong, as used by mmpose)
  are excluded too and counted.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from tracker.core.datasets import DatasetError, FaceRecord, image_folder, read_image, video_clip, wflw_list
from tracker.core.geometry import points_box
from tracker.core.landmarks import INNER49, SCHEMES, LandmarkScheme
from tracker.core.metrics import auc_fr, nme, plot_ced
from tracker.core.pts import PtsError

if TYPE_CHECKING:
    from tracker.runtime.capture import Frame

#: NME given to a labelled face the model did not return (a failure at any cut-off).
MISSED_NME = 1.0
CUTOFF_300VW = 0.08
CUTOFFS_IMAGES = (0.08, 0.10)

#: The official 300VW test videos by scenario (Chrysos et al., "Offline deformable face
#: tracking in arbitrary videos", ICCVW 2015): A = scenario 1 (laboratory and naturalistic
#: well-lit), B = scenario 2 (real-world human-computer interaction), C = scenario 3 (arbitrary
#: conditions). Checked against two public copies: OpenFace's 300VW experiment scripts
#: (TadasBaltrusaitis/OpenFace, matlab_version/experiments_300VW: cat_1, cat_2, cat_3) and
#: mmpose's 300VW preprocessing (Base300VW.videos_test_1/2/3); both agree with these lists.
CATEGORIES_300VW: dict[str, tuple[int, ...]] = {
    "A": (114, 124, 125, 126, 150, 158, 401, 402, 505, 506, 507, 508, 509, 510, 511, 514, 515,
          518, 519, 520, 521, 522, 524, 525, 537, 538, 540, 541, 546, 547, 548),
    "B": (203, 208, 211, 212, 213, 214, 218, 224, 403, 404, 405, 406, 407, 408, 409, 412, 550,
          551, 553),
    "C": (410, 411, 516, 517, 526, 528, 529, 530, 531, 533, 557, 558, 559, 562),
}
OTHER = "other"
POINT_SETS = {"49": INNER49, "68": None}

#: A model: (image (H, W, 3) uint8 RGB, ground-truth boxes (N, 4)) -> candidate faces, each
#: (K, 2). Under "gt-box" it returns one face per box, in order; under "detector" it ignores
#: the boxes and returns whatever it finds.
Predictor = Callable[[np.ndarray, np.ndarray], list]


class EvalError(ValueError):
    """Bad evaluation input (a folder, list or option); the message names it."""


# ----------------------------------------------------------------------------- scoring

def category_of(clip: str) -> str:
    """300VW category ("A", "B", "C") of a clip folder name such as "114", else "other"."""
    if clip.isdigit():
        n = int(clip)
        for cat, ids in CATEGORIES_300VW.items():
            if n in ids:
                return cat
    return OTHER


def pick_face(candidates: Sequence[np.ndarray], gt: np.ndarray) -> int | None:
    """Index of the candidate (K, 2) face that matches the (K, 2) ground truth: the closest
    landmark-box centre among candidates whose centre lies inside the ground truth's landmark
    box; None when there is none."""
    x0, y0, x1, y1 = points_box(gt)
    c_gt = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    best, best_d = None, math.inf
    for i, cand in enumerate(candidates):
        b = points_box(cand)
        c = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        if not (x0 <= c[0] <= x1 and y0 <= c[1] <= y1):
            continue
        d = float(np.linalg.norm(c - c_gt))
        if d < best_d:
            best, best_d = i, d
    return best


def scheme_for(n_points: int) -> LandmarkScheme:
    for s in SCHEMES.values():
        if s.n_points == n_points:
            return s
    raise EvalError(f"no landmark scheme with {n_points} points (known: "
                    f"{', '.join(f'{s.name} ({s.n_points})' for s in SCHEMES.values())})")


def face_errors(pred: np.ndarray | None, gt: np.ndarray) -> dict[str, float]:
    """NMEs of one (K, 2) prediction against (K, 2) ground truth; `pred` None = missed face.

    Keys: "io" (inter-ocular), "box" (sqrt(w * h) of the ground truth's box), "diag" (its
    diagonal), and for 68-point faces "io49" (inter-ocular, 49 inner points)."""
    gt = np.asarray(gt, np.float64)
    keys = ["io", "box", "diag"] + (["io49"] if len(gt) == 68 else [])
    if pred is None:
        return {k: MISSED_NME for k in keys}
    pred = np.asarray(pred, np.float64)
    if pred.shape != gt.shape:
        raise EvalError(f"the model returns {pred.shape[0]}-point faces, the labels have "
                        f"{gt.shape[0]} points: evaluate with a model of the labels' scheme")
    s = scheme_for(len(gt))
    p, g = pred[None], gt[None]
    out = {"io": nme(p, g, "inter_ocular", scheme=s)[0], "box": nme(p, g, "box", scheme=s)[0],
           "diag": nme(p, g, "diagonal", scheme=s)[0]}
    if len(gt) == 68:
        out["io49"] = nme(p, g, "inter_ocular", scheme=s, points=INNER49)[0]
    return {k: float(v) for k, v in out.items()}


def summarise(errors: Sequence[float], cutoffs: Sequence[float] = (CUTOFF_300VW,)) -> dict:
    """{"n", "mean", "median", "auc@c", "fr@c" for each cut-off} of per-face errors (missed
    faces included as `MISSED_NME`). Means and medians are fractions, not percent."""
    e = np.asarray(list(errors), np.float64)
    out: dict = {"n": int(len(e))}
    if len(e) == 0:
        out.update(mean=float("nan"), median=float("nan"))
    else:
        out.update(mean=float(e.mean()), median=float(np.median(e)))
    for c in cutoffs:
        a, f = auc_fr(e, c)
        out[f"auc@{c:g}"], out[f"fr@{c:g}"] = a, f
    return out


# ----------------------------------------------------------------------------- 300VW

@dataclass(frozen=True)
class FrameRow:
    """One annotated frame's score: `frame` 1-based, `n_faces` the faces the model returned,
    `missed` when none matched (then both NMEs are MISSED_NME)."""

    clip: str
    category: str
    frame: int
    n_faces: int
    missed: bool
    nme49: float
    nme68: float


def score_frame(clip: str, frame: int, faces: Sequence[np.ndarray], gt: np.ndarray) -> tuple[FrameRow, np.ndarray | None]:
    """Score the faces a model returned on one annotated frame: (row, the matched (68, 2)
    face or None)."""
    i = pick_face(faces, gt)
    pred = None if i is None else np.asarray(faces[i], np.float64)
    e = face_errors(pred, gt)
    row = FrameRow(clip, category_of(clip), int(frame), len(faces), pred is None,
                   e.get("io49", float("nan")), e["io"])
    return row, pred


def aggregate_300vw(rows: Sequence[FrameRow], cutoff: float = CUTOFF_300VW) -> dict:
    """Per-video and per-category summaries of scored frames, on 49 and 68 points:
    {"videos": {clip: {"category", "frames", "missed", "49": summary, "68": summary}},
     "categories": {cat: {"videos", "frames", "missed", "49": ..., "68": ...}}}; the category
    "all" pools every frame. Frames are pooled, not videos averaged (the 300VW convention)."""
    def block(rs: Sequence[FrameRow]) -> dict:
        return {"frames": len(rs), "missed": int(sum(r.missed for r in rs)),
                "49": summarise([r.nme49 for r in rs], (cutoff,)),
                "68": summarise([r.nme68 for r in rs], (cutoff,))}

    videos: dict[str, dict] = {}
    for clip in sorted({r.clip for r in rows}):
        rs = [r for r in rows if r.clip == clip]
        videos[clip] = {"category": rs[0].category, **block(rs)}
    cats: dict[str, dict] = {}
    for cat in [*CATEGORIES_300VW, OTHER]:
        rs = [r for r in rows if r.category == cat]
        if rs:
            cats[cat] = {"videos": len({r.clip for r in rs}), **block(rs)}
    if rows:
        cats["all"] = {"videos": len(videos), **block(rows)}
    return {"videos": videos, "categories": cats}


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
    `max_frames` frames."""
    tracker.reset()
    with contextlib.closing(numbered_frames(video, last_frame, max_frames)) as frames:
        for number, fr in frames:
            t0 = time.perf_counter()
            result = tracker.process(fr.image, index=fr.index, timestamp=fr.timestamp)
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
                   progress: bool = True, clips: Sequence[str] | None = None) -> dict:
    """Run the tracker over every clip of a 300VW-layout folder and score it.

    `tracker` is any object with `reset()` and `process(...)` (default: `Tracker(config)`).
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
    if tracker is None:
        from tracker.runtime.config import TrackerConfig
        from tracker.runtime.tracker import Tracker

        tracker = Tracker(config if config is not None else TrackerConfig())
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
            run = predict_clip(tracker, clip_data[clip.name][0], max(lab, default=0), max_frames,
                               lambda: bar.update(1))
            for number, faces, dt in run:
                if seen:
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
    counts["frames_scored"] = len(rows)
    counts["missed"] = int(sum(r.missed for r in rows))
    counts["missed_no_face"] = int(sum(r.missed and r.n_faces == 0 for r in rows))
    result = aggregate_300vw(rows)
    result.update(root=str(root), category=category, counts=counts, rows=rows,
                  predictions=predictions,
                  speed=_speed(*timed),
                  broken_frames=str(broken_frames) if broken_frames else None)
    return result


def _speed(seconds: float, frames: int, faces: int) -> dict:
    """Time spent in the model's `process` calls (the first frame of each clip, the warm-up,
    not counted): total, frames per second, ms per frame and per face returned."""
    nan = float("nan")
    return {"seconds": seconds, "fps": frames / seconds if seconds else nan,
            "ms_per_frame": 1000 * seconds / frames if frames else nan,
            "ms_per_face": 1000 * seconds / faces if faces else nan}


def write_300vw(result: dict, out: str | os.PathLike, points: str = "49") -> list[Path]:
    """Write results.json, frames.csv, videos.csv, predictions.npz and ced_<category>.png
    (49 and 68 points) to `out`; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    summary = {k: v for k, v in result.items() if k not in ("rows", "predictions")}
    summary["headline_points"] = points
    summary["missed_nme"] = MISSED_NME
    summary["face_choice"] = ("closest landmark-box centre to the annotation, among returned "
                              "faces centred inside the annotation's box")
    p = out / "results.json"
    p.write_text(json.dumps(jsonable(summary), indent=1))
    written.append(p)
    p = out / "frames.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "category", "frame", "n_faces", "missed", "nme49", "nme68"])
        for r in result["rows"]:
            w.writerow([r.clip, r.category, r.frame, r.n_faces, int(r.missed), f"{r.nme49:.6f}",
                        f"{r.nme68:.6f}"])
    written.append(p)
    p = out / "videos.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        head = ["clip", "category", "frames", "missed"]
        for s in POINT_SETS:
            head += [f"mean{s}", f"median{s}", f"auc{s}@0.08", f"fr{s}@0.08"]
        w.writerow(head)
        for clip, v in result["videos"].items():
            row = [clip, v["category"], v["frames"], v["missed"]]
            for s in POINT_SETS:
                row += [f"{v[s]['mean']:.6f}", f"{v[s]['median']:.6f}", f"{v[s]['auc@0.08']:.4f}",
                        f"{v[s]['fr@0.08']:.4f}"]
            w.writerow(row)
    written.append(p)
    p = out / "predictions.npz"
    arrays = {}
    for clip, (frames, pts) in result["predictions"].items():
        arrays[f"{clip}/frames"], arrays[f"{clip}/points"] = frames, pts
    np.savez_compressed(p, **arrays)
    written.append(p)
    for cat in result["categories"]:
        rs = [r for r in result["rows"] if cat == "all" or r.category == cat]
        p = out / f"ced_{cat}.png"
        plot_ced({"49 points": np.array([r.nme49 for r in rs]),
                  "68 points": np.array([r.nme68 for r in rs])}, str(p), CUTOFF_300VW,
                 title=f"300VW category {cat}: {len(rs)} frames")
        written.append(p)
    return written


def table_300vw(result: dict, points: str = "49") -> str:
    """A short text table: one line per category (the headline point set first)."""
    other = "68" if points == "49" else "49"
    lines = [f"{'category':<9}{'videos':>7}{'frames':>8}{'missed':>8}  "
             f"{'NME' + points + ' %':>9}{'median %':>9}{'AUC@.08':>9}{'FR@.08 %':>9}  "
             f"{'NME' + other + ' %':>9}{'AUC@.08':>9}"]
    for cat, v in result["categories"].items():
        a, b = v[points], v[other]
        lines.append(f"{cat:<9}{v['videos']:>7}{v['frames']:>8}{v['missed']:>8}  "
                     f"{a['mean'] * 100:>9.2f}{a['median'] * 100:>9.2f}{a['auc@0.08']:>9.3f}"
                     f"{a['fr@0.08'] * 100:>9.1f}  {b['mean'] * 100:>9.2f}{b['auc@0.08']:>9.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- images

def image_records(roots: Sequence[str | os.PathLike], layout: str = "folder",
                  images_root: str | os.PathLike | None = None) -> list[FaceRecord]:
    """Face records of still-image datasets. "folder": folders of images with .pts;
    "300w": the same, or a parent whose sub-folders are such folders (e.g. 300w/ holding
    helen_testset, afw); "wflw": WFLW annotation lists, images under `images_root` (default: a
    WFLW_images folder beside or above the list)."""
    records: list[FaceRecord] = []
    for root in roots:
        root = Path(root)
        if layout == "folder":
            records += list(image_folder(root))
        elif layout == "300w":
            if not root.is_dir():
                raise EvalError(f"{root}: no such folder")
            subs = [root] if any(root.glob("*.pts")) else sorted(
                p for p in root.iterdir() if p.is_dir() and any(p.glob("*.pts")))
            if not subs:
                raise EvalError(f"{root}: no .pts files in it or its sub-folders")
            for s in subs:
                records += list(image_folder(s))
        elif layout == "wflw":
            if not root.is_file():
                raise EvalError(f"{root}: no such WFLW list file (list_98pt_rect_attr_test.txt)")
            imgs = Path(images_root) if images_root else _find_wflw_images(root)
            records += list(wflw_list(root, imgs))
        else:
            raise EvalError(f"unknown layout {layout!r}: folder, 300w or wflw")
    if not records:
        raise EvalError(f"no labelled faces in {', '.join(map(str, roots))}")
    return records


def _find_wflw_images(list_file: Path) -> Path:
    for parent in list_file.resolve().parents:
        for cand in (parent / "WFLW_images", parent / "images"):
            if cand.is_dir():
                return cand
    raise EvalError(f"{list_file}: cannot find the WFLW_images folder; give it with --images")


def as_predictor(model, protocol: str) -> Predictor:
    """A `Predictor` from an Aligner (`.align(image, boxes) -> (points, scores)`, "gt-box"), a
    Tracker (`.process(image) -> result.faces`, "detector"; reset before each image), a peer
    (`.landmarks(image)`, "detector") or a callable already of the `Predictor` form."""
    if protocol not in ("gt-box", "detector"):
        raise EvalError(f"unknown protocol {protocol!r}: gt-box or detector")
    if protocol == "gt-box":
        if hasattr(model, "align"):
            return lambda img, boxes: list(model.align(img, boxes)[0])
    else:
        if hasattr(model, "process"):
            def run(img, boxes):
                model.reset()
                return [f.points for f in model.process(img).faces]
            return run
        if hasattr(model, "landmarks"):
            return lambda img, boxes: model.landmarks(img)
    if callable(model):
        return model
    raise EvalError(f"{type(model).__name__} cannot be evaluated under the {protocol} protocol")


@dataclass(frozen=True)
class FaceRow:
    """One labelled face's score on a still image (NMEs MISSED_NME when `missed`)."""

    image: str
    face: int  # index of the face among the image's labelled faces
    n_faces: int  # faces the model returned for the image
    missed: bool
    ms: float  # model time per labelled face of the image
    errors: dict


def score_image(image: str, gts: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                protocol: str, ms: float) -> list[FaceRow]:
    """Score one image's returned faces against its labelled faces. Under "gt-box" face i
    answers box i; under "detector" each labelled face takes its matching face (`pick_face`)."""
    rows = []
    for i, gt in enumerate(gts):
        if protocol == "gt-box":
            pred = faces[i] if i < len(faces) else None
        else:
            j = pick_face(faces, gt)
            pred = None if j is None else faces[j]
        rows.append(FaceRow(image, i, len(faces), pred is None, ms, face_errors(pred, gt)))
    return rows


def aggregate_images(rows: Sequence[FaceRow], cutoffs: Sequence[float] = CUTOFFS_IMAGES) -> dict:
    """{"faces", "missed", "ms_per_face", and per NME kind ("io", "box", "diag", "io49"): a
    `summarise` block}."""
    out: dict = {"faces": len(rows), "missed": int(sum(r.missed for r in rows)),
                 "ms_per_face": float(np.mean([r.ms for r in rows])) if rows else float("nan")}
    kinds = [k for k in ("io", "box", "diag", "io49") if rows and all(k in r.errors for r in rows)]
    for k in kinds:
        out[k] = summarise([r.errors[k] for r in rows], cutoffs)
    return out


def evaluate_images(records: Iterable[FaceRecord], model, protocol: str = "gt-box",
                    progress: bool = True, name: str = "model") -> dict:
    """Run `model` (see `as_predictor`) on each image once, score every labelled face; time per
    face is the call's wall time over the image's labelled faces (after one untimed warm-up
    call).
    Returns {"protocol", "name", "summary" (aggregate_images), "rows" (list of FaceRow)}."""
    from tqdm import tqdm

    predict = as_predictor(model, protocol)
    by_image: dict[Path, list[np.ndarray]] = {}
    for r in records:
        by_image.setdefault(Path(r.image), []).append(np.asarray(r.points, np.float64))
    rows: list[FaceRow] = []
    if by_image:  # warm-up call (first-run allocations), not timed; predictors keep no state
        first = next(iter(by_image))
        predict(read_image(first), np.stack([points_box(g) for g in by_image[first]]))
    for path, gts in tqdm(by_image.items(), desc=f"{name} ({protocol})", unit="image",
                          disable=None if progress else True, file=sys.stderr):
        img = read_image(path)
        boxes = np.stack([points_box(g) for g in gts])  # (N, 4)
        t0 = time.perf_counter()
        faces = [np.asarray(f, np.float64) for f in predict(img, boxes)]
        ms = (time.perf_counter() - t0) * 1000 / len(gts)
        rows += score_image(str(path), gts, faces, protocol, ms)
    return {"protocol": protocol, "name": name, "summary": aggregate_images(rows), "rows": rows}


def write_images(results: Sequence[dict], out: str | os.PathLike, stem: str = "images") -> list[Path]:
    """Write <stem>.json (summaries), <stem>_faces.csv (per face, every result) and
    <stem>_ced.png (inter-ocular CED of every result) to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p_json, p_csv, p_png = out / f"{stem}.json", out / f"{stem}_faces.csv", out / f"{stem}_ced.png"
    p_json.write_text(json.dumps(jsonable(
        [{"name": r["name"], "protocol": r["protocol"], **r["summary"]} for r in results]), indent=1))
    kinds = sorted({k for r in results for row in r["rows"] for k in row.errors})
    with p_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "protocol", "image", "face", "n_faces", "missed", "ms",
                    *[f"nme_{k}" for k in kinds]])
        for r in results:
            for row in r["rows"]:
                w.writerow([r["name"], r["protocol"], row.image, row.face, row.n_faces, int(row.missed),
                            f"{row.ms:.2f}", *[f"{row.errors.get(k, float('nan')):.6f}" for k in kinds]])
    plot_ced({f"{r['name']} ({r['protocol']})": np.array([row.errors["io"] for row in r["rows"]])
              for r in results}, str(p_png), 0.10, title="CED, inter-ocular NME")
    return [p_json, p_csv, p_png]


def table_images(results: Sequence[dict]) -> str:
    """A short text table, one line per result, inter-ocular NME."""
    lines = [f"{'model':<28}{'protocol':<10}{'faces':>6}{'missed':>7}{'NME %':>8}{'median':>8}"
             f"{'AUC@.08':>8}{'FR@.08':>8}{'AUC@.1':>8}{'FR@.1':>8}{'ms/face':>9}"]
    for r in results:
        s, io = r["summary"], r["summary"]["io"]
        lines.append(f"{r['name']:<28}{r['protocol']:<10}{s['faces']:>6}{s['missed']:>7}"
                     f"{io['mean'] * 100:>8.2f}{io['median'] * 100:>8.2f}{io['auc@0.08']:>8.3f}"
                     f"{io['fr@0.08'] * 100:>7.1f}%{io['auc@0.1']:>8.3f}{io['fr@0.1'] * 100:>7.1f}%"
                     f"{s['ms_per_face']:>9.1f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

def add_subcommands(subparsers) -> None:
    """Add `eval-300vw` and `eval-images` to an argparse subparsers object."""
    p = subparsers.add_parser("eval-300vw", help="accuracy on 300VW-layout videos (tracker as deployed)",
                              description=__doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="a folder of 300VW clips (clip/vid.mp4|vid.avi|imgs/ + clip/annot/) "
                                "or one clip folder")
    p.add_argument("--category", default="all", choices=["A", "B", "C", "other", "all"],
                   help="300VW test scenario (A: 1, B: 2, C: 3), other clips, or all (default)")
    p.add_argument("--points", default="49", choices=["49", "68"],
                   help="headline point set for the table (both are always written)")
    p.add_argument("--out", default="eval-300vw", help="output folder (default ./eval-300vw)")
    p.add_argument("--max-frames", type=int, default=None, help="decode at most this many frames per clip")
    p.add_argument("--broken-frames", default="auto",
                   help="300VW broken_frames.npy to exclude (default: ROOT/broken_frames.npy if "
                        "present; 'none' to score every annotated frame)")
    _model_args(p, detector=True)
    p.set_defaults(func=_cmd_300vw)

    p = subparsers.add_parser("eval-images", help="accuracy on labelled still images")
    p.add_argument("roots", nargs="+", help="image folders with .pts (or WFLW list files)")
    p.add_argument("--layout", default="folder", choices=["folder", "300w", "wflw"])
    p.add_argument("--images", default=None, help="WFLW images folder (layout wflw)")
    p.add_argument("--protocol", default="gt-box", choices=["gt-box", "detector"],
                   help="crop from the ground-truth landmarks' box (default) or from the "
                        "tracker's own detector (a missed face counts as NME 1.0)")
    p.add_argument("--out", default="eval-images", help="output folder (default ./eval-images)")
    _model_args(p, detector=True)
    p.set_defaults(func=_cmd_images)


def _model_args(p: argparse.ArgumentParser, detector: bool) -> None:
    p.add_argument("--model", default=None, help="model file (default: the bundled rt-m)")
    try:
        from tracker.engines.backends import BACKENDS

        backends = list(BACKENDS)
    except ImportError:
        backends = None
    p.add_argument("--backend", default="onnxruntime", choices=backends,
                   help="inference backend (default onnxruntime)")
    if detector:
        p.add_argument("--detector", default=None,
                       help="face detector model (short, full, ...; default: the tracker's)")
        p.add_argument("--detect-every", type=int, default=None, help="run the detector every N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def tracker_config(args: argparse.Namespace):
    """TrackerConfig from the CLI's model options (unset options keep the config's defaults)."""
    import dataclasses

    from tracker.runtime.config import TrackerConfig

    cfg = TrackerConfig()
    changes = {"model": args.model, "backend": args.backend}
    if getattr(args, "detector", None) is not None:
        changes["detector"] = args.detector
    if getattr(args, "detect_every", None) is not None:
        changes["detect_every"] = args.detect_every
    try:
        return dataclasses.replace(cfg, **changes)
    except ValueError as e:  # the config validates its fields
        raise EvalError(f"bad tracker option: {e}") from None


#: Errors that are the user's (bad paths, files, options): one line on stderr, exit code 2.
def _user_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [EvalError, DatasetError, PtsError, FileNotFoundError]
    for mod, name in (("tracker.core.modelfile", "ModelFileError"), ("tracker.runtime.capture", "SourceError"),
                      ("tracker.engines.backends", "BackendUnavailable")):
        try:
            errs.append(getattr(__import__(mod, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errs)


def _cmd_300vw(args: argparse.Namespace) -> int:
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise EvalError("--max-frames must be at least 1")
        broken = None if args.broken_frames == "none" else args.broken_frames
        clip_folders(args.root, args.category)  # bad paths fail before any model loads
        result = evaluate_300vw(args.root, tracker_config(args), category=args.category,
                                max_frames=args.max_frames, broken_frames=broken,
                                progress=not args.no_progress)
        paths = write_300vw(result, args.out, args.points)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    c = result["counts"]
    print(table_300vw(result, args.points))
    print(f"{c['clips']} clips, {c['frames_run']} frames run at {result['speed']['fps']:.1f} fps, "
          f"{c['frames_scored']} annotated frames scored, {c['missed']} missed (NME {MISSED_NME:g}; "
          f"{c['missed_no_face']} with no face returned, the rest with faces elsewhere), "
          f"{c['frames_excluded_broken']} excluded as broken; results in {paths[0].parent}")
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    try:
        records = image_records(args.roots, args.layout, args.images)  # before any model loads
        cfg = tracker_config(args)
        if args.protocol == "gt-box":
            from tracker.engines.backends import load_backend
            from tracker.runtime.align import Aligner

            model = Aligner(load_backend(cfg.backend, cfg.model))
        else:
            from tracker.runtime.tracker import Tracker

            model = Tracker(cfg)
        name = Path(cfg.model).stem if cfg.model else "rt-m"
        result = evaluate_images(records, model, args.protocol, not args.no_progress, name)
        paths = write_images([result], args.out)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table_images([result]))
    print(f"results in {paths[0].parent}")
    return 0


def jsonable(x):
    """JSON-safe copy: dataclasses to dicts, numpy to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return jsonable(asdict(x))
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


__all__ = ["CATEGORIES_300VW", "EvalError", "FaceRow", "FrameRow", "MISSED_NME", "add_subcommands",
           "aggregate_300vw", "aggregate_images", "as_predictor", "category_of", "clip_folders",
           "evaluate_300vw", "evaluate_images", "face_errors", "image_records", "jsonable", "pick_face",
           "predict_clip", "score_frame", "score_image", "summarise", "table_300vw", "table_images",
           "write_300vw", "write_images"]
