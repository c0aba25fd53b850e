"""`tracker track`, `tracker webcam` and `tracker info`: arguments -> config -> `Run`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tracker.cli.options import UsageError, config_from_args, progress_arg, tracker_args

EXIT_OK, EXIT_NO_FACE = 0, 3


def output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outputs")
    g.add_argument("-o", "--output", default=None, help="overlay video (.mp4, .mkv, .mov, .avi)")
    g.add_argument("--pts-dir", default=None, help="folder for 300VW-style NNNNNN.pts per frame")
    g.add_argument("--csv", default=None, help="CSV log: one row per face and frame")
    g.add_argument("--jsonl", default=None, help="JSON-lines log: one object per frame")
    g.add_argument("--timings", action="store_true", help="print per-stage timings at the end")
    progress_arg(g)


def add_commands(sub, epilog: str) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("track", help="track a video file, stream URL or folder of images",
                       epilog=epilog, formatter_class=fmt)
    p.add_argument("input", help="video file or URL, folder of images, or image file")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate given to image folders (default 30)")
    p.add_argument("--show", action="store_true", help="also show the overlay in a window")
    output_args(p)
    tracker_args(p)
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("webcam", help="track a webcam live, in a window", epilog=epilog,
                       formatter_class=fmt)
    p.add_argument("--device", type=int, default=0, help="camera index (default 0)")
    p.add_argument("--no-window", action="store_true", help="no window: only record outputs")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    output_args(p)
    tracker_args(p)
    # a live overlay is judged by its steadiness: One-Euro smoothing is on by default here
    # (track and the evaluations stay raw, --smooth to opt in)
    p.add_argument("--no-smooth", dest="smooth", action="store_false",
                   help="raw points, no One-Euro smoothing (the webcam smooths by default)")
    p.set_defaults(func=cmd_webcam, smooth=True)

    from tracker.core.modelfile import DEFAULT_MODEL

    p = sub.add_parser("info", help="backends, devices and the model's metadata")
    p.add_argument("--model", default=None, help=f"model file (default: the bundled {DEFAULT_MODEL})")
    p.set_defaults(func=cmd_info)


def build_sinks(args: argparse.Namespace, source, window: bool = False):
    """The outputs the options ask for; any opened before a failure are closed again."""
    from tracker.runtime.sinks import CsvSink, JsonlSink, PtsSink, Sinks, WindowSink
    from tracker.runtime.video_sink import VideoSink

    sinks = []
    try:
        if window:
            sinks.append(WindowSink("tracker (q to quit)"))
        if args.output:
            audio = getattr(source, "path", None) if getattr(source, "has_audio", False) else None
            rate = getattr(source, "rate", None) or source.fps
            # a file's frame times count from its start (the audio's too); a camera's from
            # its first frame
            origin = None if getattr(source, "live", False) else 0.0
            sinks.append(VideoSink(args.output, rate, audio_from=audio, origin=origin))
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


def _run(args: argparse.Namespace, open_source, window: bool, max_frames: int | None = None) -> int:
    """Set up (a failure closes what was opened), run, report; the CLI maps exceptions."""
    from tracker.runtime.run import Run, open_parts
    from tracker.runtime.tracker import Tracker

    config = config_from_args(args)
    source, tracker, sinks = open_parts(open_source, lambda: Tracker(config),
                                        lambda src: build_sinks(args, src, window=window))
    if not sinks.sinks:
        print("note: no output asked for (-o, --pts-dir, --csv, --jsonl, --show); tracking anyway",
              file=sys.stderr)
    run = Run(tracker, source, sinks, max_frames, progress=None if args.quiet else sys.stderr)
    try:
        run()
    finally:
        _report(run, args.timings)
    if run.stats.frames == 0:
        raise UsageError(f"no frames could be decoded from {source.description}")
    if run.stats.with_face == 0:
        print("no face found in any frame", file=sys.stderr)
        return EXIT_NO_FACE
    return EXIT_OK


def _report(run, timings: bool) -> None:
    s, out = run.stats, sys.stderr
    for msg in s.skipped[:10]:
        print(f"skipped: {msg}", file=out)
    if len(s.skipped) > 10:
        print(f"skipped: ... {len(s.skipped) - 10} more", file=out)
    print(f"{s.frames} frames ({s.with_face} with a face, detector run on {s.detections}) in "
          f"{s.wall_s:.2f} s, {s.fps:.1f} fps"
          + (f"; {len(s.skipped)} skipped" if s.skipped else "")
          + (f"; {s.dropped} stale frames dropped to keep up with the camera" if s.dropped else ""),
          file=out)
    for sink in run.sinks.sinks:
        where = getattr(sink, "path", None) or getattr(sink, "folder", None)
        if where is not None and Path(where).exists():
            print(f"wrote {where}", file=out)
    if timings:
        print(run.tracker.timings.table(s.frames, s.wall_s), file=out)


def cmd_track(args: argparse.Namespace) -> int:
    from tracker.runtime.capture import open_source

    if args.input.isdigit():
        raise UsageError("for a webcam use `tracker webcam --device N`")
    if args.fps is not None and not args.fps > 0:
        raise UsageError("--fps must be positive")
    return _run(args, lambda: open_source(args.input, fps=args.fps), window=args.show)


def cmd_webcam(args: argparse.Namespace) -> int:
    from tracker.runtime.camera_source import CameraSource
    from tracker.runtime.sinks import has_display

    window = not args.no_window
    if window and not has_display():
        raise UsageError("no display to open a window on (DISPLAY is not set); use --no-window "
                         "with -o/--csv/--jsonl to record instead")
    if not window and not (args.output or args.pts_dir or args.csv or args.jsonl):
        raise UsageError("--no-window needs an output (-o, --pts-dir, --csv or --jsonl)")
    return _run(args, lambda: CameraSource(args.device), window=window, max_frames=args.max_frames)


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import tracker
    from tracker.core.modelfile import ROLES, ModelFileError, bundled_models, read_onnx_info
    from tracker.engines.registry import available_backends, resolve_model

    print(f"tracker {tracker.__version__} on Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores")
    print("bundled models (--model NAME): " + (", ".join(
        f"{p.stem} ({p.stat().st_size / 1e6:.1f} MB{', ' + ROLES[p.stem] if p.stem in ROLES else ''})"
        for p in bundled_models()) or "none"))
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
        if args.model is not None:
            raise
        print(f"model: {e}")
        return EXIT_OK
    m, c = info.model, info.codec
    print(f"model: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"  name {info.name}, scheme {info.scheme} ({m.n_points} points), input "
          f"{m.input_hw[0]}x{m.input_hw[1]} RGB, mean {m.mean}, std {m.std}")
    print(f"  FAN: {m.stacks} stack(s), width {m.width}, depth {m.depth}, heatmaps "
          f"{c.heatmap_hw[0]}x{c.heatmap_hw[1]}")
    print(f"  codec: {c.encoding} encoding, sigma {c.sigma}, decoder {c.decoder} (window "
          f"{c.window}, tau {c.tau}); crop ratio {info.crop_ratio:.4f}")
    return EXIT_OK
