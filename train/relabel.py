"""New labels for the teacher-labelled faces of a training cache: the teacher run again at
sub-pixel precision, our own trained models, or both.

    python -m train.relabel tracker/models/rt-sep2-192.pt tracker/models/rt-sep-kd.pt --out .cache/relabels.npz
    python -m train.relabel --subpixel-teacher --out .cache/relabels_subpixel_teacher.npz

The teacher (dlib) labels whole pixels, jitters and fails on turned heads. Each model given
predicts every face on its canonical crop and on the mirrored crop (flip test), and the
predictions of all models are averaged in cache-crop pixels. The new label of a teacher face is
a blend, `b` x that prediction + (1 - b) x the teacher's label; human labels are never touched.

`--blend auto` chooses `b` on the validation faces (held-out human-labelled identities, the
split of `train.sampling.split`; never the test set): the teacher is run there as it labelled
the data (its HOG detector, then its shape predictor; needs the `peers` extra), and the blend
whose NME against the human labels is lowest, on the faces the teacher finds, wins. The file
records every blend's validation score, and a `TrainConfig.labels` pointing at it trains on
the new labels (`relabelled`).

`--subpixel-teacher` first replaces the teacher's labels by the teacher's own points, found
again on each crop and predicted on it upscaled 4x and on its mirror image, averaged
(`teacher_on(subpixel=True)`): the same teacher without its whole-pixel rounding and with its
left-right asymmetry halved. Models given blend into those labels as above.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from tracker.core.geometry import apply, invert
from tracker.core.landmarks import flip_points
from tracker.core.metrics import nme
from train.cache import Cache, default_path
from train.config import TrainConfig
from train.sampling import split
from train.validation import crops, summarise

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)


class RelabelMismatch(ValueError):
    """A relabels file made for another cache."""


def fingerprint(cache: Cache) -> str:
    """A short hash of a cache's labels and sources: relabels are only valid for that cache."""
    h = hashlib.sha256(np.ascontiguousarray(cache.points).tobytes())
    h.update(np.ascontiguousarray(cache.source).tobytes())
    return h.hexdigest()[:16]


def predict(model_paths: list[Path], cache: Cache, idx: np.ndarray, batch: int = 64,
            progress: bool = False, flip: bool = True) -> np.ndarray:
    """(len(idx), K, 2) landmarks in cache-crop pixels: every model's prediction on the
    canonical crop and (with `flip`) on its mirror image, averaged."""
    import torch
    from tqdm import tqdm

    from tracker.core.modelfile import load_torch

    total = np.zeros((len(idx), cache.points.shape[1], 2))
    for path in model_paths:
        net, info = load_torch(path)
        hw = info.model.input_hw
        bar = tqdm(range(0, len(idx), batch), desc=f"relabel {Path(path).name}", unit="batch",
                   disable=not progress, mininterval=5)
        for s in bar:
            b = idx[s:s + batch]
            imgs, canon = crops(cache, b, hw)
            x = np.concatenate([imgs, imgs[:, :, ::-1]]) if flip else imgs
            with torch.no_grad():
                hm = net(torch.from_numpy(info.normalise(x))).numpy()
            xy, _ = info.codec.decode(hm)  # input pixels
            n = len(b)
            if flip:
                xy = (xy[:n] + flip_points(xy[n:], hw[1])) / 2
            total[s:s + n] += apply(invert(canon), xy)
    return (total / len(model_paths)).astype(np.float32)


def teacher_on(cache: Cache, idx: np.ndarray, subpixel: bool = False,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The teacher (dlib's HOG detector, largest box, then its 68-point predictor) on the cache
    crops `idx`, as it labelled the data (upsampled once: the crops are under 400 px):
    ((len(idx), 68, 2) points in cache-crop pixels, (len(idx),) found).

    dlib's predictor returns whole pixels. With `subpixel` it runs on the crop upscaled
    `SUBPIXEL_SCALE` times and on that image's mirror (the detector's box scaled and mirrored
    with it), and the two, mirrored back, are averaged: rounding shrinks by the scale and the
    averaging halves the predictor's own mirror asymmetry (validation: `scripts/label_quality.py`).
    """
    try:
        import dlib
        import face_recognition_models
    except ImportError as e:
        raise SystemExit(f"the teacher, dlib, is not installed ({e}): install the peers extra "
                         "(scripts/install.sh peers), or give --blend without --subpixel-teacher") from None
    from tqdm import tqdm

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    pts = np.zeros((len(idx), 68, 2), np.float32)
    found = np.zeros(len(idx), bool)
    for j, i in enumerate(tqdm(idx, desc="teacher", unit="face", disable=not progress, mininterval=5)):
        img = np.ascontiguousarray(cache.images[i])
        boxes, _, _ = detector.run(img, 1, 0.0)
        if not boxes:
            continue
        box = max(boxes, key=lambda r: r.width() * r.height())
        found[j] = True
        if not subpixel:
            shape = predictor(img, box)
            pts[j] = [(p.x, p.y) for p in shape.parts()]  # whole-pixel, 0-based pixel centres
            continue
        ltrb = np.array([box.left(), box.top(), box.right(), box.bottom()], np.float64)
        pts[j] = _subpixel_shape(predictor, img, ltrb, dlib.rectangle)
    return pts, found


SUBPIXEL_SCALE = 4


def _subpixel_shape(predictor, img: np.ndarray, ltrb: np.ndarray, rectangle) -> np.ndarray:
    """(68, 2) points in `img`'s 0-based pixel centres: the predictor on `img` upscaled
    `SUBPIXEL_SCALE` times, box (left, top, right, bottom) scaled with it, averaged with the same
    on the mirror image (its points mirrored back and relabelled)."""
    import cv2

    s, w = SUBPIXEL_SCALE, img.shape[1]
    big = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    mirrored_box = np.array([w - 1 - ltrb[2], ltrb[1], w - 1 - ltrb[0], ltrb[3]])
    out = []
    for image, b in ((big, ltrb), (np.ascontiguousarray(big[:, ::-1]), mirrored_box)):
        # a pixel centre x maps to s (x + 0.5) - 0.5 in the upscaled image
        lt, rb = np.round(s * (b[:2] + 0.5) - 0.5), np.round(s * (b[2:] + 0.5) - 0.5)
        shape = predictor(image, rectangle(int(lt[0]), int(lt[1]), int(rb[0]), int(rb[1])))
        out.append((np.array([(p.x, p.y) for p in shape.parts()], np.float64) + 0.5) / s - 0.5)
    return (out[0] + flip_points(out[1], w)) / 2


def choose_blend(ours: np.ndarray, teacher: np.ndarray, truth: np.ndarray) -> tuple[float, dict]:
    """The blend weight of `ours` whose NME against `truth` is lowest, and every blend's
    validation metrics (`train.validation.summarise`)."""
    scores = {b: summarise(nme(b * ours + (1 - b) * teacher, truth)) for b in BLENDS}
    best = min(scores, key=lambda b: scores[b]["val_nme"])
    return best, {f"{b:g}": s for b, s in scores.items()}


def relabel(cache: Cache, model_paths: list[Path], blend: float | str = "auto",
            human_sources: tuple[str, ...] = TrainConfig.human_sources,
            progress: bool = False, subpixel_teacher: bool = False) -> dict:
    """The relabels of `cache`: {"points": (N, K, 2) float32, every face (human ones as they
    were), "relabelled": (N,) bool, "blend", "models", "subpixel_teacher", "teacher_found",
    "fingerprint", "validation"}.

    With `subpixel_teacher` the teacher is first run again on every teacher-labelled crop with
    `teacher_on(subpixel=True)`, and its points replace the old labels where it finds the face
    (the others keep theirs); the models then blend into those. Without models, only that."""
    if not model_paths and not subpixel_teacher:
        raise ValueError("relabel: give models, the sub-pixel teacher, or both")
    cfg = TrainConfig(human_sources=human_sources)
    report: dict = {}
    if not model_paths:
        blend = 0.0
    elif blend == "auto":
        _, val = split(cache, cfg)
        ours = predict(model_paths, cache, val)
        teacher, found = teacher_on(cache, val, subpixel=subpixel_teacher)
        truth = cache.points[val][found]
        blend, scores = choose_blend(ours[found], teacher[found], truth)
        report = {"faces": int(len(val)), "teacher_found": int(found.sum()), "blends": scores,
                  "ours_all_faces": summarise(nme(ours, cache.points[val]))}
    blend = float(blend)
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend {blend}: between 0 (the teacher's labels) and 1 (ours)")
    teach = ~np.isin(np.asarray(cache.names)[cache.source], human_sources)
    points = cache.points.copy()
    idx = np.flatnonzero(teach)
    refound = None
    if subpixel_teacher and len(idx):
        again, found = teacher_on(cache, idx, subpixel=True, progress=progress)
        points[idx[found]] = again[found]
        refound = int(found.sum())
    if blend > 0 and len(idx):
        points[idx] = blend * predict(model_paths, cache, idx, progress=progress) + (1 - blend) * points[idx]
    return {"points": points, "relabelled": teach, "blend": blend,
            "models": [str(p) for p in model_paths], "subpixel_teacher": subpixel_teacher,
            "teacher_found": refound, "fingerprint": fingerprint(cache), "validation": report}


def save(labels: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in labels.items() if k not in ("points", "relabelled")}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, points=labels["points"], relabelled=labels["relabelled"], meta=json.dumps(meta))
    tmp.replace(path)


def relabelled(cache: Cache, path: Path) -> Cache:
    """`cache` with the labels of a relabels file (`save`); RelabelMismatch when the file was
    made for another cache; FileNotFoundError, saying how to make it, when there is none (a run
    resumed on a fresh machine)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no relabels file; make it for this cache with `python -m train.relabel "
                                f"[MODELS] [--subpixel-teacher] --out {path}` (the run's README says which)")
    d = np.load(path, allow_pickle=False)
    meta = json.loads(str(d["meta"]))
    if meta["fingerprint"] != fingerprint(cache) or d["points"].shape != cache.points.shape:
        raise RelabelMismatch(f"{path} was made for another cache (fingerprint {meta['fingerprint']}, "
                              f"this cache's {fingerprint(cache)}): run `python -m train.relabel` again")
    return Cache(cache.images, d["points"], cache.source, cache.group, cache.names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, help="trained models (shipped .pt or a run's best.pt)")
    ap.add_argument("--subpixel-teacher", action="store_true",
                    help="first run the teacher again, sub-pixel (teacher_on), on every teacher face")
    ap.add_argument("--cache", type=Path, default=default_path())
    ap.add_argument("--out", type=Path, default=Path(".cache/relabels.npz"))
    ap.add_argument("--blend", default="auto", help="weight of our prediction, 0..1, or 'auto' (validation)")
    a = ap.parse_args(argv)
    cache = Cache.load(a.cache)
    labels = relabel(cache, a.models, a.blend if a.blend == "auto" else float(a.blend), progress=True,
                     subpixel_teacher=a.subpixel_teacher)
    save(labels, a.out)
    for b, s in labels["validation"].get("blends", {}).items():
        print(f"blend {b}: validation NME {100 * s['val_nme']:.2f} %, median {100 * s['val_median']:.2f} %")
    if a.subpixel_teacher:
        print(f"sub-pixel teacher: found {labels['teacher_found']} of {int(labels['relabelled'].sum())} teacher faces")
    print(f"blend {labels['blend']:g}: {int(labels['relabelled'].sum())} teacher faces relabelled -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
