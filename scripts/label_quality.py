"""How good are the labels we could train on? The teacher (dlib, as it labelled the data), our
models (flip test, alone and averaged) and blends of the two, against the human labels of the
validation faces (held-out 300-W identities; never the test set). Decides the relabelling lever
of `train.relabel`: relabel only with what beats the teacher here. Beside it, each model on 300
of its own human-labelled training faces (no flip test): how well it fits what it learnt from,
which says whether the labels or the model limit it.

    python scripts/label_quality.py tracker/models/rt-sep2-192.pt tracker/models/rt-sep-kd.pt

Writes docs/results/label_quality.md and .json. Needs the peers extra (dlib).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scripts.machine import describe  # noqa: E402
from tracker.core.metrics import nme  # noqa: E402
from tracker.core.modelfile import load_torch  # noqa: E402
from train.cache import Cache, default_path  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.relabel import choose_blend, predict, teacher_on  # noqa: E402
from train.sampling import human_split  # noqa: E402
from train.validation import summarise, validate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--cache", type=Path, default=default_path())
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/label_quality")
    a = ap.parse_args(argv)
    cache = Cache.load(a.cache)
    cfg = TrainConfig()
    train, val = human_split(cache, cfg)
    truth = cache.points[val]
    teacher, found = teacher_on(cache, val)
    fine, _ = teacher_on(cache, val, subpixel=True)  # the same detector: the same faces found
    teachers = {"teacher": teacher, "sub-pixel teacher": fine}
    rows = {"teacher (dlib), faces it finds": summarise(nme(teacher[found], truth[found])),
            "teacher (dlib) sub-pixel: 4x upscaled and mirrored, averaged (`teacher_on(subpixel=True)`), "
            "faces it finds": summarise(nme(fine[found], truth[found]))}
    blends = {}
    single = {m.name: predict([m], cache, val) for m in a.models}
    labellers = dict(single)
    if len(single) > 1:  # `predict` of several models is the mean of theirs
        labellers[" + ".join(single)] = np.mean(list(single.values()), axis=0)
    for name, ours in labellers.items():
        name += ", flip test"
        rows[f"{name}, all faces"] = summarise(nme(ours, truth))
        rows[f"{name}, faces the teacher finds"] = summarise(nme(ours[found], truth[found]))
        for tname, t in teachers.items():
            best, scores = choose_blend(ours[found], t[found], truth[found])
            blends[f"{name}, with the {tname}"] = {"best": best, "scores": scores}
    seen = np.random.default_rng(0).choice(train, 300, replace=False)
    fit = {}
    for m in a.models:
        net, info = load_torch(m)
        fit[m.name] = validate(net, info.codec, cache, seen)
    result = {"faces": int(len(val)), "training_fit": fit, "teacher_found": int(found.sum()), "rows": rows, "blends": blends,
              "machine": describe()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = ["# Label quality on the validation faces", "",
             f"`python scripts/label_quality.py {' '.join(str(m) for m in a.models)}`: {len(val)} held-out "
             f"human-labelled 300-W faces (identity split), the teacher finds {int(found.sum())}. NME over "
             "the outer-eye-corner distance. The teacher runs as it labelled the data (HOG box on the crop, "
             "then its 68-point predictor); it was trained on 300-W's training images, these included, so "
             "its numbers here are optimistic.", "",
             "| labeller | NME % | median % | AUC@0.08 |", "|---|---:|---:|---:|"]
    for n, r in rows.items():
        lines.append(f"| {n} | {100 * r['val_nme']:.2f} | {100 * r['val_median']:.2f} | {r['val_auc@0.08']:.3f} |")
    lines += ["", "Blends `b` x ours + (1 - b) x teacher (whole-pixel or sub-pixel), on the faces the teacher finds (NME %, median %):", "",
              "| ours | " + " | ".join(f"b = {b}" for b in next(iter(blends.values()))["scores"]) + " | best b |",
              "|---|" + "---:|" * (len(next(iter(blends.values()))["scores"]) + 1)]
    for n, bl in blends.items():
        cells = [f"{100 * s['val_nme']:.2f} / {100 * s['val_median']:.2f}" for s in bl["scores"].values()]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {bl['best']:g} |")
    lines += ["", "Each model on 300 of its own human-labelled training faces (no flip test; against "
              "its validation NME above): NME % / median %", ""]
    lines += [f"- {n}: {100 * r['val_nme']:.2f} / {100 * r['val_median']:.2f}" for n, r in fit.items()]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
