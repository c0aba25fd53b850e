"""The runtime loop (`Run`): the source is released only after the thread reading it has
stopped, and left open (logged) when that thread cannot stop; statistics of a run."""
from __future__ import annotations

import itertools
import logging
import threading
import time

import numpy as np
import pytest

from tracker.runtime.frames import Frame, Source
from tracker.runtime.pipeline import Runner, Timings
from tracker.runtime.results import FrameResult
from tracker.runtime.run import Run
from tracker.runtime.sinks import Sinks

IMAGE = np.zeros((4, 6, 3), np.uint8)


class ReadTrackingSource(Source):
    """Frames whose reads take `read_s` (or block until `release` is set); close() asserts
    that no read is in progress, as releasing a capture under a read would crash."""

    def __init__(self, live: bool = False, read_s: float = 0.02, release: threading.Event | None = None,
                 frames: int | None = None):
        super().__init__()
        self.live, self.read_s, self.release, self.frames = live, read_s, release, frames
        self.reading = False
        self.closed = False

    @property
    def description(self) -> str:
        return "fake camera"

    def __iter__(self):
        for i in itertools.count() if self.frames is None else range(self.frames):
            assert not self.closed, "read after close"
            self.reading = True
            if self.release is not None and i >= 3:
                self.release.wait()
            else:
                time.sleep(self.read_s)
            self.reading = False
            yield Frame(i, i / 30, IMAGE)

    def close(self) -> None:
        assert not self.reading, "source closed while a read is in progress"
        self.closed = True


class FakeTracker:
    """What `Run` needs of a `Tracker`: `track_frames` through a real `Runner`, timings, close."""

    def __init__(self, stop_timeout_s: float = 5.0):
        self.timings = Timings()
        self.runner: Runner | None = None
        self.stop_timeout_s = stop_timeout_s
        self.closed = False

    def track_frames(self, source, stages=()):
        def track(frame):
            return frame, FrameResult(frame.index, frame.timestamp, [], detected=frame.index == 0)

        self.runner = Runner(source, [("track", track), *stages], queue_size=2,
                             live=source.live, timings=self.timings,
                             stop_timeout_s=self.stop_timeout_s)
        yield from self.runner

    def close(self) -> None:
        self.closed = True


class SlowSink:
    def __init__(self, seconds: float = 0.0, fail_at: int | None = None):
        self.seconds, self.fail_at, self.frames = seconds, fail_at, []

    def write(self, frame, result, overlay=None):
        if self.fail_at is not None and frame.index == self.fail_at:
            raise OSError("disk full")
        time.sleep(self.seconds)
        self.frames.append(frame.index)

    def close(self):
        pass


@pytest.mark.parametrize("live", [False, True])
def test_the_source_is_closed_after_its_thread_stopped(live):
    source = ReadTrackingSource(live=live, read_s=0.03)
    tracker = FakeTracker()
    sink = SlowSink()
    stats = Run(tracker, source, Sinks([sink]), max_frames=5)()
    assert source.closed and stats.source_released and tracker.closed
    # frame 0 is the detected one; a live source drops frames when the machine is starved,
    # frame 0 among them
    assert stats.frames == 5 and stats.detections == (0 in sink.frames)
    assert live or sink.frames == [0, 1, 2, 3, 4]
    assert tracker.runner.source_stopped


def test_a_failing_sink_still_closes_the_source_after_its_thread(tmp_path):
    source = ReadTrackingSource(read_s=0.03)
    run = Run(FakeTracker(), source, Sinks([SlowSink(fail_at=4)]))
    with pytest.raises(OSError, match="disk full"):
        run()
    assert source.closed and run.stats.source_released and run.stats.frames == 4


def test_a_source_stuck_in_a_read_is_left_open_and_logged(caplog):
    release = threading.Event()
    source = ReadTrackingSource(live=True, release=release)
    tracker = FakeTracker(stop_timeout_s=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="tracker"):
            stats = Run(tracker, source, Sinks([SlowSink()]), max_frames=3)()
        assert stats.frames == 3 and not stats.source_released and not source.closed
        assert "fake camera: still being read after the stop" in caplog.text
        assert "tracker-source" in caplog.text
        assert tracker.closed  # the rest is released as usual
    finally:
        release.set()
    tracker.runner.threads[0].join(5)
    assert tracker.runner.source_stopped


def test_a_live_run_counts_frames_dropped_in_every_queue():
    source = ReadTrackingSource(live=True, read_s=0.001, frames=300)
    sink = SlowSink(seconds=0.01)
    tracker = FakeTracker()
    stats = Run(tracker, source, Sinks([sink]))()
    assert stats.dropped == sum(tracker.runner.drops) > 0
    assert stats.frames + stats.dropped == 300
    assert sink.frames == sorted(sink.frames) and sink.frames[-1] == 299  # the last one arrives


def test_a_file_run_drops_nothing():
    source = ReadTrackingSource(read_s=0.0, frames=50)
    sink = SlowSink(seconds=0.002)
    stats = Run(FakeTracker(), source, Sinks([sink]))()
    assert stats.dropped == 0 and sink.frames == list(range(50)) and stats.fps > 0


def test_the_progress_bar_appears_only_in_a_run_that_lasts(monkeypatch):
    import io

    quick = io.StringIO()
    Run(FakeTracker(), ReadTrackingSource(read_s=0.0, frames=3), Sinks([]), progress=quick)()
    assert quick.getvalue() == ""  # a short run shows (and imports) no bar
    monkeypatch.setattr(Run, "BAR_AFTER_S", 0.0)
    shown = io.StringIO()
    Run(FakeTracker(), ReadTrackingSource(read_s=0.0, frames=3), Sinks([]), progress=shown)()
    assert "3frame [" in shown.getvalue()


def test_a_run_counts_faces_and_can_leave_a_lent_tracker_open():
    from tests.tracker.runtime_fixtures import CLIP
    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.run import Run
    from tracker.runtime.sinks import Sinks
    from tracker.runtime.tracker import Tracker
    from tracker.runtime.video_source import VideoSource

    class Detector:
        closed = 0

        def __init__(self, real):
            self.real = real

        def detect(self, image):
            return self.real.detect(image)

        def close(self):
            self.closed += 1

    from tracker.runtime.detect import FaceDetector

    with FaceDetector("both") as real:
        det = Detector(real)
        tracker = Tracker(TrackerConfig(), detector=det)
        for close in (False, True):
            stats = Run(tracker, VideoSource(CLIP), Sinks([]), close_tracker=close)()
            assert stats.frames == 72 and stats.faces == 72 and stats.with_face == 72
            assert det.closed == int(close)
