"""Command-line options shared by the subcommands, and the one place they become a
`TrackerConfig`."""
from __future__ import annotations

import argparse


class UsageError(Exception):
    """A bad option or input, said in one line; exit code 2."""


def tracker_args(p: argparse.ArgumentParser) -> None:
    """The options that make a `TrackerConfig` (see `config_from_args`)."""
    from tracker.core.modelfile import DEFAULT_MODEL, ROLES
    from tracker.engines.registry import BACKENDS
    from tracker.runtime.detect import CHOICES

    g = p.add_argument_group("tracker")
    g.add_argument("--backend", default="onnxruntime", choices=list(BACKENDS),
                   help="inference backend (default: onnxruntime, CPU)")
    g.add_argument("--model", default=None,
                   help="model file (.onnx; .pt for torch) or a bundled model's name (`tracker info` lists "
                        "them; " + ", ".join(f"{n}: {r}" for n, r in ROLES.items() if n != DEFAULT_MODEL)
                        + f"); default: the bundled {DEFAULT_MODEL}")
    g.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own)")
    g.add_argument("--no-spin", dest="spin", action="store_false",
                   help="onnxruntime's threads sleep between operators instead of spinning "
                        "(slower; for machines whose cores other processes need)")
    g.add_argument("--every", type=int, default=10, metavar="N",
                   help="re-detect faces every N frames (default 10; tracks that are lost are "
                        "re-detected at once)")
    g.add_argument("--detector", default="both", choices=list(CHOICES),
                   help="BlazeFace model: both (short and full range merged, default: finds "
                        "small faces beside large ones), short (faces within ~2 m), full "
                        "(small faces), auto (full where short finds nothing)")
    g.add_argument("--max-faces", type=int, default=4, help="most faces tracked (default 4)")
    g.add_argument("--min-score", type=float, default=0.5, help="detection score threshold")
    g.add_argument("--lost-threshold", type=float, default=None,
                   help="mean heatmap peak under which a track is lost (default 0.4)")
    g.add_argument("--max-shape-residual", type=float, default=None, metavar="R",
                   help="points further than R inter-ocular distances (RMS) from the mean face "
                        "shape are not a face (default 0.5; 0 turns the check off)")
    g.add_argument("--no-tracking", action="store_true",
                   help="align every frame from a fresh detection (no tracking)")
    g.add_argument("--no-turned-faces", action="store_true",
                   help="do not look for faces lying sideways or upside down (by default a cut's "
                        "or a scheduled detection that finds no face upright also searches the "
                        "frame turned, and a face that fits better turned is turned)")
    g.add_argument("--refine", type=int, default=1, metavar="N",
                   help="passes that re-crop a newly detected face from its own landmarks "
                        "(default 1: the detector's box is only roughly the model's crop; 0 = off)")
    g.add_argument("--smooth", action="store_true", help="One-Euro temporal smoothing of the points")
    g.add_argument("--flip-test", action="store_true",
                   help="also infer each face mirrored and average (steadier, twice the inference)")


def progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress bar")


def config_from_args(args: argparse.Namespace):
    """The `TrackerConfig` the options describe; a value it refuses is a `UsageError`."""
    from tracker.runtime.config import TrackerConfig

    extra = {} if args.lost_threshold is None else {"lost_threshold": args.lost_threshold}
    if args.max_shape_residual is not None:
        extra["max_shape_residual"] = args.max_shape_residual or None  # 0: off
    try:
        return TrackerConfig(model=args.model, backend=args.backend, threads=args.threads, spin=args.spin,
                             detector=args.detector, detect_every=args.every,
                             max_faces=args.max_faces, min_detection_score=args.min_score,
                             tracking=not args.no_tracking, turned_faces=not args.no_turned_faces,
                             smooth=args.smooth,
                             refine=args.refine, flip_test=args.flip_test, **extra)
    except ValueError as e:  # the config validates its fields
        raise UsageError(f"bad tracker option: {e}") from None
