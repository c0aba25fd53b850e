"""Where a model errs on the validation faces: NME per part of the markup and the jaw's error
along and across its line (`tracker.evaluation.scoring.face_errors`).

    python scripts/error_parts.py tracker/models/rt-sep-kd.pt tracker/models/rt-sep2-192.pt
    python scripts/error_parts.py --teacher     # dlib's row (needs the peers extra)
    python scripts/error_parts.py tracker/models/rt-sep2-192.pt+tracker/models/rt-sep-kd.pt
                                                # an ensemble (a distillation teacher): points averaged

Each model runs on the canonical crops of the held-out human-labelled faces (the identity split
training holds out; no flip test, no per-point offsets), from the crop cache cut for its input.
`--teacher` adds the teacher, dlib, run as it labelled the data (`train.relabel.teacher_on`) on
the default cache's crops, on the faces it finds; these faces are in its training set, so its
row is optimistic.
Each model row also says how far its mean sits from the reference model's (`--reference`, by
default the bundled default model) on the same faces, with the 95 % bootstrap interval over the faces
(`tracker.core.metrics.paired_difference`): the test set's share of the noise, not training's.
Writes docs/results/error_parts.{md,json} (a run adds or replaces its models' rows). The same
split on the HELEN test set, beside dlib and mediapipe, is `scripts/eval_helen.py`'s table by
part.
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
from tracker.core.metrics import paired_difference  # noqa: E402
from tracker.core.modelfile import DEFAULT_MODEL, load_torch  # noqa: E402
from tracker.evaluation.report import jsonable, parts_table  # noqa: E402
from tracker.evaluation.scoring import face_errors  # noqa: E402
from train.cache import Cache, default_path, path_for  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.relabel import predict, teacher_on  # noqa: E402
from train.sampling import human_split  # noqa: E402

RESULTS = ROOT / "docs" / "results"
TEACHER = "teacher (dlib), faces it finds; trained on them"


def members(model: str) -> list[Path]:
    """The model files of a `models` argument: "A.pt+B.pt" is an ensemble of two."""
    return [Path(m) for m in model.split("+")]


def measure(model: str | None, cache: Cache) -> dict:
    """{"model", "faces", "nme", "median", "parts": {key: mean}, "per_face": [NME, ...]} on the
    validation faces; `model` None: the teacher, on the faces it finds; "A.pt+B.pt": the
    models' points averaged (`train.relabel.predict`), as a distillation ensemble teaches."""
    _, val = human_split(cache, TrainConfig())
    if model is None:
        pred, found = teacher_on(cache, val)
        pred, val = pred[found], val[found]
    else:
        pred = predict(members(model), cache, val, flip=False)
    errs = [face_errors(p, t) for p, t in zip(pred, cache.points[val])]
    io = np.array([e["io"] for e in errs])
    parts = {k: float(np.mean([e[k] for e in errs])) for k in errs[0] if ":" in k}
    return {"model": TEACHER if model is None else str(model), "faces": len(val),
            "nme": float(io.mean()), "median": float(np.median(io)), "parts": parts,
            "per_face": io.tolist()}


def versus(row: dict, ref: dict | None) -> str:
    """The row's mean NME minus the reference's on the same faces, in points, with its 95 %
    interval; blank where there is no reference row, the faces differ (the teacher's), or the
    row was written before rows kept their per-face errors (its model no longer in the tree)."""
    if ref is None or row is ref or len(row.get("per_face", ())) != len(ref.get("per_face", ())):
        return ""
    d, lo, hi = paired_difference(ref["per_face"], row["per_face"])
    return f"{d * 100:+.2f} [{lo * 100:+.2f}, {hi * 100:+.2f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="shipped .pt files or training checkpoints; "
                    "A.pt+B.pt: their ensemble")
    ap.add_argument("--teacher", action="store_true", help="add dlib's row (the peers extra)")
    ap.add_argument("--reference", default=f"tracker/models/{DEFAULT_MODEL}.pt",
                    help="the row the others are compared with, face by face")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if not a.models and not a.teacher:
        ap.error("name a model, or --teacher")
    path = a.out / "error_parts.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    rows = {r["model"]: r for r in old.get("rows", [])}
    # (crop cache, model) pairs; None: the teacher, on the default cache's crops (as it labelled)
    jobs = [(path_for(load_torch(members(m)[0])[1].model.input_hw[0]), m) for m in a.models]
    jobs += [(default_path(), None)] if a.teacher else []
    cache_path, cache = None, None  # one cache in memory at a time (2 GB or more each)
    for want, model in jobs:
        if want != cache_path:
            cache_path, cache = want, None  # let the last one go before the next is read
            cache = Cache.load(want)
        row = measure(model, cache)
        rows[row["model"]] = row
        print(f"{row['model']}: NME {row['nme'] * 100:.2f} %", file=sys.stderr)
    doc = {"machine": describe(), "rows": list(rows.values())}
    a.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(doc), indent=1))
    lines = ["# Error by part on the validation faces", "",
             "`python scripts/error_parts.py MODEL ...`: held-out human-labelled 300-W faces "
             "(identity split), canonical crops, no flip test, no offsets; mean NME_io % per part "
             "of the markup; `jaw:along` and `jaw:across` split the jaw points' error on the "
             "labelled jaw line's tangent (`tracker.core.metrics.contour_components`). "
             f"`vs ref.`: the row's mean minus `{a.reference}`'s on the same faces, in points, "
             "with its 95 % bootstrap interval over the faces.", "",
             parts_table([([r["model"], str(r["faces"]), f"{r['nme'] * 100:.2f}", f"{r['median'] * 100:.2f}",
                            versus(r, rows.get(a.reference))], r["parts"]) for r in doc["rows"]],
                         ["model", "faces", "NME %", "median %", "vs ref."])]
    lines += ["", f"Machine: {describe()}.", ""]
    (a.out / "error_parts.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
