"""The runtime loop: a source through the tracker into sinks, with statistics.

    stats = Run(tracker, source, sinks)()      # raises what went wrong, after closing outputs

Threads: capture, track, and render when a sink wants the overlay; the sinks run in the
caller's thread (where a GUI window must live). Whatever happens (a stage fails, Ctrl-C, a
window is closed), every output is closed and holds every frame processed so far, and
`stats` counts what was done. The source is released only after the thread that reads it has
stopped: the pipeline is stopped first, and a source thread still inside a read after the
runner's stop timeout is logged and the source left open (never released under a read).
The caller decides what an exception means (the CLI maps them to exit codes).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tracker.runtime.sinks import Sinks, StopRequested, draw_overlay

log = logging.getLogger("tracker")


@dataclass
class RunStats:
    """What one run did: frames delivered, frames with a face, faces, detector runs, wall time,
    frames a live run dropped (in all its queues), and the source's skip messages.
    `source_released` is False when the source was left open because a thread still read it."""

    frames: int = 0
    with_face: int = 0
    faces: int = 0
    detections: int = 0
    wall_s: float = 0.0
    dropped: int = 0
    skipped: list[str] = field(default_factory=list)
    source_released: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class Run:
    """One run of `tracker` (a `Tracker`) over `source` (a `tracker.runtime.capture.Source`)
    into `sinks`; call it once. `max_frames` stops early; `progress` is a stream for a
    progress bar (None: no bar), shown once the run has lasted `BAR_AFTER_S` (a short run
    never imports tqdm). The run closes the tracker at its end unless `close_tracker` is
    False (a caller that runs one tracker over many sources, as a batch worker does)."""

    #: seconds before the progress bar appears
    BAR_AFTER_S = 0.5

    def __init__(self, tracker, source, sinks: Sinks, max_frames: int | None = None,
                 progress: TextIO | None = None, close_tracker: bool = True):
        self.tracker, self.source, self.sinks = tracker, source, sinks
        self.max_frames, self.progress = max_frames, progress
        self.close_tracker = close_tracker
        self.stats = RunStats()

    def _stages(self) -> list:
        if not self.sinks.need_overlay:
            return []
        return [("render", lambda pair: (*pair, draw_overlay(pair[0].image, pair[1].faces)))]

    def _bar(self):
        if self.progress is None:
            return None
        from tqdm import tqdm

        src = self.source
        total = getattr(src, "frames_declared", None) or len(getattr(src, "files", ())) or None
        name = Path(str(getattr(src, "path", "camera"))).name[:30]
        return tqdm(total=total, unit="frame", file=self.progress, dynamic_ncols=True, leave=True,
                    desc=name)

    def __call__(self) -> RunStats:
        stats, tracker = self.stats, self.tracker
        bar = None
        t0 = time.perf_counter()
        close_error: Exception | None = None
        frames = tracker.track_frames(self.source, self._stages())
        try:
            for item in frames:
                frame, result = item[0], item[1]
                overlay = item[2] if len(item) > 2 else None
                with tracker.timings.measure("write"):
                    self.sinks.write(frame, result, overlay)
                stats.frames += 1
                stats.with_face += bool(result.faces)
                stats.faces += len(result.faces)
                stats.detections += result.detected
                if bar is not None:
                    bar.update(1)
                elif self.progress is not None and time.perf_counter() - t0 > self.BAR_AFTER_S:
                    bar = self._bar()
                    bar.update(stats.frames)
                if self.max_frames is not None and stats.frames >= self.max_frames:
                    break
        except StopRequested:  # the window was closed
            pass
        finally:
            frames.close()  # stops the pipeline's threads and waits for them
            stats.wall_s = time.perf_counter() - t0
            if bar is not None:
                bar.close()
            try:
                self.sinks.close()
            except Exception as e:  # noqa: BLE001 - raised below unless something else was
                close_error = e
            stats.source_released = self._release_source()
            if self.close_tracker:
                tracker.close()
            stats.skipped = list(getattr(self.source, "skipped", []))
            stats.dropped = getattr(getattr(tracker, "runner", None), "dropped", 0)
        if close_error is not None:
            raise RuntimeError(f"could not finish an output: {close_error}") from close_error
        return stats

    def _release_source(self) -> bool:
        """Close the source once the thread reading it has stopped; else log and leave it."""
        runner = getattr(self.tracker, "runner", None)
        if runner is not None and not runner.close():
            log.warning("%s: still being read after the stop; left open rather than released "
                        "under a read", getattr(self.source, "description", "the source"))
            return False
        self.source.close()
        return True


def open_parts(open_source, make_tracker, make_sinks):
    """(source, tracker, sinks) of a run, opened in that order by the three callables
    (`make_tracker()` may return None for a tracker the caller lends; `make_sinks(source)`);
    when one fails, those already opened are closed before the error goes on."""
    source = tracker = None
    try:
        source = open_source()
        tracker = make_tracker()
        return source, tracker, make_sinks(source)
    except BaseException:
        if tracker is not None:
            tracker.close()
        if source is not None:
            source.close()
        raise
