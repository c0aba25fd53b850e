"""What a batch writes (`Outputs`), how it runs (`BatchConfig`), and the two hashes that say
whether an earlier result is still valid (`config_hash`, `model_hash`)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

#: File names inside a video's result folder.
JSONL, CSV, PTS_DIR, VIDEO = "landmarks.jsonl", "landmarks.csv", "pts", "overlay.mp4"

#: TrackerConfig fields that do not change the results (how many threads, queue lengths);
#: the model is covered by its own hash.
NOT_HASHED = ("model", "threads", "spin", "queue_size")


@dataclass(frozen=True)
class Outputs:
    """The files written per video: landmarks as JSON lines (one object per frame, as
    `tracker track --jsonl`), CSV, 300VW-style .pts per frame, and the overlay video."""

    jsonl: bool = True
    csv: bool = False
    pts: bool = False
    video: bool = False

    def __post_init__(self) -> None:
        if not (self.jsonl or self.csv or self.pts or self.video):
            raise ValueError("no output asked for: at least one of jsonl, csv, pts, video")

    def sinks(self, folder: Path, source):
        """The runtime's sinks writing into `folder` (any opened before a failure are closed)."""
        from tracker.runtime.sinks import CsvSink, JsonlSink, PtsSink, Sinks
        from tracker.runtime.video_sink import VideoSink

        sinks = []
        try:
            if self.jsonl:
                sinks.append(JsonlSink(folder / JSONL))
            if self.csv:
                sinks.append(CsvSink(folder / CSV))
            if self.pts:
                sinks.append(PtsSink(folder / PTS_DIR))
            if self.video:
                audio = source.path if getattr(source, "has_audio", False) else None
                sinks.append(VideoSink(folder / VIDEO, getattr(source, "rate", None) or source.fps,
                                       audio_from=audio))
        except BaseException:
            Sinks(sinks).close()
            raise
        return Sinks(sinks)


@dataclass(frozen=True)
class BatchConfig:
    """How a batch runs.

    out_dir: where results go (mirroring the inputs' tree), with manifest.jsonl, errors.txt
        and summary.json.
    outputs: the files written per video.
    force: redo every video, finished or not; retry_failed: redo the videos that failed in an
        earlier run (by default they are reported as failed again, not redone).
    serial: no Ray: every video in this process, one after another.
    address: a Ray cluster to connect to (None: a local Ray started for the batch, unless
        RAY_ADDRESS is set; the CLI reads it).
    workers: local Ray: concurrent tasks (default: the CPU count / cpus_per_worker); on a
        cluster, how many tasks are kept in flight (default: its CPUs / cpus_per_worker); with
        GPUs, the number of actors (default: the GPUs / gpus_per_worker).
    cpus_per_worker: CPUs each Ray task or actor reserves, and the onnxruntime threads it
        uses unless the tracker config names them.
    gpus_per_worker: > 0: long-lived actors on this fraction of a GPU each (0.25: four per
        GPU), each loading the model once; 0: one CPU task per video.
    max_retries: how often Ray reruns a video whose worker process died (not for errors).
    """

    out_dir: Path
    outputs: Outputs = Outputs()
    force: bool = False
    retry_failed: bool = False
    serial: bool = False
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(os.path.abspath(self.out_dir)))
        if self.workers is not None and (isinstance(self.workers, bool) or int(self.workers) < 1):
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")
        if not float(self.cpus_per_worker) > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")
        if not 0 <= float(self.gpus_per_worker):
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker!r}")
        if float(self.gpus_per_worker) > 1 and float(self.gpus_per_worker) != int(self.gpus_per_worker):
            raise ValueError(f"gpus_per_worker above 1 must be a whole number, got {self.gpus_per_worker!r}")
        if int(self.max_retries) < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.serial and (self.address or self.gpus_per_worker):
            raise ValueError("serial runs without Ray: no address, no GPU workers")
        if self.force and self.retry_failed:
            raise ValueError("force already redoes failed videos; give one of force, retry_failed")


def config_hash(tracker_config, outputs: Outputs) -> str:
    """sha256 (hex) of what decides a video's results: the tracker settings (not the model
    file, not threads or queue lengths) and the outputs written."""
    fields = {k: v for k, v in dataclasses.asdict(tracker_config).items() if k not in NOT_HASHED}
    blob = json.dumps({"format": 1, "tracker": fields, "outputs": dataclasses.asdict(outputs)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_file(tracker_config) -> Path:
    """The model file the config's backend loads (the bundled model when none is named).
    Raises ModelFileError when it is missing."""
    from tracker.engines.backend import BackendUnavailable
    from tracker.engines.registry import backend_class, resolve_model, sibling

    try:
        suffix = backend_class(tracker_config.backend).model_suffix
    except BackendUnavailable:  # on this machine; the workers may have it: hash what was named
        suffix = Path(tracker_config.model).suffix if tracker_config.model else ".onnx"
    return sibling(resolve_model(tracker_config.model, suffix), suffix)


def model_hash(tracker_config) -> str:
    """sha256 (hex) of the model file's bytes."""
    h = hashlib.sha256()
    with open(model_file(tracker_config), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
