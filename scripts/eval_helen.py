"""Headline accuracy table on the 300-W HELEN test faces (330 human-labelled faces).

    python scripts/eval_helen.py /work/shared/data/300w/helen_testset
    python scripts/eval_helen.py DATA --methods ours-detector,ours-gt-box   # rerun ours only

Methods (rows):
- ours-detector: the tracker as deployed on a still (its own face detector; a face it does not
  find counts as NME 1.0);
- ours-gt-box: our aligner on a crop from the ground-truth landmarks' box (the papers' protocol);
- ours-detector+flip, ours-gt-box+flip: the same with test-time flip augmentation (each face
  also inferred mirrored, heatmaps averaged);
- mediapipe: Face Mesh (static images, own detector) mapped to the 68 iBUG points
  (`tracker.evaluation.peers.MEDIAPIPE_TO_IBUG68`);
- dlib: the teacher that labelled our videos (HOG detector + shape_predictor_68_face_landmarks).

Columns: inter-ocular NME (outer eye corners) on 68 points, mean and median in %, AUC and
failure rate at 0.08 and 0.10, faces missed, ms per face (detection included for the detector
rows); the same on the 49 inner points (no jaw), the measure where mediapipe's contour,
which is not iBUG's jaw line, does not count (a second table). Writes docs/results/helen_test.{md,json} and
helen_test_ced.png; a run with a subset of --methods keeps the other rows of an existing JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import describe  # noqa: E402
from tracker.core.datasets import image_folder  # noqa: E402
from tracker.core.metrics import plot_ced  # noqa: E402
from tracker.evaluation.images import evaluate_images  # noqa: E402
from tracker.evaluation.report import jsonable, parts_table  # noqa: E402

METHODS = ("ours-detector", "ours-gt-box", "ours-detector+flip", "ours-gt-box+flip", "mediapipe", "dlib")
LABELS = {
    "ours-detector": "ours (own detector)",
    "ours-gt-box": "ours (crop from ground-truth box)",
    "ours-detector+flip": "ours + flip test (own detector)",
    "ours-gt-box+flip": "ours + flip test (crop from ground-truth box)",
    "mediapipe": "mediapipe Face Mesh -> 68 (own detector)",
    "dlib": "dlib teacher (HOG + 68-point ERT)",
}


machine = describe  # kept under this name for scripts/eval_peers.py


def file_id(path: Path) -> dict:
    h = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return {"path": str(path), "sha256_16": h, "bytes": path.stat().st_size}


def build(method: str, model: str | None, backend: str):
    """(model object, protocol, description of what ran) for a method name."""
    if method.startswith("ours-"):
        from tracker.engines.registry import load_backend, resolve_model

        path = resolve_model(model, ".pt" if backend.startswith("torch") else ".onnx")
        flip = method.endswith("+flip")
        desc = {"model": file_id(Path(path)), "backend": backend, "flip_test": flip}
        if method.startswith("ours-gt-box"):
            from tracker.runtime.align import Aligner

            return Aligner(load_backend(backend, path), flip_test=flip), "gt-box", desc
        from tracker.runtime.config import TrackerConfig
        from tracker.runtime.tracker import Tracker

        cfg = TrackerConfig(model=str(path), backend=backend, flip_test=flip)
        desc["config"] = repr(cfg)
        return Tracker(cfg), "detector", desc
    if method == "mediapipe":
        import mediapipe

        from tracker.evaluation.peers import MediapipeMesh68

        return MediapipeMesh68(static_image_mode=True), "detector", {"mediapipe": mediapipe.__version__}
    if method == "dlib":
        import dlib

        from tracker.evaluation.peers import Dlib68

        return Dlib68(), "detector", {"dlib": dlib.__version__}
    raise SystemExit(f"unknown method {method!r}: one of {', '.join(METHODS)}")


def table(rows: list[dict], kind: str = "io") -> str:
    """Markdown table of the rows on 68 points ("io") or the 49 inner points ("io49")."""
    head = ("| method | protocol | faces | missed | NME_io mean % | median % | AUC@0.08 | FR@0.08 % "
            "| AUC@0.10 | FR@0.10 % | ms/face |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        io = r[kind]
        lines.append(
            f"| {LABELS.get(r['method'], r['method'])} | {r['protocol']} | {r['faces']} | {r['missed']} "
            f"| {io['mean'] * 100:.2f} | {io['median'] * 100:.2f} | {io['auc@0.08']:.3f} "
            f"| {io['fr@0.08'] * 100:.1f} | {io['auc@0.1']:.3f} | {io['fr@0.1'] * 100:.1f} "
            f"| {r['ms_per_face']:.1f} |")
    return "\n".join(lines)


def parts_md(rows: list[dict]) -> str:
    """Markdown table of each row's mean NME per part of the markup over the faces it found
    (`aggregate_images`' "parts"), the jaw's split along and across its line beside it."""
    rows = [r for r in rows if r.get("parts")]
    if not rows:
        return "(no row has part errors: rerun its method)"
    return parts_table([([LABELS.get(r["method"], r["method"]), str(r["faces"] - r["missed"])], r["parts"])
                        for r in rows], ["method", "faces found"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the helen_testset folder (images + .pts)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--model", default=None, help="our model file (default: the bundled default model)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--limit", type=int, default=None, help="first N faces only (a quick check)")
    a = ap.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    records = list(image_folder(a.data))
    if a.limit:
        records = records[:a.limit]
    print(f"{len(records)} faces in {a.data}", file=sys.stderr)

    a.out.mkdir(parents=True, exist_ok=True)
    json_path = a.out / "helen_test.json"
    old = json.loads(json_path.read_text()) if json_path.is_file() else {}
    rows = {r["method"]: r for r in old.get("rows", [])}
    for m in methods:
        model, protocol, desc = build(m, a.model, a.backend)
        t0 = time.perf_counter()
        res = evaluate_images(records, model, protocol, name=m)
        s = res["summary"]
        rows[m] = {"method": m, "protocol": protocol, **s, "ran": desc,
                   "wall_s": time.perf_counter() - t0,
                   "errors_io": [r.errors["io"] for r in res["rows"]],
                   "images": [Path(r.image).name for r in res["rows"]]}
        print(f"{m}: NME_io {s['io']['mean'] * 100:.2f} %, median {s['io']['median'] * 100:.2f} %, "
              f"AUC@0.08 {s['io']['auc@0.08']:.3f}, missed {s['missed']}, {s['ms_per_face']:.1f} ms/face",
              file=sys.stderr)
    ordered = [rows[m] for m in METHODS if m in rows] + [r for k, r in rows.items() if k not in METHODS]
    doc = {"dataset": str(a.data), "faces": len(records), "machine": machine(),
           "note": ("inter-ocular NME (outer eye corners 37/46), 68 points unless '49'; a face not "
                    "found counts as NME 1.0; when a detector returns several faces the one "
                    "centred on the labelled face is scored"),
           "rows": ordered}
    json_path.write_text(json.dumps(jsonable(doc), indent=1))
    plot_ced({LABELS.get(r["method"], r["method"]): np.array(r["errors_io"]) for r in ordered},
             str(a.out / "helen_test_ced.png"), 0.10, title=f"300-W HELEN test, {len(records)} faces")
    md = [f"# 300-W HELEN test set: {len(records)} human-labelled faces", "",
          "## All 68 points", "", table(ordered), "",
          "## 49 inner points (no jaw, no inner mouth corners)", "", table(ordered, "io49"), "",
          "## By part, on the faces each method found (mean NME_io %)", "", parts_md(ordered), "",
          "- Parts are the markup's groups (`tracker.core.landmarks.IBUG68.groups`); `jaw:along` "
          "and `jaw:across` split the jaw points' error on the labelled jaw line's tangent "
          "(`tracker.core.metrics.contour_components`): sliding along the line against missing it.",
          "",
          "- NME: mean point-to-point error / outer-eye-corner distance (points 37 and 46), on "
          "all 68 points and on the 300VW 49-point set (no jaw, no inner mouth corners). AUC and FR at the cut-offs 0.08 and 0.10.",
          "- A face not found by a method's own detector counts as NME 1.0 (a failure) and in "
          "'missed'. 'gt-box' crops the face from the box of the ground-truth landmarks' extent.",
          "- mediapipe's 468 points are mapped to the 68 with `tracker.evaluation.peers.MEDIAPIPE_TO_IBUG68` "
          "(PeizhiYan/Mediapipe_2_Dlib_Landmarks). Its jaw points lie on the mesh's silhouette, "
          "not on iBUG's jaw line (7-13 % NME per jaw point), which is most of the gap between "
          "its 68- and 49-point numbers.",
          "- Reference values from the project's issue: dlib 4.71 % / 2.30 % / AUC@0.08 0.672 "
          "(reproduced exactly above), mediapipe 3.75 % / 3.46 % / 0.535, which is the 49-point "
          "measure (jaw excluded), not the 68-point one; the small remaining difference is "
          "within the spread of the public 468-to-68 mappings (3.70-3.91 % on 49 points for the "
          "three we tried).",
          "- The dlib teacher was trained on 300-W's training images; HELEN test is not among them.",
          f"- ms/face: wall time per face of the method's call (detection included for detector "
          f"rows), one image at a time, on {machine()}, sometimes shared with a training job "
          f"(rows can come from different runs): read the times as relative.",
          *[f"- {LABELS[r['method']]}: model `{Path(r['ran']['model']['path']).name}` (sha256 "
            f"{r['ran']['model']['sha256_16']}...), backend {r['ran']['backend']}"
            for r in ordered if "model" in r.get("ran", {})],
          "", "![CED](helen_test_ced.png)", ""]
    (a.out / "helen_test.md").write_text("\n".join(md))
    print(table(ordered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
