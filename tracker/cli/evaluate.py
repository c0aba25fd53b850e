"""`tracker eval-300vw` and `tracker eval-images`: arguments -> `tracker.evaluation`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracker.cli.options import UsageError, config_from_args, progress_arg, tracker_args


def add_commands(sub) -> None:
    from tracker.evaluation import videos

    p = sub.add_parser("eval-300vw", help="accuracy on 300VW-layout videos (tracker as deployed)",
                       description=videos.__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="a folder of 300VW clips (clip/vid.mp4|vid.avi|imgs/ + clip/annot/) "
                                "or one clip folder")
    p.add_argument("--category", default="all", choices=["A", "B", "C", "other", "all"],
                   help="300VW test scenario (A: 1, B: 2, C: 3), other clips, or all (default)")
    p.add_argument("--points", default="49", choices=["49", "68"],
                   help="headline point set for the table (both are always written)")
    p.add_argument("--out", default="eval-300vw", help="output folder (default ./eval-300vw)")
    p.add_argument("--max-frames", type=int, default=None, help="decode at most this many frames per clip")
    p.add_argument("--broken-frames", default="auto",
                   help="300VW broken_frames.npy to exclude (default: ROOT/broken_frames.npy if "
                        "present; 'none' to score every annotated frame)")
    g = p.add_argument_group("batch (the clips' videos through `tracker batch`, resumable; "
                             "landmarks kept under OUT/landmarks)")
    g.add_argument("--batch", action="store_true", help="through the batch machinery, serially")
    g.add_argument("--workers", type=int, default=None, help="on a local Ray with N workers")
    g.add_argument("--address", default=None, help="on a Ray cluster (or RAY_ADDRESS)")
    progress_arg(p)
    tracker_args(p)
    p.set_defaults(func=cmd_300vw)

    p = sub.add_parser("eval-images", help="accuracy on labelled still images")
    p.add_argument("roots", nargs="+", help="image folders with .pts (or WFLW list files)")
    p.add_argument("--layout", default="folder", choices=["folder", "300w", "wflw"])
    p.add_argument("--images", default=None, help="WFLW images folder (layout wflw)")
    p.add_argument("--protocol", default="gt-box", choices=["gt-box", "detector"],
                   help="crop from the ground-truth landmarks' box (default) or from the "
                        "tracker's own detector (a missed face counts as NME 1.0)")
    p.add_argument("--out", default="eval-images", help="output folder (default ./eval-images)")
    progress_arg(p)
    tracker_args(p)
    p.set_defaults(func=cmd_images)


def cmd_300vw(args: argparse.Namespace) -> int:
    from tracker.evaluation.report import table_300vw, write_300vw
    from tracker.evaluation.scoring import MISSED_NME
    from tracker.evaluation.videos import clip_folders, evaluate_300vw

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    broken = None if args.broken_frames == "none" else args.broken_frames
    config = config_from_args(args)
    clip_folders(args.root, args.category)  # bad paths fail before any model loads
    predicted = _batch_landmarks(args, config) if (args.batch or args.workers or args.address) else None
    result = evaluate_300vw(args.root, config, category=args.category, max_frames=args.max_frames,
                            broken_frames=broken, progress=not args.quiet, predicted=predicted)
    paths = write_300vw(result, args.out, args.points)
    c = result["counts"]
    print(table_300vw(result, args.points))
    print(f"{c['clips']} clips, {c['frames_run']} frames run at {result['speed']['fps']:.1f} fps, "
          f"{c['frames_scored']} annotated frames scored, {c['missed']} missed (NME {MISSED_NME:g}; "
          f"{c['missed_no_face']} with no face returned, the rest with faces elsewhere), "
          f"{c['frames_excluded_broken']} excluded as broken; results in {paths[0].parent}")
    return 0


def _batch_landmarks(args: argparse.Namespace, config) -> dict:
    """Track the clips' video files with `tracker.batch` (serially, or on Ray with --workers
    or --address) and return them as `evaluate_300vw`'s `predicted`; clips stored as imgs/
    folders, and videos the batch could not do, are left to the in-process run."""
    from tracker.batch import BatchConfig, track_videos
    from tracker.batch.publish import read_landmarks
    from tracker.core.datasets import video_clip
    from tracker.evaluation.videos import clip_folders

    if args.max_frames is not None:
        raise UsageError("--max-frames tracks part of each clip; the batch tracks whole videos")
    videos = {c.name: video_clip(c)[0].resolve() for c in clip_folders(args.root, args.category)}
    files = {name: v for name, v in videos.items() if v.is_file()}
    batch = BatchConfig(Path(args.out) / "landmarks", serial=not (args.workers or args.address),
                        address=args.address, workers=args.workers)
    paths, _ = track_videos(list(files.values()), config, batch, None if args.quiet else sys.stderr)
    done = {Path(v).resolve(): p for v, p in paths.items() if p is not None}
    return {name: [(index + 1, faces) for index, _, faces in read_landmarks(done[v])]
            for name, v in files.items() if v in done}


def cmd_images(args: argparse.Namespace) -> int:
    from tracker.evaluation.images import evaluate_images, image_records
    from tracker.evaluation.report import table_images, write_images

    records = image_records(args.roots, args.layout, args.images)  # before any model loads
    cfg = config_from_args(args)
    name = Path(cfg.model).stem if cfg.model else "rt-m"
    if args.protocol == "gt-box":
        from tracker.engines.registry import load_backend
        from tracker.runtime.align import Aligner

        aligner = Aligner(load_backend(cfg.backend, cfg.model, cfg.threads))
        result = evaluate_images(records, aligner, args.protocol, not args.quiet, name)
    else:
        from tracker.runtime.tracker import Tracker

        with Tracker(cfg) as tracker:
            result = evaluate_images(records, tracker, args.protocol, not args.quiet, name)
    paths = write_images([result], args.out)
    print(table_images([result]))
    print(f"results in {paths[0].parent}", file=sys.stdout)
    return 0
