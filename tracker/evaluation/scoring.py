"""Scoring landmarks against labels: NMEs, the matching of returned faces to labelled ones,
and aggregates (AUC, failure rate) per video, category and image set. Pure: no model runs here.

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

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tracker.core.geometry import points_box
from tracker.core.landmarks import INNER49, SCHEMES, LandmarkScheme
from tracker.core.metrics import auc_fr, contour_components, nme, normaliser

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


class EvalError(ValueError):
    """Bad evaluation input (a folder, list or option); the message names it."""


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
    diagonal), for 68-point faces "io49" (inter-ocular, 49 inner points); and per part of the
    markup (`LandmarkScheme.groups`), inter-ocular: "part:<group>", and for a markup with a
    jaw "jaw:along" and "jaw:across" (`contour_components`). A missed face has no part keys:
    parts describe the faces found (`aggregate_images`' "parts")."""
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
    for name, points in s.groups.items():
        out[f"part:{name}"] = nme(p, g, "inter_ocular", scheme=s, points=points)[0]
    if "jaw" in s.groups:
        io = normaliser(g, "inter_ocular", s)
        along, across = contour_components(p, g, s.groups["jaw"])
        out["jaw:along"], out["jaw:across"] = (along / io)[0], (across / io)[0]
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
    """{"faces", "missed", "ms_per_face", per NME kind ("io", "box", "diag", "io49"): a
    `summarise` block, and "parts": {part key of `face_errors`: mean over the faces found}}."""
    out: dict = {"faces": len(rows), "missed": int(sum(r.missed for r in rows)),
                 "ms_per_face": float(np.mean([r.ms for r in rows])) if rows else float("nan")}
    kinds = [k for k in ("io", "box", "diag", "io49") if rows and all(k in r.errors for r in rows)]
    for k in kinds:
        out[k] = summarise([r.errors[k] for r in rows], cutoffs)
    found = [r for r in rows if not r.missed]
    parts = [k for k in (found[0].errors if found else {}) if ":" in k]
    out["parts"] = {k: float(np.mean([r.errors[k] for r in found])) for k in parts}
    return out

