"""Our tracker, mediapipe Face Mesh (mapped to 68 points) and dlib on the same clips and stills:
one table of accuracy (NME, AUC, FR) and speed (frames per second, ms per face).

    python scripts/eval_peers.py --data /work/shared/data
    python scripts/eval_peers.py --data DATA --methods ours --clips clm_cap12,lp_d3 --max-frames 100

Sets:
- videos: clips of DATA/videos run frame by frame (tracking on: our tracker with its deployed
  detection schedule, mediapipe in video mode, dlib per frame as it labelled them), the first
  --max-frames frames of each clip. **The video labels are the teacher's (dlib's) pseudo ground
  truth**: they measure agreement with dlib, not accuracy, and dlib's own row is ~0 by
  construction (only its speed means something there). All these clips are in our model's
  training data (the video source has no held-out clip).
- stills: the human-labelled faces of DATA/stills (lfpw_, 300w_, 300wlp_; not the dlibtrain_
  faces, which the teacher made), each method with its own detector; 300wlp_ is AFW image
  134212, which is in the 300-W training folders our model and dlib learnt from.
- 300vw: the real 300VW frames of DATA/300vw_sample (official annotations) as stills, without
  the frame mmpose's broken_frames.npy marks as wrongly annotated.

Inter-ocular NME on 68 and on the 49 inner points; a labelled face a method does not return
counts as NME 1.0. Speed is wall time in the method's per-frame call (detection included),
one frame at a time; fps = frames / time, ms per face = time / faces returned. Writes
docs/results/peers.{md,json}; a run with a subset of --methods keeps the other rows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.eval_helen import file_id, machine  # noqa: E402
from tracker.core.datasets import FaceRecord, image_folder, video_clip  # noqa: E402
from tracker.evaluation.images import evaluate_images  # noqa: E402
from tracker.evaluation.report import jsonable  # noqa: E402
from tracker.evaluation.videos import evaluate_300vw, load_broken_frames  # noqa: E402

METHODS = ("ours", "mediapipe", "dlib")
#: A spread of the 80 clips: webcam (clm_cap12, feat_single), a long talking face (clm_franck),
#: head turns and a fast zoom (lp_d*), a small face in a tall frame (lp_s13), 1280x720
#: (lp_s18), non-square pixels (lp_d9), studio emotion (mead_), talking heads (st_, sad_, vr_)
#: and a 224x224 interview crop (vox_).
DEFAULT_CLIPS = ("clm_cap12", "clm_franck", "feat_single", "lp_d3", "lp_d9", "lp_d12", "lp_s13",
                 "lp_s18", "mead_M030_angry", "st_Obama_clip1", "sad_KatieHill", "vr_3",
                 "vox_00015")


def make_tracker(method: str, model: str | None, backend: str):
    """(frame-by-frame tracker object, still-image model object, description)."""
    if method == "ours":
        from tracker.engines.registry import resolve_model
        from tracker.runtime.config import TrackerConfig
        from tracker.runtime.tracker import Tracker

        path = resolve_model(model, ".pt" if backend.startswith("torch") else ".onnx")
        cfg = TrackerConfig(model=str(path), backend=backend)
        return Tracker(cfg), Tracker(cfg), {"model": file_id(Path(path)), "config": repr(cfg)}
    from tracker.evaluation.peers import Dlib68, MediapipeMesh68, PeerTracker

    if method == "mediapipe":
        import mediapipe

        return (PeerTracker(MediapipeMesh68(static_image_mode=False)),
                MediapipeMesh68(static_image_mode=True), {"mediapipe": mediapipe.__version__})
    if method == "dlib":
        import dlib

        return PeerTracker(Dlib68()), Dlib68(), {"dlib": dlib.__version__}
    raise SystemExit(f"unknown method {method!r}: one of {', '.join(METHODS)}")


def human_stills(root: Path) -> list[FaceRecord]:
    return [r for r in image_folder(root) if not r.image.name.startswith("dlibtrain_")]


def sample_300vw(root: Path) -> list[FaceRecord]:
    """The 300VW sample's labelled frames as still records (imgs/NNNNNN.jpg), broken ones out."""
    broken = load_broken_frames(root / "broken_frames.npy") if (root / "broken_frames.npy").is_file() else {}
    out = []
    for clip in sorted(p for p in root.iterdir() if (p / "annot").is_dir()):
        _, labels = video_clip(clip)
        for f, xy in sorted(labels.items()):
            if f in broken.get(clip.name, ()):
                continue
            img = next(clip.glob(f"imgs/{f:06d}.*"))
            out.append(FaceRecord(img, xy, frame=f, group=clip.name))
    return out


def row_from_video(method: str, res: dict) -> dict:
    a = res["categories"]["all"]
    c = res["counts"]
    return {"method": method, "set": "videos", "faces": a["frames"], "missed": a["missed"],
            "nme68": a["68"]["mean"], "median68": a["68"]["median"], "auc68": a["68"]["auc@0.08"],
            "fr68": a["68"]["fr@0.08"], "nme49": a["49"]["mean"], "auc49": a["49"]["auc@0.08"],
            "fr49": a["49"]["fr@0.08"], "fps": res["speed"]["fps"],
            "ms_per_face": res["speed"]["ms_per_face"], "frames_run": c["frames_run"],
            "clips": {k: {"frames": v["frames"], "missed": v["missed"], "nme68": v["68"]["mean"],
                          "nme49": v["49"]["mean"]} for k, v in res["videos"].items()}}


def row_from_images(method: str, name: str, res: dict) -> dict:
    s = res["summary"]
    ms = s["ms_per_face"]
    return {"method": method, "set": name, "faces": s["faces"], "missed": s["missed"],
            "nme68": s["io"]["mean"], "median68": s["io"]["median"], "auc68": s["io"]["auc@0.08"],
            "fr68": s["io"]["fr@0.08"], "nme49": s["io49"]["mean"], "auc49": s["io49"]["auc@0.08"],
            "fr49": s["io49"]["fr@0.08"], "fps": 1000 / ms if ms else float("nan"),
            "ms_per_face": ms,
            "per_face": {f"{Path(r.image).name}#{r.face}": r.errors["io"] for r in res["rows"]}}


def table(rows: list[dict]) -> str:
    lines = ["| set | method | faces | missed | NME 68 % | median % | AUC@0.08 | FR@0.08 % "
             "| NME 49 % | AUC49@0.08 | fps | ms/face |", "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['set']} | {r['method']} | {r['faces']} | {r['missed']} "
                     f"| {r['nme68'] * 100:.2f} | {r['median68'] * 100:.2f} | {r['auc68']:.3f} "
                     f"| {r['fr68'] * 100:.1f} | {r['nme49'] * 100:.2f} | {r['auc49']:.3f} "
                     f"| {r['fps']:.1f} | {r['ms_per_face']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder holding videos/, stills/ and 300vw_sample/")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sets", default="videos,stills,300vw")
    ap.add_argument("--clips", default=",".join(DEFAULT_CLIPS), help="clip names, or 'all'")
    ap.add_argument("--max-frames", type=int, default=150, help="frames per clip, from the first")
    ap.add_argument("--model", default=None, help="our model (default: the bundled default model)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    a = ap.parse_args(argv)
    methods = [m for m in a.methods.split(",") if m]
    sets = [s for s in a.sets.split(",") if s]
    clips = None if a.clips == "all" else [c for c in a.clips.split(",") if c]

    a.out.mkdir(parents=True, exist_ok=True)
    json_path = a.out / "peers.json"
    old = json.loads(json_path.read_text()) if json_path.is_file() else {}
    rows = {(r["set"], r["method"]): r for r in old.get("rows", [])}
    ran = old.get("ran", {})
    for m in methods:
        video_model, still_model, desc = make_tracker(m, a.model, a.backend)
        ran[m] = desc
        t0 = time.perf_counter()
        if "videos" in sets:
            res = evaluate_300vw(a.data / "videos", tracker=video_model, clips=clips,
                                 max_frames=a.max_frames, broken_frames=None)
            rows[("videos", m)] = row_from_video(m, res)
        if "stills" in sets:
            res = evaluate_images(human_stills(a.data / "stills"), still_model, "detector", name=m)
            rows[("stills", m)] = row_from_images(m, "stills", res)
        if "300vw" in sets:
            res = evaluate_images(sample_300vw(a.data / "300vw_sample"), still_model, "detector", name=m)
            rows[("300vw", m)] = row_from_images(m, "300vw", res)
        print(f"{m}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    order = {s: i for i, s in enumerate(("videos", "stills", "300vw"))}
    ordered = sorted(rows.values(), key=lambda r: (order.get(r["set"], 9),
                                                   METHODS.index(r["method"]) if r["method"] in METHODS else 9))
    doc = {"data": str(a.data), "machine": machine(), "clips": clips or "all",
           "max_frames_per_clip": a.max_frames, "ran": ran,
           "labels": {"videos": "teacher pseudo ground truth (dlib shape_predictor_68), not human",
                      "stills": "human (iBUG 300-W; 300wlp_ via a fitted 3D model)",
                      "300vw": "human (official 300VW annotations)"},
           "rows": ordered}
    json_path.write_text(json.dumps(jsonable(doc), indent=1))
    vids = next((r for r in ordered if r["set"] == "videos"), None)
    n_clips = len(vids["clips"]) if vids else 0
    md = ["# Peers: our tracker, mediapipe Face Mesh and dlib on the same faces", "",
          table(ordered), "",
          f"- **videos**: {n_clips} clips of the project's video set, the first {a.max_frames} "
          f"frames of each, run as video (tracking). **Labels: the teacher's (dlib's) pseudo "
          f"ground truth, not human**: the videos row measures agreement with dlib, and dlib's "
          f"own NME there is ~0 by construction (only its speed counts). Every clip is in our "
          f"model's training data. Clips: {', '.join(vids['clips']) if vids else '-'}.",
          "- **stills**: the 9 human-labelled faces of the shared stills (LFPW, 300-W test "
          "indoor, 300W-LP/AFW), each method with its own detector; AFW 134212 (the 300wlp_ "
          "faces) is in the 300-W training data of our model and of dlib.",
          "- **300vw**: the real 300VW frames with their official annotations (one frame that "
          "mmpose's broken_frames.npy lists as wrongly annotated left out), as stills.",
          "- NME: inter-ocular (outer eye corners 37/46), on 68 points and on the 49 inner "
          "points; a labelled face not returned counts as NME 1.0 and in 'missed'. mediapipe's "
          "jaw is its mesh silhouette, not iBUG's jaw line: compare it on 49 points.",
          f"- Speed: wall time of the per-frame call (detection included), one frame at a time, "
          f"on {machine()}, sometimes shared with a training job (rows can come from different "
          f"runs): read the times as relative. "
          f"fps = frames / time; ms/face = time / faces returned.",
          *[f"- ours: model `{Path(d['model']['path']).name}` (sha256 {d['model']['sha256_16']}...)"
            for m, d in ran.items() if m == "ours" and "model" in d], ""]
    (a.out / "peers.md").write_text("\n".join(md))
    print(table(ordered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
