"""End-to-end speed of the tracker on a clip, with a per-stage breakdown, the effect of the
One-Euro filter on jitter, and the peers (mediapipe Face Mesh, dlib) timed in the same run.

    python scripts/bench_tracker.py [--clip samples/face.mp4] [--model PATH] [--backend onnxruntime]
                                    [--threads N] [--every 10] [--repeat 5] [--note TEXT]

Modes, each over the whole clip `--repeat` times (the best and median runs are reported):
- "tracking": the threaded pipeline (capture | track), landmarks only, as `Tracker.track`;
- "tracking+video": the same with the overlay rendered and encoded to an .mp4, as
  `tracker track clip -o out.mp4`;
- "inline": no threads, every stage one after another (the sum of the stage times);
- "detect-every-frame": detector on every frame, no tracking.
Jitter: mean |p[t+1] - 2 p[t] + p[t-1]| over the inter-ocular distance of the face's 68
points, with and without smoothing, and the same for the clip's labels when --labels has them
(samples/face.mp4 is tests/fixtures/feat_single/vid.mp4, whose labels are dlib's, whole-pixel).
Writes docs/results/bench_tracker.json and .md (--name to change the name).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.core.landmarks import IBUG68  # noqa: E402
from tracker.core.metrics import nme  # noqa: E402
from tracker.core.pts import read_pts  # noqa: E402
from tracker.runtime.config import TrackerConfig  # noqa: E402
from tracker.runtime.pipeline import run_inline  # noqa: E402
from tracker.runtime.sinks import VideoSink, draw_overlay  # noqa: E402
from tracker.runtime.smooth import jitter  # noqa: E402
from tracker.runtime.tracker import Tracker  # noqa: E402
from tracker.runtime.video_source import VideoSource  # noqa: E402


def run_mode(tracker: Tracker, clip: Path, mode: str) -> tuple[float, int, dict, list]:
    """(wall seconds, frames, per-stage timings, results) of one pass over the clip."""
    tracker.timings.reset()
    src = VideoSource(clip)
    results = []
    t0 = time.perf_counter()
    if mode == "inline":
        tracker.reset()
        for _, res in run_inline(src, [("track", tracker._track_stage)], tracker.timings):
            results.append(res)
    elif mode == "tracking+video":
        out = Path(tempfile.mkdtemp()) / "bench.mp4"
        sink = VideoSink(out, src.rate or src.fps, audio_from=clip if src.has_audio else None)
        stage = ("render", lambda fr_res: (*fr_res, draw_overlay(fr_res[0].image, fr_res[1].faces)))
        for frame, res, overlay in tracker.track_frames(src, [stage]):
            with tracker.timings.measure("write"):
                sink.write(frame, res, overlay)
            results.append(res)
        with tracker.timings.measure("write"):
            sink.close()
        out.unlink(missing_ok=True)
    else:
        for _, res in tracker.track_frames(src):
            results.append(res)
    wall = time.perf_counter() - t0
    src.close()
    return wall, len(results), tracker.timings.summary(len(results)), results


def bench(args, config: TrackerConfig, mode: str) -> dict:
    tracker = Tracker(config)
    run_mode(tracker, args.clip, mode)  # warm-up: sessions, detector graph, caches
    runs = [run_mode(tracker, args.clip, mode) for _ in range(args.repeat)]
    tracker.close()
    walls = [r[0] for r in runs]
    best = min(range(len(runs)), key=lambda i: walls[i])
    wall, frames, stages, results = runs[best]
    return {"mode": mode, "frames": frames, "fps_best": frames / wall,
            "fps_median": frames / statistics.median(walls), "runs_s": walls,
            "detector_frames": sum(r.detected for r in results),
            "frames_with_face": sum(bool(r.faces) for r in results),
            "stages_ms_per_frame": {k: round(v["ms_per_frame"], 3) for k, v in stages.items()},
            "stages_ms_per_call": {k: round(v["ms_per_call"], 3) for k, v in stages.items()},
            "results": results}


def track_points(results) -> np.ndarray | None:
    """(T, 68, 2) points of the first face when every frame has one."""
    if not results or not all(r.faces for r in results):
        return None
    return np.stack([r.faces[0].points for r in results])


def jitter_io(points: np.ndarray) -> float:
    a, b = IBUG68.outer_eye_corners
    return jitter(points, np.linalg.norm(points[:, a] - points[:, b], axis=-1))


def bench_peers(clip: Path) -> dict:
    try:
        from tracker.evaluation import peers
    except ImportError as e:
        print(f"note: tracker.evaluation.peers not importable ({e}); peers not timed")
        return {"skipped": str(e)}
    frames = [f.image for f in VideoSource(clip)]
    out = {}
    for name, make in (("mediapipe-facemesh68", lambda: peers.MediapipeMesh68(static_image_mode=False)),
                       ("dlib68", lambda: peers.Dlib68())):
        try:
            peer = make()
        except Exception as e:  # PeerUnavailable or a missing package
            print(f"note: peer {name} unavailable ({e}); skipped")
            out[name] = {"skipped": str(e)}
            continue
        peer.landmarks(frames[0])  # warm-up
        t0 = time.perf_counter()
        found = sum(bool(peer.landmarks(f)) for f in frames)
        wall = time.perf_counter() - t0
        out[name] = {"fps": len(frames) / wall, "ms_per_frame": 1000 * wall / len(frames),
                     "frames_with_face": found, "frames": len(frames)}
        print(f"peer {name}: {out[name]['fps']:.1f} fps ({out[name]['ms_per_frame']:.1f} ms/frame, "
              f"face in {found}/{len(frames)} frames)")
    return out


def write_md(report: dict, path: Path) -> None:
    m = report["machine"]
    lines = ["# Tracker speed (end to end)", "",
             f"`python scripts/bench_tracker.py` on `{report['clip']}` ({report['frames']} frames, "
             f"640x360, one face); model `{report['model']['path']}` (sha256 "
             f"{report['model']['sha256_16']}…), backend {report['config']['backend']}, "
             f"onnxruntime threads {report['config']['threads'] or 'default'}, re-detect every "
             f"{report['config']['detect_every']} frames. Machine: {m['cpu']}, {m['cores']} cores; "
             f"load average {m['loadavg_before'][0]:.1f} before, {m['loadavg_after'][0]:.1f} after. "
             f"{report['note']}", "",
             "| mode | fps (best) | fps (median) | detector frames |", "|---|---|---|---|"]
    for r in report["modes"]:
        lines.append(f"| {r['mode']} | {r['fps_best']:.1f} | {r['fps_median']:.1f} | "
                     f"{r['detector_frames']}/{r['frames']} |")
    stages = sorted({s for r in report["modes"] for s in r["stages_ms_per_frame"]},
                    key=["capture", "detect", "crop", "infer", "decode", "project", "smooth",
                         "track", "render", "write"].index)
    lines += ["", "Per-stage time, ms per frame (best run; `track` contains detect ... project; "
              "in the threaded modes capture, track, render and write overlap):", "",
              "| mode | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for r in report["modes"]:
        lines.append(f"| {r['mode']} | " + " | ".join(
            f"{r['stages_ms_per_frame'][s]:.2f}" if s in r["stages_ms_per_frame"] else "–"
            for s in stages) + " |")
    j = report["jitter"]
    lines += ["", "Jitter (mean second difference of the 68 points over the inter-ocular distance; "
              "lower is steadier) and NME against the clip's labels:", "",
              "| output | jitter | NME (inter-ocular) |", "|---|---|---|"]
    for k in ("raw", "smoothed", "labels"):
        if k in j:
            lines.append(f"| {k} | {j[k]['jitter']:.4f} | "
                         + (f"{j[k]['nme']:.4f} |" if j[k].get("nme") is not None else "– |"))
    if report.get("peers"):
        lines += ["", "Peers on the same clip in the same run (sequential, one frame at a time):", "",
                  "| peer | fps | ms/frame | frames with a face |", "|---|---|---|---|"]
        for name, p in report["peers"].items():
            if "skipped" in p:
                lines.append(f"| {name} | skipped: {p['skipped']} | | |")
            else:
                lines.append(f"| {name} | {p['fps']:.1f} | {p['ms_per_frame']:.1f} | "
                             f"{p['frames_with_face']}/{p['frames']} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=ROOT / "samples" / "face.mp4")
    ap.add_argument("--labels", type=Path, default=ROOT / "tests" / "fixtures" / "feat_single" / "annot",
                    help="300VW annot/ folder of the clip (for NME; skipped when absent)")
    ap.add_argument("--model", default=None, help="model file (default: the bundled rt-m)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime threads (default: its own, one per core, as the CLI)")
    ap.add_argument("--every", type=int, default=10, help="re-detect every N frames")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--note", default="", help="free text for the report (e.g. machine load)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--name", default="bench_tracker", help="file name of the report (.json, .md)")
    args = ap.parse_args(argv)

    config = TrackerConfig(model=args.model, backend=args.backend, threads=args.threads,
                           detect_every=args.every)
    probe = Tracker(config)
    model_path = Path(getattr(probe.backend, "path", args.model or ""))
    probe.close()
    load0 = os.getloadavg()
    modes = []
    for mode, cfg in (("tracking", config), ("tracking+video", config), ("inline", config),
                      ("detect-every-frame", dataclasses.replace(config, tracking=False))):
        r = bench(args, cfg, mode)
        modes.append(r)
        print(f"{mode:>18}: {r['fps_best']:6.1f} fps best, {r['fps_median']:6.1f} median; "
              f"detector on {r['detector_frames']}/{r['frames']} frames; stages ms/frame "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_ms_per_frame"].items()))

    # jitter with and without smoothing (tracking mode, single pass each)
    raw_pts = track_points(modes[0]["results"])
    smooth_tr = Tracker(dataclasses.replace(config, smooth=True))
    smooth_pts = track_points(list(smooth_tr.track(args.clip)))
    smooth_tr.close()
    labels = None
    if args.labels.is_dir() and raw_pts is not None:
        files = [args.labels / f"{i + 1:06d}.pts" for i in range(len(raw_pts))]
        if all(f.is_file() for f in files):
            labels = np.stack([read_pts(f) for f in files])
    jit = {}
    for name, pts in (("raw", raw_pts), ("smoothed", smooth_pts), ("labels", labels)):
        if pts is None:
            continue
        jit[name] = {"jitter": jitter_io(pts),
                     "nme": float(nme(pts, labels).mean()) if labels is not None and name != "labels" else None}
        print(f"jitter {name}: {jit[name]['jitter']:.4f}"
              + (f", NME {jit[name]['nme']:.4f}" if jit[name]["nme"] is not None else ""))
    peers = {} if args.no_peers else bench_peers(args.clip)
    load1 = os.getloadavg()

    report = {
        "clip": str(args.clip.relative_to(ROOT) if args.clip.is_relative_to(ROOT) else args.clip),
        "frames": modes[0]["frames"],
        "model": {"path": str(model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT) else model_path),
                  "sha256_16": hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
                  if model_path.is_file() else None},
        "config": {"backend": config.backend, "threads": config.threads,
                   "detect_every": config.detect_every, "detector": config.detector},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": load0, "loadavg_after": load1},
        "note": args.note,
        "modes": [{k: v for k, v in r.items() if k != "results"} for r in modes],
        "jitter": jit,
        "peers": peers,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    write_md(report, args.out / f"{args.name}.md")
    print(f"wrote {args.out / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
