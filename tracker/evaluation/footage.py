"""Tracking on edited footage: several labelled faces per frame, identities over time.

`score_tracks` compares what a tracker returned on each frame with per-frame labels of N faces
((F, N, 68, 2), NaN where a face is absent; `scripts/make_footage_fixtures.py` writes them):
each labelled face is matched to the returned face whose landmark-box centre is closest
inside its box (`tracker.evaluation.scoring.pick_face`), and the rest is counted:

- `nme`: (F, N) inter-ocular NME per labelled face, NaN where absent, MISSED_NME when missed;
- `missed`: labelled faces with no returned face on them; `extra`: returned faces on no
  labelled face (a duplicate, or a face where there is none);
- `ids`: (F, N) the id given to each labelled face (-1 when missed); `switches`: how often a
  labelled face's id changes from one frame to the next where it is found on both;
- `exact`: frames on which exactly the labelled faces were returned, no more, no fewer.

`save_turned` stores a labelled photo turned, as phones store photos (with the EXIF
orientation tag that shows it upright) or with no tag (its faces then lie turned).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tracker.core.metrics import nme
from tracker.evaluation.scoring import MISSED_NME, pick_face

#: The EXIF orientation tag that shows upright a photo stored turned by `np.rot90(upright, k)`,
#: by k mod 4 (6: "turn a quarter clockwise to show", 8: counter-clockwise, 3: half a turn).
EXIF_ORIENTATION = {0: 1, 1: 6, 2: 3, 3: 8}


def save_turned(path, image: np.ndarray, faces: Sequence[np.ndarray], turns: int,
                tag: bool) -> list[np.ndarray]:
    """Save (H, W, 3) uint8 RGB `image` turned by `turns` quarter turns (`np.rot90`) as a JPEG
    (quality 95) at `path`, with the EXIF orientation tag that shows it upright (`tag`) or with
    none; returns the (K, 2) points of `faces` in the picture a viewer shows."""
    from PIL import Image

    from tracker.core.geometry import apply, quarter_turn

    exif = Image.Exif()
    if tag:
        exif[0x0112] = EXIF_ORIENTATION[turns % 4]
    else:
        faces = [apply(quarter_turn(turns, image.shape[:2]), f) for f in faces]
    Image.fromarray(np.ascontiguousarray(np.rot90(image, turns))).save(path, exif=exif, quality=95)
    return list(faces)


def stack_labels(faces: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Per-frame lists of (K, 2) labelled faces as (F, N, K, 2), NaN where a frame has fewer
    than N faces (the `labels` of `score_tracks`)."""
    n = max((len(f) for f in faces), default=0)
    k = next((len(p) for f in faces for p in f), 68)
    out = np.full((len(faces), n, k, 2), np.nan)
    for i, f in enumerate(faces):
        if len(f):
            out[i, :len(f)] = f
    return out


def score_tracks(faces: Sequence[Sequence], labels: np.ndarray) -> dict:
    """`faces[f]`: the returned faces of frame f (objects with `.id` and `.points` (68, 2));
    `labels` (F, N, 68, 2). See the module docstring for what is returned."""
    labels = np.asarray(labels, np.float64)
    n_frames, n_faces = labels.shape[:2]
    if len(faces) != n_frames:
        raise ValueError(f"{len(faces)} frames of results for {n_frames} frames of labels")
    errors = np.full((n_frames, n_faces), np.nan)
    ids = np.full((n_frames, n_faces), -1, np.int64)
    extra = missed = exact = 0
    for f in range(n_frames):
        returned = list(faces[f])
        used: set[int] = set()
        present = [n for n in range(n_faces) if np.isfinite(labels[f, n]).all()]
        for n in present:
            gt = labels[f, n]
            free = [i for i in range(len(returned)) if i not in used]
            pick = pick_face([returned[i].points for i in free], gt)
            if pick is None:
                errors[f, n] = MISSED_NME
                missed += 1
                continue
            i = free[pick]
            used.add(i)
            ids[f, n] = returned[i].id
            errors[f, n] = float(nme(np.asarray(returned[i].points)[None], gt[None])[0])
        extra += len(returned) - len(used)
        exact += len(returned) == len(used) == len(present)
    both = (ids[1:] >= 0) & (ids[:-1] >= 0)
    switches = int(np.sum(both & (ids[1:] != ids[:-1])))
    scored = errors[np.isfinite(errors)]
    return {"frames": n_frames, "faces": n_faces, "nme": errors, "ids": ids,
            "mean_nme": float(scored.mean()) if len(scored) else float("nan"),
            "median_nme": float(np.median(scored)) if len(scored) else float("nan"),
            "missed": missed, "extra": extra, "switches": switches, "exact": exact}
