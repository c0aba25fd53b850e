"""`tracker batch`: arguments -> `TrackerConfig` + `BatchConfig` -> `tracker.batch.run_batch`."""
from __future__ import annotations

import argparse
import os
import sys

from tracker.cli.options import UsageError, config_from_args, progress_arg, tracker_args

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130

EPILOG = """\
inputs:
  video files, folders (searched recursively), glob patterns ('clips/**/*.mp4') and list
  files (.txt/.lst/.list or @FILE: one path, folder or glob per line). Results mirror the
  inputs' tree under --out-dir: root/a/clip.mp4 -> OUT/a/clip/landmarks.jsonl (+ DONE.json).

where it runs:
  default     a local Ray started for the batch (--workers N tasks at once), or the Ray
              cluster at --address / $RAY_ADDRESS (the package installed on every node, OUT
              on storage every node sees at the same path)
  --serial    no Ray: one video after another in this process (also the fallback, with a
              note, when Ray is not installed)

resuming:
  a rerun skips the videos finished with the same settings and model (hashes in DONE.json);
  --retry-failed redoes the failed ones, --force redoes all.

exit codes:
  0    every video done (now or in an earlier run)
  1    at least one video failed (OUT/errors.txt, OUT/manifest.jsonl; the others are done)
  2    bad usage: no videos found, bad option, missing model, --address without Ray, ...
  130  interrupted (Ctrl-C): running videos abandoned (no partial results), summary written
"""


def add_commands(sub) -> None:
    p = sub.add_parser("batch", help="track many videos (folders, globs, list files) on Ray or serially",
                       description="Track every video the inputs name into OUT, one folder per "
                       "video, resumably.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video, folder, glob or list file")
    p.add_argument("--out-dir", required=True, metavar="OUT", help="output folder")
    g = p.add_argument_group("outputs per video")
    g.add_argument("--jsonl", action=argparse.BooleanOptionalAction, default=True,
                   help="landmarks.jsonl, one object per frame (default on)")
    g.add_argument("--csv", action="store_true", help="landmarks.csv, one row per face and frame")
    g.add_argument("--pts", action="store_true", help="pts/NNNNNN.pts per frame (300VW style)")
    g.add_argument("--video", action="store_true", help="overlay.mp4 with the landmarks drawn")
    g = p.add_argument_group("execution")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--serial", action="store_true", help="no Ray: one video after another here")
    where.add_argument("--address", default=None,
                       help="Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local Ray: videos at once (default: CPU count / --cpus-per-worker); "
                        "cluster: videos in flight; GPU: actors (default: GPUs / --gpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPUs per Ray task or actor, and its onnxruntime threads (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F",
                   help="run long-lived actors on F of a GPU each, the model loaded once per "
                        "actor (0.25: four per GPU; use --backend torch-cuda or tensorrt); "
                        "default 0: CPU tasks")
    g.add_argument("--max-retries", type=int, default=3,
                   help="reruns of a video whose worker process died (default 3)")
    redo = g.add_mutually_exclusive_group()
    redo.add_argument("--force", action="store_true", help="redo every video")
    redo.add_argument("--retry-failed", action="store_true", help="redo the videos that failed before")
    progress_arg(p)
    tracker_args(p)
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from tracker.batch.config import BatchConfig, Outputs
    from tracker.batch.executors import RayUnavailable, ray_available
    from tracker.batch.inputs import InputError
    from tracker.batch.runner import ERRORS, MANIFEST, SUMMARY, run_batch

    tracker_config = config_from_args(args)
    serial = args.serial
    address = None if serial else args.address or os.environ.get("RAY_ADDRESS") or None
    if not serial and not ray_available():
        if address or args.gpus_per_worker:
            raise UsageError(f"{'--address' if address else '--gpus-per-worker'} needs Ray, which "
                             f"is not installed: pip install 'subpixel-tracker[ray]'")
        print("note: Ray is not installed (pip install 'subpixel-tracker[ray]'); processing the "
              "videos serially", file=sys.stderr)
        serial = True
    if args.gpus_per_worker and tracker_config.backend not in ("torch-cuda", "tensorrt"):
        print(f"note: --backend {tracker_config.backend} infers on the CPU even in GPU workers; "
              f"use --backend torch-cuda or tensorrt", file=sys.stderr)
    try:
        outputs = Outputs(jsonl=args.jsonl, csv=args.csv, pts=args.pts, video=args.video)
        config = BatchConfig(args.out_dir, outputs, force=args.force, retry_failed=args.retry_failed,
                             serial=serial, address=address, workers=args.workers,
                             cpus_per_worker=args.cpus_per_worker,
                             gpus_per_worker=args.gpus_per_worker, max_retries=args.max_retries)
    except ValueError as e:
        raise UsageError(f"bad batch option: {e}") from None
    try:
        result = run_batch(args.inputs, tracker_config, config,
                           progress=None if args.quiet else sys.stderr)
    except (InputError, RayUnavailable) as e:
        raise UsageError(str(e)) from None
    t, out = result.summary["totals"], config.out_dir
    if args.quiet:  # else the progress bar said it as it happened
        for r in result.failed[:10]:
            print(f"failed: {r.path}: {r.error}", file=sys.stderr)
    print(f"{t['videos']} videos: {t['ok']} done, {t['skipped']} already done, {t['failed']} "
          f"failed" + (f", {t['not_done']} not done" if t["not_done"] else "")
          + f"; {t['frames']} frames in {result.summary['wall_s']:.1f} s ({t['fps']:.1f} fps, "
          f"{result.summary['mode']}, workers: {result.summary['workers']})", file=sys.stderr)
    print(f"results in {out} ({MANIFEST}, {SUMMARY}"
          + (f"; errors in {out / ERRORS})" if t["failed"] else ")"), file=sys.stderr)
    if result.interrupted:
        print("interrupted: finished videos keep their results; running ones were abandoned "
              "(rerun to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.failed else EXIT_OK
