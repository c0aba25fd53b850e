"""New labels for the teacher-labelled faces of a training cache, from our own trained models.

    python -m train.relabel tracker/models/rt-sep2-192.pt tracker/models/rt-sep.pt --out .cache/relabels.npz

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
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from tracker.core.geometry import apply, invert
from tracker.core.landmarks import IBUG68
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
                mirrored = xy[n:][:, list(IBUG68.flip)]
                mirrored[..., 0] = hw[1] - 1 - mirrored[..., 0]
                xy = (xy[:n] + mirrored) / 2
            total[s:s + n] += apply(invert(canon), xy)
    return (total / len(model_paths)).astype(np.float32)


def teacher_on(cache: Cache, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher (dlib's HOG detector, largest box, then its 68-point predictor) on the cache
    crops `idx`, as it labelled the data (upsampled once: the crops are under 400 px):
    ((len(idx), 68, 2) points in cache-crop pixels, (len(idx),) found)."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as e:
        raise SystemExit(f"--blend auto runs the teacher, dlib ({e}): install the peers extra "
                         "(scripts/install.sh peers) or give --blend") from None
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    pts = np.zeros((len(idx), 68, 2), np.float32)
    found = np.zeros(len(idx), bool)
    for j, i in enumerate(idx):
        img = np.ascontiguousarray(cache.images[i])
        boxes, _, _ = detector.run(img, 1, 0.0)
        if not boxes:
            continue
        box = max(boxes, key=lambda r: r.width() * r.height())
        shape = predictor(img, box)
        pts[j] = [(p.x, p.y) for p in shape.parts()]  # whole-pixel, 0-based pixel centres
        found[j] = True
    return pts, found


def choose_blend(ours: np.ndarray, teacher: np.ndarray, truth: np.ndarray) -> tuple[float, dict]:
    """The blend weight of `ours` whose NME against `truth` is lowest, and every blend's
    validation metrics (`train.validation.summarise`)."""
    scores = {b: summarise(nme(b * ours + (1 - b) * teacher, truth)) for b in BLENDS}
    best = min(scores, key=lambda b: scores[b]["val_nme"])
    return best, {f"{b:g}": s for b, s in scores.items()}


def relabel(cache: Cache, model_paths: list[Path], blend: float | str = "auto",
            human_sources: tuple[str, ...] = TrainConfig.human_sources,
            progress: bool = False) -> dict:
    """The relabels of `cache`: {"points": (N, K, 2) float32, every face (human ones as they
    were), "relabelled": (N,) bool, "blend", "models", "fingerprint", "validation"}."""
    cfg = TrainConfig(human_sources=human_sources)
    report: dict = {}
    if blend == "auto":
        _, val = split(cache, cfg)
        ours = predict(model_paths, cache, val)
        teacher, found = teacher_on(cache, val)
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
    if blend > 0 and len(idx):
        points[idx] = blend * predict(model_paths, cache, idx, progress=progress) + (1 - blend) * points[idx]
    return {"points": points, "relabelled": teach, "blend": blend,
            "models": [str(p) for p in model_paths], "fingerprint": fingerprint(cache), "validation": report}


def save(labels: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in labels.items() if k not in ("points", "relabelled")}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, points=labels["points"], relabelled=labels["relabelled"], meta=json.dumps(meta))
    tmp.replace(path)


def relabelled(cache: Cache, path: Path) -> Cache:
    """`cache` with the labels of a relabels file (`save`); RelabelMismatch when the file was
    made for another cache."""
    d = np.load(path, allow_pickle=False)
    meta = json.loads(str(d["meta"]))
    if meta["fingerprint"] != fingerprint(cache) or d["points"].shape != cache.points.shape:
        raise RelabelMismatch(f"{path} was made for another cache (fingerprint {meta['fingerprint']}, "
                              f"this cache's {fingerprint(cache)}): run `python -m train.relabel` again")
    return Cache(cache.images, d["points"], cache.source, cache.group, cache.names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="trained models (shipped .pt or a run's best.pt)")
    ap.add_argument("--cache", type=Path, default=default_path())
    ap.add_argument("--out", type=Path, default=Path(".cache/relabels.npz"))
    ap.add_argument("--blend", default="auto", help="weight of our prediction, 0..1, or 'auto' (validation)")
    a = ap.parse_args(argv)
    cache = Cache.load(a.cache)
    labels = relabel(cache, a.models, a.blend if a.blend == "auto" else float(a.blend), progress=True)
    save(labels, a.out)
    for b, s in labels["validation"].get("blends", {}).items():
        print(f"blend {b}: validation NME {100 * s['val_nme']:.2f} %, median {100 * s['val_median']:.2f} %")
    print(f"blend {labels['blend']:g}: {int(labels['relabelled'].sum())} teacher faces relabelled -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
