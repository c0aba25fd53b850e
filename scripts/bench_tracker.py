"""Speed of the tracker against its peers on the same clips in one run: steady-state fps,
per-stage times, peak memory, start-up, the overlay video, and the jitter of the points.

    python scripts/bench_tracker.py [--repeat 3] [--sizes 640x360 720x1280 844x844] [--note TEXT]
    python scripts/bench_tracker.py --model rt-l --methods ours mediapipe --name bench_tracker_rt-l

Methods, each in a subprocess of its own per clip (so its peak memory, `ru_maxrss`, is its
own), from the video file to the landmarks of every frame:
- "ours": the Python API, landmarks only (`Tracker(config).track(clip)`: decoding in a
  thread, the bundled model on onnxruntime, BlazeFace every 10th frame);
- "ours+video": `tracker track clip -o out.mp4` as the CLI runs it (`Run`, the overlay drawn
  in the render stage and encoded in the video sink's thread);
- "mediapipe": Face Mesh in video mode (tracking between frames), mapped to 68 points;
- "dlib": HOG detector + the 68-point shape predictor, every frame.
Each method makes one warm-up pass over the clip, then `--repeat` timed passes; fps are
best and median of those (steady state). The peers decode with PyAV one frame at a time,
timed apart from their landmarks.

Clips: 640x360 is samples/face.mp4; other sizes (width x height) come from the shared
videos (../shared/data/videos/*/meta.json), the exact size if a clip has it, else the
nearest clip resized once with PyAV into a temporary file (the report says which).
Start-up: wall time of `python -m tracker track` on a one-frame clip (a subprocess, run
several times), where its time goes (`-X importtime` per package, and the steps timed in a
subprocess), and its peak memory. The overlay video is also timed with other libx264
settings at the largest size (the choice of `tracker.runtime.video_sink.X264`).
Writes docs/results/bench_tracker.json and .md (--name to change the name), naming the
machine and whether a training job (`python -m train`) was running.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "videos"
#: the clip resized when no shared clip has the size: the same aspect ratio, or the nearest
FALLBACK = {"720x1280": "lp_s29", "844x844": "vr_4"}
METHODS = ("ours", "ours+video", "mediapipe", "dlib")
#: libx264 settings timed for the overlay video at the largest size
X264_SWEEP = {"veryfast (before)": {"preset": "veryfast"},
              "superfast+zerolatency": {"preset": "superfast", "tune": "zerolatency"},
              "ultrafast": {"preset": "ultrafast"},
              "ultrafast+zerolatency": {"preset": "ultrafast", "tune": "zerolatency"}}


# -- clips -------------------------------------------------------------------------------------
def resize_clip(src: Path, dst: Path, w: int, h: int) -> Path:
    """`src` scaled to w x h (PyAV, libx264 crf 16 veryfast), at the source's rate."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s_in = i.streams.video[0]
        s = o.add_stream("libx264", rate=s_in.average_rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "16", "preset": "veryfast"}
        for f in i.decode(s_in):
            g = f.reformat(width=w, height=h, format="yuv420p")
            g.pts = None
            for p in s.encode(g):
                o.mux(p)
        for p in s.encode():
            o.mux(p)
    return dst


def find_clip(size: str, tmp: Path) -> dict:
    """{"size", "path", "source", "resized"} for a "WxH" size."""
    if size == "640x360":
        return {"size": size, "path": str(ROOT / "samples" / "face.mp4"), "source": "samples/face.mp4",
                "resized": False}
    w, h = (int(v) for v in size.split("x"))
    metas = sorted(DATA.glob("*/meta.json"))
    for m in metas:
        meta = json.loads(m.read_text())
        if (meta["width"], meta["height"]) == (w, h):
            vid = next(m.parent.glob("vid.*"))
            return {"size": size, "path": str(vid), "source": m.parent.name, "resized": False}
    name = FALLBACK[size]
    src = next((DATA / name).glob("vid.*"))
    meta = json.loads((DATA / name / "meta.json").read_text())
    dst = resize_clip(src, tmp / f"{name}_{size}.mp4", w, h)
    return {"size": size, "path": str(dst), "resized": True,
            "source": f"{name} ({meta['width']}x{meta['height']}) resized to {size} with PyAV"}


def one_frame_clip(tmp: Path) -> Path:
    import av

    out = tmp / "one_frame.mp4"
    with av.open(str(ROOT / "samples" / "face.mp4")) as i, av.open(str(out), "w") as o:
        s = o.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        f = next(i.decode(video=0))
        f.pts = None
        for p in [*s.encode(f), *s.encode()]:
            o.mux(p)
    return out


# -- workers (one method on one clip, in a subprocess) -----------------------------------------
def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _summary(walls: list[float], cpus: list[float], frames: int) -> dict:
    best = min(range(len(walls)), key=walls.__getitem__)
    return {"frames": frames, "fps_best": frames / walls[best],
            "fps_median": frames / statistics.median(walls), "ms_per_frame": 1000 * walls[best] / frames,
            "cpu_ms_per_frame": 1000 * cpus[best] / frames, "runs_s": walls}


def worker_ours(clip: str, repeat: int, every: int, threads: int | None, model: str | None = None,
                tracking: bool = True) -> dict:
    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.tracker import Tracker

    t0 = time.perf_counter()
    tracker = Tracker(TrackerConfig(model=model, threads=threads, detect_every=every, tracking=tracking))
    load_s = time.perf_counter() - t0
    walls, cpus, stages, faces = [], [], [], 0
    for k in range(repeat + 1):
        tracker.timings.reset()
        w0, c0 = time.perf_counter(), time.process_time()
        results = list(tracker.track(clip))
        if k:  # the first pass warms up
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            stages.append(tracker.timings.summary(len(results)))
            faces = sum(bool(r.faces) for r in results)
    tracker.close()
    out = _summary(walls, cpus, len(results))
    best = min(range(len(walls)), key=walls.__getitem__)
    out.update(load_s=load_s, frames_with_face=faces, detector_frames=sum(r.detected for r in results),
               stages_ms_per_frame={s: round(v["ms_per_frame"], 3) for s, v in stages[best].items()})
    return out


def worker_video(clip: str, repeat: int, every: int, threads: int | None, model: str | None,
                 x264: dict | None) -> dict:
    """`tracker track clip -o out.mp4`, as the CLI runs it (a fresh Tracker per pass, as Run
    closes it; each warmed up on one frame first)."""
    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.run import Run
    from tracker.runtime.sinks import Sinks
    from tracker.runtime.tracker import Tracker
    from tracker.runtime.video_sink import X264, VideoSink
    from tracker.runtime.video_source import VideoSource

    walls, cpus, stages, encode, sizes = [], [], [], [], []
    out_path = Path(tempfile.mkdtemp()) / "bench.mp4"
    for k in range(repeat + 1):
        tracker = Tracker(TrackerConfig(model=model, threads=threads, detect_every=every))
        src = VideoSource(clip)
        tracker.process(next(iter(VideoSource(clip))).image)  # warm this tracker up
        sink = VideoSink(out_path, src.rate or src.fps, audio_from=clip if src.has_audio else None,
                         origin=0.0, options=x264)
        c0 = time.process_time()
        stats = Run(tracker, src, Sinks([sink]))()
        if k:
            walls.append(stats.wall_s)
            cpus.append(time.process_time() - c0)
            stages.append(tracker.timings.summary(stats.frames))
            encode.append(1000 * sink.encode_s / stats.frames)
            sizes.append(out_path.stat().st_size / 1e6)
        out_path.unlink(missing_ok=True)
    out = _summary(walls, cpus, stats.frames)
    best = min(range(len(walls)), key=walls.__getitem__)
    out.update(stages_ms_per_frame={s: round(v["ms_per_frame"], 3) for s, v in stages[best].items()},
               encode_ms_per_frame=encode[best], video_mb=sizes[best],
               x264=dict(X264 if x264 is None else x264))
    return out


def worker_peer(name: str, clip: str, repeat: int) -> dict:
    from tracker.evaluation import peers
    from tracker.runtime.video_source import VideoSource

    t0 = time.perf_counter()
    peer = peers.MediapipeMesh68(static_image_mode=False) if name == "mediapipe" else peers.Dlib68()
    load_s = time.perf_counter() - t0
    walls, cpus, decode, marks, faces = [], [], [], [], 0
    for k in range(repeat + 1):
        peer.reset()
        w0, c0 = time.perf_counter(), time.process_time()
        dec = lm = 0.0
        n = found = 0
        it = iter(VideoSource(clip))
        while True:
            t = time.perf_counter()
            fr = next(it, None)
            dec += time.perf_counter() - t
            if fr is None:
                break
            t = time.perf_counter()
            found += bool(peer.landmarks(fr.image))
            lm += time.perf_counter() - t
            n += 1
        if k:
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            decode.append(1000 * dec / n)
            marks.append(1000 * lm / n)
            faces = found
    out = _summary(walls, cpus, n)
    best = min(range(len(walls)), key=walls.__getitem__)
    out.update(load_s=load_s, frames_with_face=faces,
               stages_ms_per_frame={"decode": round(decode[best], 3), "landmarks": round(marks[best], 3)})
    return out


def worker_jitter(clip: str, labels: Path) -> dict:
    """Jitter (mean |p[t+1] - 2 p[t] + p[t-1]| over the inter-ocular distance) of the first
    face's points, raw and smoothed, and of the clip's labels; NME against the labels."""
    import dataclasses

    import numpy as np

    from tracker.core.landmarks import IBUG68
    from tracker.core.metrics import nme
    from tracker.core.pts import read_pts
    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.smooth import jitter
    from tracker.runtime.tracker import Tracker

    def points(smooth: bool):
        with Tracker(dataclasses.replace(TrackerConfig(), smooth=smooth)) as tr:
            res = list(tr.track(clip))
        return np.stack([r.faces[0].points for r in res]) if all(r.faces for r in res) else None

    out = {}
    raw, smoothed = points(False), points(True)
    files = [labels / f"{i + 1:06d}.pts" for i in range(len(raw))] if raw is not None else []
    lab = np.stack([read_pts(f) for f in files]) if files and all(f.is_file() for f in files) else None
    a, b = IBUG68.outer_eye_corners
    for name, p in (("raw", raw), ("smoothed", smoothed), ("labels", lab)):
        if p is not None:
            iod = np.linalg.norm(p[:, a] - p[:, b], axis=-1)
            out[name] = {"jitter": float(jitter(p, iod)),
                         "nme": float(nme(p, lab).mean()) if lab is not None and name != "labels" else None}
    return out


def run_worker(argv: list[str]) -> dict:
    """Run this script as a worker in a subprocess; its JSON answer."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *argv]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-3:]
        print(f"  worker {' '.join(argv[:2])} failed: {' / '.join(tail)}")
        return {"skipped": " / ".join(tail)[-300:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak memory in MB: the child's ru_maxrss) of a command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


# -- start-up ------------------------------------------------------------------------------------
def startup(one: Path, runs: int) -> dict:
    """Wall time and peak memory of `python -m tracker track one_frame.mp4 --quiet`, and where
    its time goes."""
    cmd = [sys.executable, "-m", "tracker", "track", str(one), "--quiet"]
    walls, rss = zip(*(run_measured(cmd) for _ in range(runs)))
    p = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], cwd=ROOT, capture_output=True,
                       text=True)
    # interpreter start and exit around main(): `python -c pass`, and main() timed inside
    bare = min(run_measured([sys.executable, "-c", "pass"])[0] for _ in range(3))
    code = ("import sys, time; t = time.perf_counter(); from tracker.cli import main; "
            f"main(['track', {str(one)!r}, '--quiet']); print('MAIN_S', time.perf_counter() - t)")
    exits = []
    for _ in range(3):
        t0 = time.perf_counter()
        q = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        inside = float(next(ln for ln in q.stdout.splitlines() if ln.startswith("MAIN_S")).split()[1])
        exits.append(time.perf_counter() - t0 - inside - bare)
    steps = run_worker(["startup-steps", str(one)])
    return {"wall_s_best": min(walls), "wall_s_median": statistics.median(walls), "runs_s": list(walls),
            "maxrss_mb": max(rss), "imports_ms": startup_imports(p.stderr), "steps_ms": steps,
            "bare_interpreter_s": bare, "after_main_s": min(exits)}


def worker_startup_steps(one: str) -> dict:
    """The steps of `tracker track` timed one after another in a fresh interpreter."""
    t = [time.perf_counter()]
    steps = {}

    def lap(name: str) -> None:
        t.append(time.perf_counter())
        steps[name] = round(1000 * (t[-1] - t[-2]), 1)

    import numpy  # noqa: F401

    lap("import numpy")
    import av  # noqa: F401

    lap("import av")
    import cv2  # noqa: F401

    lap("import cv2")
    import onnxruntime  # noqa: F401

    lap("import onnxruntime")
    import mediapipe  # noqa: F401

    lap("import mediapipe")
    from tracker.cli import build_parser

    build_parser()
    lap("import tracker, build the CLI parser")
    from tracker.engines.registry import load_backend

    backend = load_backend("onnxruntime", None, None)
    lap("onnxruntime session (bundled model)")
    from tracker.runtime.detect import FaceDetector

    detector = FaceDetector()
    lap("BlazeFace detector")
    from tracker.runtime.capture import open_source

    frame = next(iter(open_source(one)))
    lap("open the clip, decode a frame")
    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.tracker import Tracker

    Tracker(TrackerConfig(), backend=backend, detector=detector).process(frame.image)
    lap("first frame tracked")
    return steps


def startup_imports(importtime: str, top: int = 12) -> dict[str, float]:
    """Milliseconds of import per top-level package from `python -X importtime` output
    (each package's outermost imports, so a package imported inside another counts in both:
    matplotlib within mediapipe), the largest `top` first, and "all" (every import)."""
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = line.split("|")
        if not cum.strip().isdigit() or name.strip().startswith("__editable__"):
            continue
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((depth, name.strip().split(".")[0], int(cum) / 1000))
    totals: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for depth, root, ms in reversed(rows):  # parents before children
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if root not in {r for _, r in stack}:
            totals[root] = totals.get(root, 0.0) + ms
        stack.append((depth, root))
    out = dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])
    out["all"] = sum(ms for depth, _, ms in rows if depth == 0)
    return {k: round(v, 1) for k, v in out.items()}


# -- report -------------------------------------------------------------------------------------
def _area(size: str) -> int:
    w, h = (int(v) for v in size.split("x"))
    return w * h


def _fps(r: dict | None, key: str = "fps_best") -> str:
    return f"{r[key]:.1f}" if r and key in r else "–"


def write_md(report: dict, path: Path) -> None:
    m, c = report["machine"], report["config"]
    lines = ["# Tracker speed against its peers", "",
             f"`python scripts/bench_tracker.py`. Machine: {m['cpu']}, {m['cores']} logical CPUs, "
             f"{m['platform']}, Python {m['python']}; training job (`python -m train`) running: "
             f"**{'yes' if m['training_job'] else 'no'}**; load average {m['loadavg_before'][0]:.1f} "
             f"before, {m['loadavg_after'][0]:.1f} after. Ours: the bundled {c.get('model', 'rt-m')} on onnxruntime "
             f"(threads: {c['threads'] or 'its default'}), BlazeFace every {c['detect_every']} frames. "
             f"Each method and clip in a subprocess of its own: one warm-up pass, then "
             f"{c['repeat']} timed passes (fps: best and median pass). {report['note']}".rstrip(), "",
             "Clips: " + "; ".join(f"{cl['size']}: {cl['source']} ({cl['methods'].get('ours', {}).get('frames', '?')} "
                                   f"frames)" for cl in report["clips"]) + ".", "",
             "| clip (WxH) | ours fps | mediapipe fps | ours / mediapipe | mediapipe, landmarks alone | "
             "dlib fps | ours + overlay video fps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for cl in report["clips"]:
        ms = cl["methods"]
        ours, mp = ms.get("ours"), ms.get("mediapipe")
        ratio = (f"{ours['fps_best'] / mp['fps_best']:.2f}" if ours and mp and "fps_best" in ours
                 and "fps_best" in mp else "–")
        alone = (f"{1000 / mp['stages_ms_per_frame']['landmarks']:.1f}" if mp and "stages_ms_per_frame" in mp
                 else "–")
        lines.append(f"| {cl['size']} | {_fps(ours)} | {_fps(mp)} | {ratio} | {alone} | "
                     f"{_fps(ms.get('dlib'))} | {_fps(ms.get('ours+video'))} |")
    lines += ["", "All fps are from the video file to the landmarks of every frame. Ours decodes in a "
              "thread of its own, overlapping the tracking; the peers' API takes one image at a time, "
              "so they decode in the same thread (\"landmarks alone\" leaves their decoding out: an "
              "upper bound, as if decoding were free)."]
    lines += ["", "Every method, from the video file to the landmarks of every frame (ours decodes "
              "in a thread; the peers decode one frame at a time, timed apart below); CPU ms per "
              "frame is the process's CPU time over all its threads; peak memory is the "
              "subprocess's `ru_maxrss` (for ours+video, that of one `python -m tracker track clip "
              "-o out.mp4` run):", "",
              "| clip | method | fps best | fps median | ms/frame | CPU ms/frame | peak MB | frames with a face |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for cl in report["clips"]:
        for name, r in cl["methods"].items():
            if "skipped" in r:
                lines.append(f"| {cl['size']} | {name} | skipped: {r['skipped']} | | | | | |")
                continue
            faces = f"{r['frames_with_face']}/{r['frames']}" if "frames_with_face" in r else "–"
            lines.append(f"| {cl['size']} | {name} | {r['fps_best']:.1f} | {r['fps_median']:.1f} | "
                         f"{r['ms_per_frame']:.2f} | {r['cpu_ms_per_frame']:.2f} | {r['maxrss_mb']:.0f} | {faces} |")
    lines += ["", "Per-stage time, ms per frame (best pass). Ours: `track` holds detect ... smooth; "
              "capture, track, render and write run in threads of their own and overlap, and the "
              "overlay video is encoded in the sink's own thread (`encode`). Peers: decode, then "
              "landmarks, one after the other:", ""]
    for cl in report["clips"]:
        for name, r in cl["methods"].items():
            st = dict(r.get("stages_ms_per_frame", {}))
            if "encode_ms_per_frame" in r:
                st["encode"] = r["encode_ms_per_frame"]
            if st:
                lines.append(f"- {cl['size']}, {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
    sw = report.get("x264_sweep")
    if sw:
        lines += ["", f"The overlay video's libx264 settings at {sw['size']} (crf 20, 2 encoder threads; "
                  "the default is `tracker.runtime.video_sink.X264`):", "",
                  "| settings | fps best | encode ms/frame (own thread) | CPU ms/frame (all) | video MB |",
                  "|---|---:|---:|---:|---:|"]
        for label, r in sw["settings"].items():
            if "fps_best" in r:
                lines.append(f"| {label} | {r['fps_best']:.1f} | {r['encode_ms_per_frame']:.2f} | "
                             f"{r['cpu_ms_per_frame']:.2f} | {r['video_mb']:.2f} |")
    su = report.get("startup")
    if su:
        lines += ["", f"Start-up: `python -m tracker track` on a one-frame 640x360 clip takes "
                  f"{su['wall_s_best']:.2f} s at best, {su['wall_s_median']:.2f} s median "
                  f"({len(su['runs_s'])} runs), peak memory {su['maxrss_mb']:.0f} MB. Imports "
                  f"(`-X importtime`, ms; a package imported within another counts in both): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in su["imports_ms"].items()) + ". "
                  "The steps one after another in a fresh interpreter (ms): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in su["steps_ms"].items() if k != "maxrss_mb")
                  + f". After `main()` returns, the interpreter takes {1000 * su['after_main_s']:.0f} ms "
                  f"more to exit than a bare `python -c pass` ({1000 * su['bare_interpreter_s']:.0f} ms "
                  "in all): the finalisation of what was imported and built."]
    j = report.get("jitter") or {}
    if j and "skipped" not in j:
        lines += ["", "Jitter on samples/face.mp4 (mean second difference of the 68 points over the "
                  "inter-ocular distance; lower is steadier) and NME against the clip's labels (dlib's, "
                  "whole-pixel):", "", "| output | jitter | NME (inter-ocular) |", "|---|---:|---:|"]
        for k in ("raw", "smoothed", "labels"):
            if k in j:
                nme = j[k].get("nme")
                lines.append(f"| {k} | {j[k]['jitter']:.4f} | " + (f"{nme:.4f} |" if nme is not None else "– |"))
    path.write_text("\n".join(lines) + "\n")


# -- main ------------------------------------------------------------------------------------------
def training_running() -> bool:
    """Whether a training job (`python -m train`) is running; one stopped with SIGSTOP (state T,
    as while a benchmark runs on an otherwise idle machine) does not count."""
    pids = subprocess.run(["pgrep", "-f", "python -m train"], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t"):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["640x360", "720x1280", "844x844"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per method and clip")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own)")
    ap.add_argument("--model", default=None, help="our model (a bundled name or a file; default: the bundled default)")
    ap.add_argument("--every", type=int, default=10, help="re-detect every N frames")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--no-sweep", action="store_true", help="skip the libx264 settings")
    ap.add_argument("--note", default="", help="free text for the report")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--name", default="bench_tracker", help="file name of the report (.json, .md)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _work(args)

    from tracker.core.modelfile import DEFAULT_MODEL

    tmp = Path(tempfile.mkdtemp(prefix="bench_tracker-"))
    training0, load0 = training_running(), os.getloadavg()
    report = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "platform": f"{platform.system()} {platform.release()}"},
              "config": {"backend": "onnxruntime", "model": args.model or DEFAULT_MODEL, "threads": args.threads,
                         "detect_every": args.every, "repeat": args.repeat},
              "note": args.note, "clips": []}
    common = [str(args.repeat), str(args.every), str(args.threads or 0), args.model or ""]
    for size in args.sizes:
        clip = find_clip(size, tmp)
        print(f"{size}: {clip['source']}")
        clip["methods"] = {}
        for m in args.methods:
            r = run_worker([m, clip["path"], *common])
            clip["methods"][m] = r
            if m == "ours+video" and "fps_best" in r:  # the worker's passes each make a Tracker
                out = tmp / "cli.mp4"
                r["maxrss_mb_worker"] = r["maxrss_mb"]
                r["cli_wall_s"], r["maxrss_mb"] = run_measured(
                    [sys.executable, "-m", "tracker", "track", clip["path"], "-o", str(out), "--quiet"])
                out.unlink(missing_ok=True)
            if "fps_best" in r:
                print(f"  {m:>11}: {r['fps_best']:6.1f} fps best, {r['fps_median']:6.1f} median, "
                      f"{r['maxrss_mb']:.0f} MB; " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                        r.get("stages_ms_per_frame", {}).items()))
        report["clips"].append(clip)
    if not args.no_sweep and "ours+video" in args.methods:
        big = max(report["clips"], key=lambda c: _area(c["size"]))
        report["x264_sweep"] = {"size": big["size"], "settings": {}}
        from tracker.runtime.video_sink import X264

        for label, opts in X264_SWEEP.items():  # back to back, the default again too
            label += " (default)" if opts == X264 else ""
            r = run_worker(["ours+video", big["path"], *common, json.dumps(opts)])
            report["x264_sweep"]["settings"][label] = r
            if "fps_best" in r:
                print(f"  x264 {label}: {r['fps_best']:.1f} fps, encode {r['encode_ms_per_frame']:.1f} "
                      f"ms/frame, {r['video_mb']:.2f} MB")
    one = one_frame_clip(tmp)
    report["startup"] = startup(one, args.startup_runs)
    print(f"start-up: {report['startup']['wall_s_best']:.2f} s best, "
          f"{report['startup']['wall_s_median']:.2f} median")
    face = ROOT / "samples" / "face.mp4"
    report["jitter"] = run_worker(["jitter", str(face),
                                   str(ROOT / "tests" / "fixtures" / "feat_single" / "annot")])
    report["machine"].update(loadavg_before=load0, loadavg_after=os.getloadavg(),
                             training_job=training0 or training_running())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    write_md(report, args.out / f"{args.name}.md")
    print(f"wrote {args.out / args.name}.json and .md")
    return 0


def _work(args) -> int:
    kind, *rest = args.worker
    if kind == "startup-steps":
        out = worker_startup_steps(rest[0])
    elif kind == "jitter":
        out = worker_jitter(rest[0], Path(rest[1]))
    else:
        clip, repeat, every, threads = rest[0], int(rest[1]), int(rest[2]), int(rest[3]) or None
        model = rest[4] or None
        if kind == "ours":
            out = worker_ours(clip, repeat, every, threads, model)
        elif kind == "ours+video":
            out = worker_video(clip, repeat, every, threads, model, json.loads(rest[5]) if len(rest) > 5 else None)
        else:
            out = worker_peer(kind, clip, repeat)
        out["maxrss_mb"] = _maxrss_mb()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
