"""`tracker`: track facial landmarks in videos, image folders and webcams; evaluate accuracy.

    tracker track INPUT [-o out.mp4] [--pts-dir DIR] [--csv FILE] [--jsonl FILE] [--show] ...
    tracker webcam [--device 0] [--no-window] [-o out.mp4] [--csv FILE] ...
    tracker info [--model PATH]
    tracker eval-300vw ROOT ... | tracker eval-images ROOT... ...

The CLI is thin: each subcommand (`tracker.cli.track`, `tracker.cli.evaluate`) turns its
arguments into a config and calls the library; `main` is the one place where exceptions
become exit codes. `main(argv)` returns the code, so tests call it in-process.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from tracker.cli.options import UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_FACE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_SOURCE_LOST = 4

EPILOG = """\
exit codes:
  0    done (or the window was closed)
  1    a pipeline stage failed unexpectedly (message on stderr; TRACKER_DEBUG=1 for a traceback)
  2    bad usage or input: unreadable/corrupt/empty video, no frames, missing model, backend
       not available, output not writable, no camera, no display
  3    frames were processed but no face was found in any of them
  4    the camera stopped delivering frames mid-run and could not be reopened; outputs
       hold every frame processed until then
  130  interrupted (Ctrl-C); outputs hold every frame processed so far and the video is
       finalised
"""


def build_parser() -> argparse.ArgumentParser:
    from tracker.cli import batch, evaluate, track

    ap = argparse.ArgumentParser(
        prog="tracker", description="Real-time facial landmark tracker (68 points, subpixel "
        "heatmap regression).", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    track.add_commands(sub, EPILOG)
    evaluate.add_commands(sub)
    batch.add_commands(sub)
    return ap


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's (bad options, paths, files, devices): one line on
    stderr and exit code 2. Anything else is a bug: exit code 1."""
    from tracker.core.datasets import DatasetError
    from tracker.core.modelfile import ModelFileError
    from tracker.core.pts import PtsError
    from tracker.engines.backend import BackendUnavailable
    from tracker.evaluation.scoring import EvalError
    from tracker.runtime.frames import SourceError
    from tracker.runtime.sinks import SinkError

    return (UsageError, SourceError, SinkError, ModelFileError, BackendUnavailable, EvalError,
            DatasetError, PtsError, FileNotFoundError)


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
        print("\ninterrupted: the outputs hold the frames processed so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_errors() as e:
        from tracker.runtime.frames import SourceLost

        print(f"error: {e}", file=sys.stderr)
        return EXIT_SOURCE_LOST if isinstance(e, SourceLost) else EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - reported without a traceback unless asked
        notes = " ".join(getattr(e, "__notes__", []))
        print(f"error: {type(e).__name__}: {e} {notes}".rstrip(), file=sys.stderr)
        if os.environ.get("TRACKER_DEBUG"):
            import traceback

            traceback.print_exception(e, file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
