"""Per-point offsets for a trained model (`tracker.core.calibration`): its mean residual on the
human-labelled training faces, scored on the validation faces with and without them.

    python scripts/calibrate_offsets.py tracker/models/rt-m.pt            # measure only
    python scripts/calibrate_offsets.py tracker/models/rt-m.pt --write    # and store them

The offsets come from the training faces of the 300-W sources (canonical crops from the crop
cache, no mirror); the validation faces (the identity split training holds out) decide
whether they pay; the test set plays no part. `--write` stores them in the model's metadata:
MODEL.pt and the .onnx of the same name beside it, weights untouched. Writes
docs/results/offsets.{md,json} (a run adds or replaces its model's row).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import describe  # noqa: E402
from tracker.core.calibration import add_offsets, mirror_parts, residual_offsets  # noqa: E402
from tracker.core.landmarks import SCHEMES  # noqa: E402
from tracker.core.metrics import nme  # noqa: E402
from tracker.core.modelfile import load_torch  # noqa: E402
from tracker.evaluation.report import jsonable  # noqa: E402
from train.cache import Cache, path_for  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.relabel import predict  # noqa: E402
from train.sampling import human_split  # noqa: E402
from train.validation import summarise  # noqa: E402

RESULTS = ROOT / "docs" / "results"


def measure(model: Path, cache: Cache) -> tuple[np.ndarray, dict, int, int]:
    """(offsets (K, 2) from the human training faces, validation scores {"none", "offsets",
    "mirror part only", "rest only"} -> `summarise` dict, training faces, validation faces)."""
    _, info = load_torch(model)
    scheme = SCHEMES[info.scheme]
    train, val = human_split(cache, TrainConfig())
    print(f"{model}: {len(train)} human training faces, {len(val)} validation faces", file=sys.stderr)
    pred_t = predict([model], cache, train, progress=True, flip=False)
    offsets = residual_offsets(pred_t, cache.points[train], scheme.outer_eye_corners)
    anti, sym = mirror_parts(offsets, list(scheme.flip))
    pred_v, truth_v = predict([model], cache, val, flip=False), cache.points[val]
    scores = {}
    for name, off in (("none", None), ("offsets", offsets), ("mirror part only", anti), ("rest only", sym)):
        p = pred_v if off is None else add_offsets(pred_v, off, scheme.outer_eye_corners)
        scores[name] = summarise(nme(p, truth_v))
        print(f"{name:17s} val NME {scores[name]['val_nme'] * 100:.3f} %, median "
              f"{scores[name]['val_median'] * 100:.3f} %", file=sys.stderr)
    return offsets, scores, len(train), len(val)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a shipped .pt (or a training checkpoint, measure only)")
    ap.add_argument("--cache", type=Path, default=None, help="crop cache (default: the one for its input size)")
    ap.add_argument("--write", action="store_true", help="store the offsets in MODEL.pt and MODEL.onnx")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    _, info = load_torch(a.model)
    cache = Cache.load(a.cache or path_for(info.model.input_hw[0]))
    offsets, scores, n_train, n_val = measure(a.model, cache)
    row = {"model": str(a.model), "train_faces": n_train, "val_faces": n_val,
           "mean_offset_x_pct": float(offsets[:, 0].mean() * 100),
           "mean_offset_y_pct": float(offsets[:, 1].mean() * 100),
           "val": scores, "offsets": offsets, "written": a.write}
    if a.write:
        from tracker.engines.export import rewrite_info

        new = dataclasses.replace(info, offsets=tuple(round(float(v), 6) for v in offsets.ravel()))
        for path in (a.model, a.model.with_suffix(".onnx")):
            if path.is_file():
                rewrite_info(path, new)
                print(f"wrote the offsets into {path}", file=sys.stderr)
    report(row, a.out)
    return 0


def report(row: dict, out: Path) -> None:
    path = out / "offsets.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    rows = {r["model"]: r for r in old.get("rows", [])}
    rows[row["model"]] = row
    doc = {"machine": describe(), "rows": list(rows.values())}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(doc), indent=1))
    lines = ["# Per-point offsets (`tracker.core.calibration`)", "",
             "`python scripts/calibrate_offsets.py MODEL`: each model's mean residual per point on "
             "the human-labelled training faces (canonical crops, no mirror), in inter-ocular units; "
             "validation NME (the held-out faces, canonical crops) without and with them, and with "
             "only their mirror-antisymmetric part (what training on mirrored faces cannot learn) or "
             "only the rest.", "",
             "| model | mean offset x, y (% IOD) | val NME %: none | offsets | mirror part only "
             "| rest only | val median %: none | offsets |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        v = r["val"]
        lines.append(f"| {r['model']} | {r['mean_offset_x_pct']:+.2f}, {r['mean_offset_y_pct']:+.2f} "
                     f"| {v['none']['val_nme'] * 100:.2f} | {v['offsets']['val_nme'] * 100:.2f} "
                     f"| {v['mirror part only']['val_nme'] * 100:.2f} | {v['rest only']['val_nme'] * 100:.2f} "
                     f"| {v['none']['val_median'] * 100:.2f} | {v['offsets']['val_median'] * 100:.2f} |")
    lines += ["", f"Machine: {describe()}.", ""]
    (out / "offsets.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
