"""Ablation of the paper's components and of the accuracy levers on our data (paper Tables
1-3), from one trained model.

    python scripts/ablation.py ../shared/data                    # decoders only
    python scripts/ablation.py ../shared/data --train            # + the fine-tuning arms
    python scripts/ablation.py ../shared/data --train --arms control quantised

1. Decoders on one trained model (`--model`): argmax, argmax + 0.25 shift, global soft-argmax,
   local soft-argmax with 3x3, 5x5 and 7x7 windows.
2. With --train, fine-tuning arms: each starts from the same converged weights (`--init`, the
   default model) and trains `--epochs` x `--samples-per-epoch` faces under one change
   (continuous vs quantised targets, Siamese on/off, label mix, loss, distillation), the same
   schedule for all (runs/ablation-ft/<arm>, resumed if interrupted).
   Two control arms with different seeds show how far runs differ by chance. Starting from a
   converged model makes the arms mean something on a CPU budget (from scratch, short runs sit
   at 12 % NME, where nothing separates); read each row as "what this change does to a
   converged model in N faces", not as the paper's training from scratch.
Each arm's last weights are scored on the validation faces (held-out human-labelled 300-W
identities: the numbers that decide) and on 300w/helen_testset from ground-truth boxes (the
report). Writes docs/results/ablation.md and .json.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
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

#: slug: (row name, overrides of the fine-tuning base config). The base is the default model's
#: own recipe (train/checkpoints/rt-m-stage5/config.json) on a short schedule.
ARMS = {
    "control": ("continuous targets, L2, mixed labels (control)", {}),
    "control-seed1": ("control, another seed", {"seed": 1}),
    "quantised": ("quantised (round) targets", {"encoding": "round"}),
    "siamese": ("Siamese consistency", {"siamese": True}),
    "human-only": ("human labels only", {"source_weights": HUMAN}),
    "teacher-only": ("teacher labels only", {"source_weights": TEACHER}),
    "awing": ("adaptive wing loss", {"loss": "awing"}),
    "distil": ("distilled from rt-sep2-192 (+ labels)",
               {"distil_from": str(ROOT / "tracker/models/rt-sep2-192.pt")}),
}
BASE_CONFIG = ROOT / "train/checkpoints/rt-m-stage5/config.json"


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
    ap.add_argument("--train", action="store_true", help="also run the fine-tuning arms")
    ap.add_argument("--arms", nargs="*", help=f"which arms (default all): {list(ARMS)}")
    ap.add_argument("--init", type=Path, default=ROOT / "tracker/models/rt-m.pt")
    ap.add_argument("--cache", default=".cache/train_crops.npz")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples-per-epoch", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs/ablation-ft")
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
    if old.is_file():  # keep the rows of arms not run this time
        kept = json.loads(old.read_text())
        results["trainings"] = {k: v for k, v in kept.get("trainings", {}).items() if k in ARMS}
        if "fine_tuning" in kept:
            results["fine_tuning"] = kept["fine_tuning"]
    if a.train:
        results["fine_tuning"] = {"init": str(a.init.relative_to(ROOT) if a.init.is_relative_to(ROOT) else a.init),
                                  "epochs": a.epochs,
                                  "samples_per_epoch": a.samples_per_epoch, "lr": a.lr}
        from train.cache import Cache

        cache = Cache.load(Path(a.cache))  # once for every arm (GBs)
        for slug in a.arms or list(ARMS):
            results["trainings"][slug] = train_arm(slug, a, cache, faces)
            print(slug, results["trainings"][slug])
            write(results, a)  # after every arm: an interrupted run loses nothing it scored
    write(results, a)
    print(a.out.with_suffix(".md").read_text())
    return 0


def write(results: dict, a) -> None:
    a.out.parent.mkdir(parents=True, exist_ok=True)
    ordered = {k: results["trainings"][k] for k in ARMS if k in results["trainings"]}
    results = {**results, "trainings": ordered}
    a.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    a.out.with_suffix(".md").write_text(report(results, a.model.name))


def train_arm(slug: str, a, cache, faces) -> dict:
    """Fine-tune one arm (resuming its run folder) and score its last weights on validation
    and on the test faces."""
    from train.config import TrainConfig
    from train.loop import Trainer

    if slug not in ARMS:
        raise SystemExit(f"unknown arm {slug!r}; one of {list(ARMS)}")
    cfg = TrainConfig.load(BASE_CONFIG, out=str(a.runs / slug), init=str(a.init), epochs=a.epochs,
                           samples_per_epoch=a.samples_per_epoch, lr=a.lr,
                           milestones=[a.epochs - 1], threads=a.threads, cache=a.cache,
                           **ARMS[slug][1])
    tr = Trainer(cfg, cache)
    tr.fit()
    t0 = time.time()
    val = tr.validate()
    net, info = load_torch(Path(cfg.out) / "last.pt")
    hms, ms, gts = heatmaps_on_gt_crops(net, info, faces)
    metrics = list(csv.DictReader((Path(cfg.out) / "metrics.csv").open()))
    fps = float(np.mean([float(r["faces_per_s"]) for r in metrics]))
    return {"name": ARMS[slug][0], "val": val, "test": score(hms, ms, gts, info.codec),
            "faces_per_s": fps, "eval_s": time.time() - t0}


def report(results: dict, model_name: str) -> str:
    lines = [f"Test set: {results['test_set']}; model for the decoders: `{model_name}`.", "",
             "| decoder | NME_io % | median % | AUC@0.08 | FR@0.08 % |", "|---|---|---|---|---|"]
    for n, r in results["decoders"].items():
        lines.append(f"| {n} | {r['nme_%']:.2f} | {r['median_%']:.2f} | {r['auc@0.08']:.3f} | {r['fr@0.08_%']:.1f} |")
    ft = results.get("fine_tuning")
    if results["trainings"] and ft:
        lines += ["", f"Fine-tuning arms: each from `{ft['init']}`, {ft['epochs']} x {ft['samples_per_epoch']} "
                  f"faces, Adam {ft['lr']:g} then a tenth for the last epoch; last weights. Validation: "
                  "held-out human-labelled 300-W identities (decides); test: helen_testset, "
                  "ground-truth boxes (reported only).", "",
                  "| arm | val NME % | val median % | val AUC@0.08 | test NME % | test median % | "
                  "test AUC@0.08 | faces/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["trainings"].values():
            v, t = r["val"], r["test"]
            lines.append(f"| {r['name']} | {100 * v['val_nme']:.2f} | {100 * v['val_median']:.2f} | "
                         f"{v['val_auc@0.08']:.3f} | {t['nme_%']:.2f} | {t['median_%']:.2f} | "
                         f"{t['auc@0.08']:.3f} | {r['faces_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
