"""Labelled still images: faces cropped from the ground-truth box ("gt-box", the papers'
protocol) or found by the model's own detector ("detector"), scored by
`tracker.evaluation.scoring`."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from tracker.core.datasets import FaceRecord, faces_by_image, image_folder, read_image, wflw_list
from tracker.core.geometry import points_box
from tracker.evaluation.scoring import (
    EvalError,
    FaceRow,
    aggregate_images,
    score_image,
)

#: A model: (image (H, W, 3) uint8 RGB, ground-truth boxes (N, 4)) -> candidate faces, each
#: (K, 2). Under "gt-box" it returns one face per box, in order; under "detector" it ignores
#: the boxes and returns whatever it finds.
Predictor = Callable[[np.ndarray, np.ndarray], list]


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


def evaluate_images(records: Iterable[FaceRecord], model, protocol: str = "gt-box",
                    progress: bool = True, name: str = "model") -> dict:
    """Run `model` (see `as_predictor`) on each image once, score every labelled face; time per
    face is the call's wall time over the image's labelled faces (after one untimed warm-up
    call).
    Returns {"protocol", "name", "summary" (aggregate_images), "rows" (list of FaceRow)}."""
    from tqdm import tqdm

    predict = as_predictor(model, protocol)
    by_image = faces_by_image(records)
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

