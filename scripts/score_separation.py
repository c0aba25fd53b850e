"""How well the model's confidence (mean heatmap peak) tells a face from a lost track: the
evidence behind `TrackerConfig.lost_threshold`.

    python scripts/score_separation.py [--model tracker/models/rt-m.onnx] [--cache .cache/train_crops.npz]
                                       [--videos ../shared/data/videos]

On the validation faces of the crop cache (the human identity groups that training holds out;
never the test set) it scores four kinds of crop with the model:
- aligned: the crop from the face's landmark box (what tracking gives on a good frame);
- drift 25 % / drift 50 %: that box moved by a quarter / half of its side in a random
  direction (a track sliding off the face);
- off-face: a box a third of the face's size in a corner of the cached crop (hair, neck,
  background: what a track lands on when the face is gone);
and, with --videos, video frames aligned from their labels' box (every 15th of the first 150
frames of each 300VW-layout clip): motion blur, turned heads and compression that photos lack.
It prints percentiles of each and, for a range of thresholds, the share of aligned faces a
threshold would drop and the share of drifted and off-face crops it would keep. Writes
docs/results/score_separation.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import describe  # noqa: E402
from tracker.core.geometry import points_box  # noqa: E402
from tracker.engines.registry import load_backend, resolve_model  # noqa: E402
from tracker.runtime.align import Aligner  # noqa: E402

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
KINDS = ("aligned", "drift 25 %", "drift 50 %", "off-face")


def boxes_of(points: np.ndarray, side: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(N, K, 2) cache-crop points -> {kind: (N, 4) boxes} in cache-crop pixels."""
    box = np.stack([points_box(p) for p in points])
    size = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])[:, None]
    angle = rng.uniform(0, 2 * np.pi, len(box))
    unit = np.stack([np.cos(angle), np.sin(angle)], 1)
    out = {"aligned": box}
    for kind, f in (("drift 25 %", 0.25), ("drift 50 %", 0.5)):
        d = unit * size * f
        out[kind] = box + np.concatenate([d, d], 1)
    s = size[:, 0] / 3
    corner = rng.integers(0, 4, len(box))
    x0 = np.where(corner % 2 == 0, 2.0, side - 2 - s)
    y0 = np.where(corner < 2, 2.0, side - 2 - s)
    out["off-face"] = np.stack([x0, y0, x0 + s, y0 + s], 1)
    return out


def video_scores(aligner: Aligner, root: Path, first: int = 150, every: int = 15) -> list[float]:
    """Mean peaks of clip frames aligned from their labels' box."""
    from tracker.core.datasets import video_clip
    from tracker.evaluation.videos import clip_folders, numbered_frames

    out = []
    for clip in clip_folders(root):
        video, labels = video_clip(clip)
        for number, fr in numbered_frames(video, first):
            if number % every == 1 and number in labels:
                _, s = aligner.align(fr.image, points_box(labels[number])[None])
                out.append(float(s.mean()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model file (default: the bundled model)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train_crops.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=Path, default=None, help="a folder of 300VW-layout clips")
    a = ap.parse_args(argv)
    from train.cache import Cache
    from train.config import TrainConfig
    from train.loop import split

    cache = Cache.load(a.cache)
    _, val = split(cache, TrainConfig())
    model = resolve_model(a.model, ".onnx")
    aligner = Aligner(load_backend("onnxruntime", model))
    rng = np.random.default_rng(a.seed)
    boxes = boxes_of(cache.points[val], cache.images.shape[1], rng)
    scores = {k: [] for k in KINDS}
    for j, i in enumerate(val):
        image = cache.images[i]
        for k in KINDS:
            _, s = aligner.align(image, boxes[k][j][None])
            scores[k].append(float(s.mean()))
    if a.videos is not None:
        scores["aligned (video frames)"] = video_scores(aligner, a.videos)
    scores = {k: np.array(v) for k, v in scores.items()}

    pct = (1, 5, 50, 95, 99)
    rows = {k: {f"p{p}": float(np.percentile(v, p)) for p in pct} for k, v in scores.items()}
    video = scores.get("aligned (video frames)", np.zeros(0))
    sweep = [{"threshold": t, "aligned dropped": float((scores["aligned"] < t).mean()),
              **({"video frames dropped": float((video < t).mean())} if len(video) else {}),
              **{f"{k} kept": float((scores[k] >= t).mean()) for k in KINDS[1:]}} for t in THRESHOLDS]
    doc = {"model": str(model), "faces": int(len(val)), "machine": describe(), "seed": a.seed,
           "percentiles": rows, "sweep": sweep}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "score_separation.json").write_text(json.dumps(doc, indent=1))
    md = [f"# Confidence (mean heatmap peak) of {Path(model).name} on {len(val)} validation faces", "",
          "| crop | " + " | ".join(f"p{p}" for p in pct) + " |", "|---|" + "---:|" * len(pct)]
    md += [f"| {k} | " + " | ".join(f"{rows[k][f'p{p}']:.3f}" for p in pct) + " |" for k in rows]
    cols = [c for c in sweep[0] if c != "threshold"]
    md += ["", "| threshold | " + " | ".join(f"{c} %" for c in cols) + " |", "|---:|" + "---:|" * len(cols)]
    md += [f"| {r['threshold']:.2f} | " + " | ".join(f"{r[c] * 100:.1f}" for c in cols) + " |" for r in sweep]
    md += ["", "`python scripts/score_separation.py`; " + describe()]
    (a.out / "score_separation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
