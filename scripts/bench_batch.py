"""Throughput of `tracker batch`: the same clips serially, on a local Ray with 1 worker and
with 2 workers (videos per second, frames per second).

    python scripts/bench_batch.py [--data ../shared/data] [--clips 'vox_*'] [--limit 8]
                                  [--workers 1 2] [--model PATH] [--note TEXT]

Each mode processes every clip into a fresh output folder with the tracker as deployed
(`TrackerConfig()` defaults: the bundled default model on onnxruntime; serially onnxruntime picks its
own thread count, a Ray worker uses one thread per CPU it reserves, 1 here). For Ray, the
local cluster is started first and timed apart (`ray start`), then the batch is timed alone;
"with start" adds the two. Writes docs/results/bench_batch.json and .md (--name to change).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.batch.config import BatchConfig  # noqa: E402
from tracker.batch.runner import run_batch  # noqa: E402
from tracker.runtime.config import TrackerConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def clips(data: Path, pattern: str, limit: int) -> list[Path]:
    found = sorted((data / "videos").glob(f"{pattern}/vid.mp4"))[:limit]
    if not found:
        raise SystemExit(f"no clips {data / 'videos' / pattern / 'vid.mp4'}")
    return found


def one_mode(videos: list[Path], tracker_config: TrackerConfig, workers: int | None) -> dict:
    """Time one batch: serial (workers None) or on a local Ray of `workers` CPUs."""
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    start_s = 0.0
    try:
        if workers is None:
            config = BatchConfig(out, serial=True)
            t0 = time.perf_counter()
            result = run_batch(videos, tracker_config, config, progress=None)
        else:
            import ray

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            t0 = time.perf_counter()
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     object_store_memory=256 * 1024 ** 2, _node_ip_address="127.0.0.1",
                     logging_level="ERROR")
            start_s = time.perf_counter() - t0
            try:
                config = BatchConfig(out, workers=workers)
                t0 = time.perf_counter()
                result = run_batch(videos, tracker_config, config, progress=None)
            finally:
                ray.shutdown()
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    t = result.summary["totals"]
    if t["failed"] or t["ok"] != len(videos):
        raise SystemExit(f"batch failed: {result.summary['errors']}")
    return {"mode": "serial" if workers is None else f"ray, {workers} worker{'s' * (workers > 1)}",
            "workers": workers or 1, "videos": t["ok"], "frames": t["frames"],
            "wall_s": round(wall, 2), "start_s": round(start_s, 2),
            "videos_per_s": round(t["ok"] / wall, 3), "fps": round(t["frames"] / wall, 1),
            "fps_with_start": round(t["frames"] / (wall + start_s), 1),
            "per_video_fps_median": sorted(r.fps for r in result.records)[len(result.records) // 2]}


def write_md(report: dict, path: Path) -> None:
    lines = [
        "# Batch throughput (`tracker batch`)", "",
        f"`python scripts/bench_batch.py` on {report['clips']['count']} clips "
        f"({report['clips']['pattern']} from {report['clips']['data']}, {report['clips']['frames']} "
        f"frames in all), the tracker as deployed (bundled default model, onnxruntime, JSONL output). "
        f"Machine: {report['machine']['cpu']}, {report['machine']['cpus']} logical CPUs, "
        f"{report['machine']['system']}; Ray {report['ray']}; load average "
        f"{report['load_before']:.1f} before, {report['load_after']:.1f} after. {report['note']}", "",
        "| mode | videos/s | frames/s | wall s | Ray start s | frames/s with start | median per-video fps |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['mode']} | {r['videos_per_s']:.3f} | {r['fps']:.1f} | {r['wall_s']:.1f} | "
                     f"{r['start_s']:.1f} | {r['fps_with_start']:.1f} | {r['per_video_fps_median']:.1f} |")
    lines += ["", "Serially, one tracker at a time uses onnxruntime's own thread count; each Ray "
              "worker reserves one CPU and runs onnxruntime on one thread, and every video loads its "
              "own tracker (model and detector, a fraction of a second). Ray start: `ray.init` of "
              "a local cluster, paid once per batch.", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help=f"shared data folder (default {DATA})")
    ap.add_argument("--clips", default="vox_*", help="clip folder pattern under DATA/videos")
    ap.add_argument("--limit", type=int, default=8, help="most clips (default 8)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local Ray sizes")
    ap.add_argument("--model", default=None, help="model file (default: the bundled default model)")
    ap.add_argument("--note", default="", help="free text for the report (e.g. machine load)")
    ap.add_argument("--name", default="bench_batch", help="file name of the report (.json, .md)")
    args = ap.parse_args()
    videos = clips(args.data, args.clips, args.limit)
    config = TrackerConfig(model=args.model)
    load_before = os.getloadavg()[0]
    rows = []
    for workers in [None, *args.workers]:
        row = one_mode(videos, config, workers)
        print(f"{row['mode']:<16} {row['videos_per_s']:7.3f} videos/s {row['fps']:7.1f} frames/s "
              f"(wall {row['wall_s']:.1f} s, Ray start {row['start_s']:.1f} s)", flush=True)
        rows.append(row)
    import ray

    report = {"clips": {"data": str(args.data), "pattern": args.clips, "count": len(videos),
                        "frames": rows[0]["frames"], "files": [str(v) for v in videos]},
              "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(),
                          "system": f"{platform.system()} {platform.release()}"},
              "ray": ray.__version__, "load_before": load_before, "load_after": os.getloadavg()[0],
              "note": args.note, "rows": rows}
    out = ROOT / "docs" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_md(report, out / f"{args.name}.md")
    print(f"wrote {out / args.name}.json and .md")


if __name__ == "__main__":
    main()
