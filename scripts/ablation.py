"""Ablation of the paper's components on our data (paper Tables 1-3), reported on
300w/helen_testset with faces cropped from their ground-truth boxes.

    python scripts/ablation.py ../shared/data --model tracker/models/rt-m.pt   # decoders only
    python scripts/ablation.py ../shared/data --train                          # + short trainings

1. Decoders on one trained model: argmax, argmax + 0.25 shift, global soft-argmax, local
   soft-argmax with 3x3, 5x5 and 7x7 windows.
2. With --train, short runs of the small real-time preset (same schedule each, runs/ablation/*):
   continuous vs quantised (round) targets, Siamese on/off, and human-only / teacher-only /
   mixed labels. Runs resume if interrupted. The schedule is short (CPU budget), so read the
   differences as indications, not as the paper's converged numbers.
Writes docs/results/ablation.md and .json.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.core.codec import HeatmapCodec  # noqa: E402
from tracker.core.datasets import image_folder, read_image  # noqa: E402
from tracker.core.geometry import apply, invert, landmarks_crop_transform, warp  # noqa: E402
from tracker.core.metrics import auc_fr, nme  # noqa: E402
from tracker.core.modelfile import ModelInfo, load_torch  # noqa: E402

DECODERS = [("argmax", "argmax", 5), ("argmax + 0.25 shift", "argmax_shift", 5),
            ("global soft-argmax", "soft_argmax", 5), ("local soft-argmax 3x3", "local_soft_argmax", 3),
            ("local soft-argmax 5x5", "local_soft_argmax", 5), ("local soft-argmax 7x7", "local_soft_argmax", 7)]

HUMAN = {"300w_lfpw": 0.4, "300w_helen": 0.4, "300w_afw": 0.2}
TEACHER = {"lfw": 0.3, "utkface": 0.2, "misc": 0.06, "photos": 0.04, "videos": 0.4}

TRAININGS = {  # name: overrides of the short base config
    "continuous, mixed labels (base)": {},
    "quantised (round) targets": {"encoding": "round"},
    "Siamese consistency": {"siamese": True},
    "human labels only": {"source_weights": HUMAN},
    "teacher labels only": {"source_weights": TEACHER},
}


def heatmaps_on_gt_crops(net, info: ModelInfo, faces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K, h, w) heatmaps of every face cropped from its ground-truth box, the (N, 2, 3)
    crop transforms and (N, 68, 2) ground truth."""
    import torch

    hms, ms, gts = [], [], []
    for img, gt in faces:
        m = landmarks_crop_transform(gt, info.model.input_hw, info.crop_ratio)
        x = info.normalise(warp(img, m, info.model.input_hw)[None])
        with torch.no_grad():
            hms.append(net(torch.from_numpy(x)).numpy()[0])
        ms.append(m), gts.append(gt)
    return np.stack(hms), np.stack(ms), np.stack(gts)


def score(hms, ms, gts, codec: HeatmapCodec) -> dict:
    xy, _ = codec.decode(hms)
    pred = apply(invert(ms), xy)
    e = nme(pred, gts)
    a8, f8 = auc_fr(e, 0.08)
    return {"nme_%": 100 * float(e.mean()), "median_%": 100 * float(np.median(e)),
            "auc@0.08": a8, "fr@0.08_%": 100 * f8}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--model", type=Path, default=ROOT / "tracker/models/rt-m.pt")
    ap.add_argument("--train", action="store_true", help="also run the short training ablations")
    ap.add_argument("--cache", default=".cache/train_crops.npz")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--samples-per-epoch", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/ablation")
    a = ap.parse_args(argv)
    faces = [(read_image(r.image), r.points) for r in image_folder(a.data_root / "300w/helen_testset")]
    print(f"helen_testset: {len(faces)} faces")
    results = {"decoders": {}, "trainings": {}, "test_set": "300w/helen_testset, ground-truth boxes"}

    net, info = load_torch(a.model)
    hms, ms, gts = heatmaps_on_gt_crops(net, info, faces)
    for name, dec, win in DECODERS:
        results["decoders"][name] = score(hms, ms, gts, replace(info.codec, decoder=dec, window=win))
        print(name, results["decoders"][name])

    old = a.out.with_suffix(".json")
    if not a.train and old.is_file():  # keep the training rows of an earlier --train run
        results["trainings"] = json.loads(old.read_text()).get("trainings", {})
    if a.train:
        from train.config import RECIPES
        from train.loop import Trainer

        base = replace(RECIPES["rt"], preset="rt-s", epochs=a.epochs, samples_per_epoch=a.samples_per_epoch,
                       milestones=(a.epochs - 2, a.epochs - 1), cache=a.cache)
        cache = None
        for name, over in TRAININGS.items():
            slug = name.split(" (")[0].replace(",", "").replace(" ", "-")
            cfg = replace(base, out=f"runs/ablation/{slug}", **over)
            if cache is None:
                from train.cache import Cache

                cache = Cache.load(Path(cfg.cache))
            tr = Trainer(cfg, cache)
            tr.fit()
            net, info = load_torch(Path(cfg.out) / "last.pt")
            hms, ms, gts = heatmaps_on_gt_crops(net, info, faces)
            row = {"local soft-argmax": score(hms, ms, gts, replace(info.codec, encoding="continuous")),
                   "argmax": score(hms, ms, gts, replace(info.codec, decoder="argmax"))}
            results["trainings"][name] = row
            print(name, row)

    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [f"Test set: {results['test_set']}; model for the decoders: `{a.model.name}`.", "",
             "| decoder | NME_io % | median % | AUC@0.08 | FR@0.08 % |", "|---|---|---|---|---|"]
    for n, r in results["decoders"].items():
        lines.append(f"| {n} | {r['nme_%']:.2f} | {r['median_%']:.2f} | {r['auc@0.08']:.3f} | {r['fr@0.08_%']:.1f} |")
    if results["trainings"]:
        lines += ["", f"Short trainings (rt-s, {a.epochs} x {a.samples_per_epoch} samples each):", "",
                  "| training | NME_io % (local soft-argmax) | NME_io % (argmax) | AUC@0.08 | FR@0.08 % |",
                  "|---|---|---|---|---|"]
        for n, r in results["trainings"].items():
            s, g = r["local soft-argmax"], r["argmax"]
            lines.append(f"| {n} | {s['nme_%']:.2f} | {g['nme_%']:.2f} | {s['auc@0.08']:.3f} | {s['fr@0.08_%']:.1f} |")
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
