"""Batch processing: many videos through the tracker, serially or on Ray, resumably.

    tracker batch videos/ more/*.mp4 list.txt --out-dir OUT [--workers N | --address ADDR |
                  --serial] [--csv] [--pts] [--video] [--force | --retry-failed]

    from tracker.batch import BatchConfig, run_batch
    result = run_batch(["videos/"], TrackerConfig(), BatchConfig("OUT"))

One video is one unit of work, done by one function, `tracker.batch.work.track_video`: it runs
the runtime loop (`tracker.runtime.run.Run`, the sinks of `tracker.runtime.sinks`, one
`Tracker`) into a temporary folder beside the video's result folder, writes a completion
marker (`DONE.json`: the config hash, the model hash and the counts) into it and renames it
into place, so a result folder is either complete or absent. Who calls it:

- `--serial`: the driver itself, one video after another (the reference path);
- Ray tasks (the default; a local Ray started on demand, or a cluster with `--address`):
  one task per video on CPUs, retried when its worker dies (`max_retries`), never for an
  exception (a bad video is a failed record, not retried);
- Ray actors (`--gpus-per-worker F`): long-lived workers on (fractions of) GPUs, each holding
  one `Tracker` (the model loaded once) and taking one video after another.

Modules: `inputs` (which videos, where their results go), `config` (`BatchConfig`, `Outputs`,
the hashes), `publish` (temporary folders, markers, the atomic rename), `work` (the per-video
function and the actor's body), `executors` (serial, Ray tasks, Ray actors), `runner` (plan,
progress, manifest, summary, Ctrl-C).
"""
from __future__ import annotations


def __getattr__(name: str):
    """The API, imported on first use (Ray and the runtime stay out until needed)."""
    if name in ("BatchConfig", "Outputs"):
        from tracker.batch import config

        return getattr(config, name)
    if name in ("run_batch", "track_videos", "BatchResult"):
        from tracker.batch import runner

        return getattr(runner, name)
    if name == "find_videos":
        from tracker.batch.inputs import find_videos

        return find_videos
    if name == "read_landmarks":
        from tracker.batch.publish import read_landmarks

        return read_landmarks
    raise AttributeError(f"module 'tracker.batch' has no attribute {name!r}")


__all__ = ["BatchConfig", "BatchResult", "Outputs", "find_videos", "read_landmarks", "run_batch",
           "track_videos"]
