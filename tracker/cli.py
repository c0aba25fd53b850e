"""`tracker`: track facial landmarks in videos, image folders and webcams.

    tracker track INPUT [-o out.mp4] [--pts-dir DIR] [--csv FILE] [--jsonl FILE] [--show]
                  [--backend onnxruntime|torch|torch-cuda|tensorrt] [--model PATH]
                  [--every N] [--detector short|full|auto] [--smooth] [--timings]
    tracker webcam [--device 0] [--no-window] [-o out.mp4] [--csv FILE] ...
    tracker info [--model PATH]

The CLI is thin: arguments -> `TrackerConfig` -> `Tracker` + sinks -> `run`. `main(argv)`
returns the exit code, so tests call it in-process.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_FACE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """\
exit codes:
  0    done (or the window was closed)
  1    a pipeline stage failed unexpectedly (message on stderr; TRACKER_DEBUG=1 for a traceback)
  2    bad usage or input: unreadable/corrupt/empty video, no frames, missing model, backend
       not available, output not writable, no camera, no display
  3    frames were processed but no face was found in any of them
  130  interrupted (Ctrl-C); outputs hold every frame processed so far and the video is
       finalised
"""

log = logging.getLogger("tracker")


# -- arguments -------------------------------------------------------------------------------
def _tracker_args(p: argparse.ArgumentParser) -> None:
    from tracker.engines.backends import BACKENDS
    from tracker.runtime.detect import CHOICES

    g = p.add_argument_group("tracker")
    g.add_argument("--backend", default="onnxruntime", choices=list(BACKENDS),
                   help="inference backend (default: onnxruntime, CPU)")
    g.add_argument("--model", default=None,
                   help="model file (.onnx; .pt for torch); default: the bundled rt-m")
    g.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own)")
    g.add_argument("--every", type=int, default=10, metavar="N",
                   help="re-detect faces every N frames (default 10; tracks that are lost are "
                        "re-detected at once)")
    g.add_argument("--detector", default="short", choices=list(CHOICES),
                   help="BlazeFace model: short (faces within ~2 m, default), full (small "
                        "faces), auto (full where short finds nothing)")
    g.add_argument("--max-faces", type=int, default=4, help="most faces tracked (default 4)")
    g.add_argument("--min-score", type=float, default=0.5, help="detection score threshold")
    g.add_argument("--lost-threshold", type=float, default=None,
                   help="mean heatmap peak under which a track is lost (default 0.4)")
    g.add_argument("--max-shape-residual", type=float, default=None, metavar="R",
                   help="points further than R inter-ocular distances (RMS) from the mean face "
                        "shape are not a face (default 0.5; 0 turns the check off)")
    g.add_argument("--no-tracking", action="store_true",
                   help="align every frame from a fresh detection (no tracking)")
    g.add_argument("--smooth", action="store_true", help="One-Euro temporal smoothing of the points")
    g.add_argument("--flip-test", action="store_true",
                   help="also infer each face mirrored and average (steadier, twice the inference)")


def _output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outputs")
    g.add_argument("-o", "--output", default=None, help="overlay video (.mp4, .mkv, .mov, .avi)")
    g.add_argument("--pts-dir", default=None, help="folder for 300VW-style NNNNNN.pts per frame")
    g.add_argument("--csv", default=None, help="CSV log: one row per face and frame")
    g.add_argument("--jsonl", default=None, help="JSON-lines log: one object per frame")
    g.add_argument("--timings", action="store_true", help="print per-stage timings at the end")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tracker", description="Real-time facial landmark tracker (68 points, subpixel "
        "heatmap regression).", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("track", help="track a video file, stream URL or folder of images",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file or URL, folder of images, or image file")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate given to image folders (default 30)")
    p.add_argument("--show", action="store_true", help="also show the overlay in a window")
    _output_args(p)
    _tracker_args(p)
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("webcam", help="track a webcam live, in a window",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", type=int, default=0, help="camera index (default 0)")
    p.add_argument("--no-window", action="store_true", help="no window: only record outputs")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    _output_args(p)
    _tracker_args(p)
    p.set_defaults(func=cmd_webcam)

    p = sub.add_parser("info", help="backends, devices and the model's metadata")
    p.add_argument("--model", default=None, help="model file (default: the bundled rt-m)")
    p.set_defaults(func=cmd_info)

    try:
        from tracker.evaluation import evaluate

        evaluate.add_subcommands(sub)
    except ImportError:
        pass
    return ap


def _user_errors(setup: bool = True) -> tuple[type[BaseException], ...]:
    """Errors that are the user's: one line on stderr and exit code 2. While setting up, a
    ValueError is a bad option (the config validates its fields); once running it is a bug."""
    from tracker.core.modelfile import ModelFileError
    from tracker.engines.backends import BackendUnavailable
    from tracker.runtime.capture import SourceError
    from tracker.runtime.sinks import SinkError

    errors = (SourceError, SinkError, ModelFileError, BackendUnavailable)
    return errors + (ValueError,) if setup else errors


def config_from_args(args: argparse.Namespace):
    from tracker.runtime.config import TrackerConfig

    extra = {} if args.lost_threshold is None else {"lost_threshold": args.lost_threshold}
    if args.max_shape_residual is not None:
        extra["max_shape_residual"] = args.max_shape_residual or None  # 0: off
    return TrackerConfig(model=args.model, backend=args.backend, threads=args.threads,
                         detector=args.detector, detect_every=args.every,
                         max_faces=args.max_faces, min_detection_score=args.min_score,
                         tracking=not args.no_tracking, smooth=args.smooth,
                         flip_test=args.flip_test, **extra)


def build_sinks(args: argparse.Namespace, source, window: bool = False):
    from tracker.runtime.sinks import CsvSink, JsonlSink, PtsSink, Sinks, VideoSink, WindowSink

    sinks = []
    try:
        if window:
            sinks.append(WindowSink("tracker (q to quit)"))
        if args.output:
            audio = getattr(source, "path", None) if getattr(source, "has_audio", False) else None
            rate = getattr(source, "rate", None) or source.fps
            sinks.append(VideoSink(args.output, rate, audio_from=audio))
        if args.pts_dir:
            sinks.append(PtsSink(args.pts_dir))
        if args.csv:
            sinks.append(CsvSink(args.csv))
        if args.jsonl:
            sinks.append(JsonlSink(args.jsonl))
    except Exception:
        Sinks(sinks).close()
        raise
    return Sinks(sinks)


# -- running ---------------------------------------------------------------------------------
class RunStats:
    def __init__(self) -> None:
        self.frames = 0
        self.with_face = 0
        self.detections = 0
        self.wall_s = 0.0


def run(tracker, source, sinks, progress: bool = True, timings: bool = False,
        max_frames: int | None = None, out=None) -> int:
    """Track `source` into `sinks` (threads: capture, track, render; sinks in this one).
    Returns an exit code; outputs are closed and complete whatever happens. Messages go to
    `out` (default stderr)."""
    from tracker.runtime.sinks import StopRequested, draw_overlay

    out = sys.stderr if out is None else out
    stats = RunStats()
    stages = []
    if sinks.need_overlay:
        stages.append(("render", lambda fr_res: (*fr_res, draw_overlay(fr_res[0].image, fr_res[1].faces))))
    total = getattr(source, "frames_declared", None) or len(getattr(source, "files", ())) or None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", file=out, dynamic_ncols=True, leave=True,
                   desc=Path(str(getattr(source, "path", "camera"))).name[:30])
    code = EXIT_OK
    t0 = time.perf_counter()
    try:
        for item in tracker.track_frames(source, stages):
            frame, result = item[0], item[1]
            overlay = item[2] if len(item) > 2 else None
            with tracker.timings.measure("write"):
                sinks.write(frame, result, overlay)
            stats.frames += 1
            stats.with_face += bool(result.faces)
            stats.detections += result.detected
            if bar is not None:
                bar.update(1)
            if max_frames is not None and stats.frames >= max_frames:
                break
    except StopRequested:
        pass
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        print("\ninterrupted: finishing the outputs with the frames processed so far", file=out)
    except _user_errors(setup=False) as e:
        code = EXIT_USAGE
        print(f"error: {e}", file=out)
    except Exception as e:  # noqa: BLE001 - reported without a traceback unless asked
        code = EXIT_ERROR
        notes = " ".join(getattr(e, "__notes__", []))
        print(f"error: {type(e).__name__}: {e} {notes}".rstrip(), file=out)
        if os.environ.get("TRACKER_DEBUG"):
            import traceback

            traceback.print_exception(e, file=out)
    finally:
        stats.wall_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        try:
            sinks.close()
        except Exception as e:  # noqa: BLE001
            print(f"error: could not finish an output: {e}", file=out)
            code = code or EXIT_ERROR
        source.close()
        tracker.close()
    for msg in source.skipped[:10]:
        print(f"skipped: {msg}", file=out)
    if len(source.skipped) > 10:
        print(f"skipped: ... {len(source.skipped) - 10} more", file=out)
    dropped = getattr(getattr(tracker, "runner", None), "dropped", 0)
    fps = stats.frames / stats.wall_s if stats.wall_s > 0 else 0.0
    print(f"{stats.frames} frames ({stats.with_face} with a face, detector run on "
          f"{stats.detections}) in {stats.wall_s:.2f} s, {fps:.1f} fps"
          + (f"; {len(source.skipped)} skipped" if source.skipped else "")
          + (f"; {dropped} stale camera frames dropped" if dropped else ""), file=out)
    for s in sinks.sinks:
        where = getattr(s, "path", None) or getattr(s, "folder", None)
        if where is not None and Path(where).exists():
            print(f"wrote {where}", file=out)
    if timings:
        print(tracker.timings.table(stats.frames, stats.wall_s), file=out)
    if code == EXIT_OK and stats.frames == 0:
        print(f"error: no frames could be decoded from {source.description}", file=out)
        return EXIT_USAGE
    if code == EXIT_OK and stats.with_face == 0:
        print("no face found in any frame", file=out)
        return EXIT_NO_FACE
    return code


def cmd_track(args: argparse.Namespace) -> int:
    from tracker.runtime.capture import open_source
    from tracker.runtime.tracker import Tracker

    if args.input.isdigit():
        print("error: for a webcam use `tracker webcam --device N`", file=sys.stderr)
        return EXIT_USAGE
    if args.fps is not None and not args.fps > 0:
        print("error: --fps must be positive", file=sys.stderr)
        return EXIT_USAGE
    source = sinks = None
    try:
        config = config_from_args(args)
        source = open_source(args.input, fps=args.fps)
        tracker = Tracker(config)
        sinks = build_sinks(args, source, window=args.show)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        if source is not None:
            source.close()
        return EXIT_USAGE
    if not sinks.sinks:
        print("note: no output asked for (-o, --pts-dir, --csv, --jsonl, --show); tracking anyway",
              file=sys.stderr)
    return run(tracker, source, sinks, progress=not args.quiet, timings=args.timings)


def cmd_webcam(args: argparse.Namespace) -> int:
    from tracker.runtime.capture import CameraSource
    from tracker.runtime.sinks import has_display
    from tracker.runtime.tracker import Tracker

    window = not args.no_window
    if window and not has_display():
        print("error: no display to open a window on (DISPLAY is not set); use --no-window "
              "with -o/--csv/--jsonl to record instead", file=sys.stderr)
        return EXIT_USAGE
    if not window and not (args.output or args.pts_dir or args.csv or args.jsonl):
        print("error: --no-window needs an output (-o, --pts-dir, --csv or --jsonl)",
              file=sys.stderr)
        return EXIT_USAGE
    source = None
    try:
        config = config_from_args(args)
        source = CameraSource(args.device)
        tracker = Tracker(config)
        sinks = build_sinks(args, source, window=window)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        if source is not None:
            source.close()
        return EXIT_USAGE
    return run(tracker, source, sinks, progress=not args.quiet, timings=args.timings,
               max_frames=args.max_frames)


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import tracker
    from tracker.core.modelfile import ModelFileError, read_onnx_info
    from tracker.engines.backends import available_backends, resolve_model

    print(f"tracker {tracker.__version__} on Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores")
    print("backends:")
    for name, state in available_backends().items():
        print(f"  {name:<12} {state}")
    try:
        import torch

        cuda = (f"{torch.cuda.device_count()} CUDA device(s): "
                + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                if torch.cuda.is_available() else "no CUDA device")
    except Exception as e:  # noqa: BLE001
        cuda = f"unknown ({e})"
    print(f"devices: cpu; {cuda}")
    try:
        import mediapipe

        print(f"detector: mediapipe {mediapipe.__version__} BlazeFace (short, full)")
    except ImportError as e:
        print(f"detector: unavailable ({e})")
    try:
        path = resolve_model(args.model, ".onnx")
        if path.suffix == ".pt":
            from tracker.core.modelfile import load_torch

            info = load_torch(path)[1]
        else:
            info = read_onnx_info(path)
    except ModelFileError as e:
        print(f"model: {e}")
        return EXIT_OK if args.model is None else EXIT_USAGE
    m, c = info.model, info.codec
    print(f"model: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"  name {info.name}, scheme {info.scheme} ({m.n_points} points), input "
          f"{m.input_hw[0]}x{m.input_hw[1]} RGB, mean {m.mean}, std {m.std}")
    print(f"  FAN: {m.stacks} stack(s), width {m.width}, depth {m.depth}, heatmaps "
          f"{c.heatmap_hw[0]}x{c.heatmap_hw[1]}")
    print(f"  codec: {c.encoding} encoding, sigma {c.sigma}, decoder {c.decoder} (window "
          f"{c.window}, tau {c.tau}); crop ratio {info.crop_ratio:.4f}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="tracker: %(message)s", level=logging.WARNING)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or bad usage (2)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
