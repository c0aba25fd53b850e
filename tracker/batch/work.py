"""The work on one video, the same wherever it runs (the driver, a Ray task, a Ray actor).

    record = track_video(job, tracker_config, outputs)          # one Tracker for this video
    record = VideoWorker(tracker_config, outputs).track(job)    # an actor's Tracker, reused

`track_video` runs the runtime loop (`tracker.runtime.run.Run`) from the video into the
runtime's sinks in a temporary folder, then publishes it with its `DONE.json`
(`tracker.batch.publish`). It never raises for a bad video: an exception becomes a failed
`VideoRecord` (the driver records it; Ray does not retry it). Ctrl-C (KeyboardInterrupt) and
the death of the process are not caught: the temporary folder is removed on the way out, or by
the next attempt at the same video.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tracker.batch.publish import check_place, publish, remove_leftovers, temp_folder

#: Test hook: a file naming "VIDEO_FILE_NAME FRAME_INDEX"; the process that reaches that
#: frame of that video removes the file and dies at once (os._exit), as a crashed worker would.
CRASH_ENV = "TRACKER_BATCH_CRASH_FILE"
CRASH_EXIT = 71


@dataclass(frozen=True)
class VideoJob:
    """One video to do: its absolute path, its result folder (absolute, and relative to the
    output folder) and the hashes its marker will carry."""

    video: str
    out: str
    rel: str
    config_hash: str
    model_hash: str


@dataclass
class VideoRecord:
    """What became of one video: status "ok", "failed" or "skipped" (finished earlier); frames
    tracked, frames with a face, faces (summed over frames), frames per second of the run,
    seconds for the whole job (model loading included), frames the source could not decode,
    the error (failed), and the host that did it."""

    path: str
    out: str
    status: str
    frames: int = 0
    with_face: int = 0
    faces: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    skipped_frames: int = 0
    error: str | None = None
    host: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _CrashAt:
    """The `CRASH_ENV` test hook as a sink (added only when the file names this video)."""

    def __init__(self, path: Path, frame: int) -> None:
        self.path, self.frame = path, frame

    @classmethod
    def armed_for(cls, video: str) -> "_CrashAt | None":
        name = os.environ.get(CRASH_ENV)
        if not name:
            return None
        try:
            target, frame = Path(name).read_text().split()
        except (OSError, ValueError):
            return None
        return cls(Path(name), int(frame)) if target == Path(video).name else None

    def write(self, frame, result, overlay=None) -> None:
        if result.index == self.frame:
            try:
                self.path.unlink()
            except FileNotFoundError:  # another attempt took it
                return
            os._exit(CRASH_EXIT)

    def close(self) -> None:
        pass


def _run(job: VideoJob, tracker_config, outputs, folder: Path, tracker):
    """Run the tracker over the video into `folder`: RunStats (a lent `tracker` stays open)."""
    from tracker.runtime.frames import SourceError
    from tracker.runtime.run import Run, open_parts
    from tracker.runtime.tracker import Tracker
    from tracker.runtime.video_source import VideoSource

    source, own, sinks = open_parts(lambda: VideoSource(job.video),
                                    lambda: Tracker(tracker_config) if tracker is None else None,
                                    lambda src: outputs.sinks(folder, src))
    crash = _CrashAt.armed_for(job.video)
    if crash is not None:
        sinks.sinks.append(crash)
    stats = Run(own if own is not None else tracker, source, sinks, close_tracker=own is not None)()
    if stats.frames == 0:
        raise SourceError(f"no frames could be decoded from {source.description}")
    return stats


def track_video(job: VideoJob, tracker_config, outputs, tracker=None) -> VideoRecord:
    """Track one video into its result folder (see the module docstring). `tracker`: a
    `Tracker` to use (and leave open) instead of making one for this video."""
    t0 = time.perf_counter()
    final = Path(job.out)
    host = f"{socket.gethostname()}:{os.getpid()}"
    tmp = None
    try:
        remove_leftovers(final)  # a crashed attempt's folder
        check_place(final)
        tmp = temp_folder(final)
        stats = _run(job, tracker_config, outputs, tmp, tracker)
        record = VideoRecord(job.video, job.rel, "ok", stats.frames, stats.with_face, stats.faces,
                             round(stats.fps, 2), 0.0, len(stats.skipped), host=host)
        record.seconds = round(time.perf_counter() - t0, 3)
        marker = {**record.to_dict(), "config_hash": job.config_hash, "model_hash": job.model_hash,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "source_messages": stats.skipped[:20]}
        publish(tmp, final, marker)
        tmp = None
        return record
    except Exception as e:  # noqa: BLE001 - a bad video is a record, not a crash
        return VideoRecord(job.video, job.rel, "failed", seconds=round(time.perf_counter() - t0, 3),
                           error=f"{type(e).__name__}: {e}", host=host)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class VideoWorker:
    """The body of a long-lived Ray actor (on a GPU or a fraction of one): the tracker, and
    its model, loaded once; `track(job)` for one video after another."""

    def __init__(self, tracker_config, outputs) -> None:
        from tracker.runtime.tracker import Tracker

        self.config, self.outputs = tracker_config, outputs
        self.tracker = Tracker(tracker_config)
        self.videos = 0

    def track(self, job: VideoJob) -> VideoRecord:
        self.videos += 1
        return track_video(job, self.config, self.outputs, tracker=self.tracker)

    def close(self) -> None:
        self.tracker.close()
