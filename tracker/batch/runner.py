"""A batch from start to end: which videos, which of them still need doing, the work (by an
executor), the progress bar, the manifest, the errors file and the summary.

    result = run_batch(["videos/", "list.txt"], TrackerConfig(), BatchConfig("OUT"))
    result.failed, result.interrupted, result.summary

Resuming: a video whose result folder holds a `DONE.json` with this run's config and model
hashes is skipped ("skipped"); one whose folder holds a `FAILED.json` with the same hashes is
reported as failed again without being redone, unless `retry_failed`; `force` redoes every
video. Any other hash redoes the video. Files written in OUT (beside the result folders):

    manifest.jsonl  one object per video, in the order they finished: path, out, status
                    (ok, failed, skipped), frames, with_face, faces, fps, seconds, error, ...
    errors.txt      one line per failed video: `PATH: ERROR`
    summary.json    the run: mode, workers, hashes, config, totals, wall time, every video

Ctrl-C stops submitting, stops the work in flight (its temporary folders removed) and still
writes the summary (`interrupted`: true); finished videos keep their results.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tracker.batch.config import JSONL, BatchConfig, config_hash, model_file, model_hash
from tracker.batch.executors import open_executor
from tracker.batch.inputs import InputError, common_root, find_videos, result_folders
from tracker.batch.publish import ResultFolderError, publish_failure, read_marker, remove_leftovers
from tracker.batch.work import VideoJob, VideoRecord

MANIFEST, ERRORS, SUMMARY = "manifest.jsonl", "errors.txt", "summary.json"


@dataclass
class BatchResult:
    """Every video's record in input order (videos not done because of an interrupt have
    none), whether the run was interrupted, and the summary as written."""

    records: list[VideoRecord]
    interrupted: bool
    summary: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[VideoRecord]:
        return [r for r in self.records if r.status == "failed"]


def plan(videos: list[Path], config: BatchConfig, hashes: tuple[str, str]
         ) -> tuple[list[VideoJob], dict[str, VideoRecord]]:
    """(jobs to do, {video: record} of those that need nothing done); see the module docstring."""
    jobs, settled = [], {}
    for video, rel in result_folders(videos).items():
        final = config.out_dir / rel
        job = VideoJob(str(video), str(final), rel.as_posix(), *hashes)
        found = None if config.force else read_marker(final)
        if found is not None and (found[1].get("config_hash"), found[1].get("model_hash")) == hashes:
            status, m = found
            if status == "done":
                settled[job.video] = VideoRecord(
                    job.video, job.rel, "skipped", m.get("frames", 0), m.get("with_face", 0),
                    m.get("faces", 0), m.get("fps", 0.0), m.get("seconds", 0.0),
                    m.get("skipped_frames", 0), host=m.get("host"))
                continue
            if not config.retry_failed:
                settled[job.video] = VideoRecord(
                    job.video, job.rel, "failed", error=f"{m.get('error')} (in an earlier run; "
                    f"--retry-failed redoes it)", host=m.get("host"))
                continue
        jobs.append(job)
    return jobs, settled


class _Log:
    """The manifest and errors files, written as records arrive, and the progress bar."""

    def __init__(self, out_dir: Path, total: int, progress: TextIO | None) -> None:
        from tqdm import tqdm

        self.manifest = open(out_dir / MANIFEST, "w")
        self.errors = open(out_dir / ERRORS, "w")
        self.bar = tqdm(total=total, unit="video", file=progress or sys.stderr, dynamic_ncols=True,
                        disable=progress is None, desc="batch")
        self.progress = progress
        self.t0, self.frames, self.failed = time.perf_counter(), 0, 0

    def add(self, record: VideoRecord) -> None:
        self.manifest.write(json.dumps(record.to_dict()) + "\n")
        self.manifest.flush()
        if record.status == "failed":
            self.failed += 1
            self.errors.write(f"{record.path}: {record.error}\n")
            self.errors.flush()
            if self.progress is not None:
                self.bar.write(f"failed: {record.path}: {record.error}", file=self.progress)
        if record.status == "ok":
            self.frames += record.frames
        wall = time.perf_counter() - self.t0
        self.bar.set_postfix_str(f"{self.frames / wall if wall > 0 else 0:.0f} frames/s"
                                 + (f", {self.failed} failed" if self.failed else ""), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.manifest.close()
        self.errors.close()


def _record_failure(job: VideoJob, record: VideoRecord) -> None:
    """A failed video's FAILED.json (and no leftovers of its attempts)."""
    final = Path(job.out)
    remove_leftovers(final)
    marker = {**record.to_dict(), "config_hash": job.config_hash, "model_hash": job.model_hash,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        publish_failure(final, marker)
    except (OSError, ResultFolderError):  # the error is in the manifest all the same
        pass


def run_batch(inputs: list[str | os.PathLike], tracker_config, config: BatchConfig,
              progress: TextIO | None = sys.stderr, executor=None) -> BatchResult:
    """Process every video `inputs` name (see `tracker.batch.inputs`) into `config.out_dir`.

    `progress`: where the bar goes (None: none). `executor`: one to use instead of the one
    `config` asks for (`tracker.batch.executors`). Raises InputError (no videos), ModelFileError
    (no model) and RayUnavailable before any video is started; per-video errors are records.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out_dir = config.out_dir
    videos = [v for v in find_videos(inputs) if out_dir not in v.parents]
    if not videos:
        raise InputError(f"every video found is inside the output folder {out_dir}")
    hashes = (config_hash(tracker_config, config.outputs), model_hash(tracker_config))
    jobs, settled = plan(videos, config, hashes)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir, len(videos), progress)
    by_video = {job.video: job for job in jobs}
    done: dict[str, VideoRecord] = {}
    interrupted, kind, workers = False, "serial" if config.serial else "ray", 0
    t0 = time.perf_counter()
    try:
        for record in settled.values():
            log.add(record)
        if jobs:
            with _executor(tracker_config, config, executor) as ex:
                kind, workers = ex.kind, ex.workers
                try:
                    for record in ex.run(jobs):
                        if record.status == "failed":
                            _record_failure(by_video[record.path], record)
                        done[record.path] = record
                        log.add(record)
                except KeyboardInterrupt:
                    interrupted = True
                    for job in ex.abort():
                        remove_leftovers(Path(job.out))
    except KeyboardInterrupt:  # while Ray started, or a second Ctrl-C
        interrupted = True
    finally:
        log.close()
    wall = time.perf_counter() - t0
    records = [done.get(str(v)) or settled.get(str(v)) for v in videos]
    result = BatchResult([r for r in records if r is not None], interrupted)
    result.summary = _summary(inputs, videos, result, tracker_config, config, hashes, kind,
                              workers, wall, started)
    _write_json(out_dir / SUMMARY, result.summary)
    return result


class _Given:
    """A context manager handing out an executor made elsewhere (closed by its maker)."""

    def __init__(self, executor) -> None:
        self.executor = executor

    def __enter__(self):
        return self.executor

    def __exit__(self, *exc) -> None:
        pass


def _executor(tracker_config, config: BatchConfig, executor):
    return _Given(executor) if executor is not None else open_executor(
        tracker_config, config.outputs, config)


def _summary(inputs, videos, result: BatchResult, tracker_config, config: BatchConfig,
             hashes: tuple[str, str], kind: str, workers: int, wall: float, started: str) -> dict:
    recs = result.records
    count = {s: sum(r.status == s for r in recs) for s in ("ok", "failed", "skipped")}
    ran = [r for r in recs if r.status == "ok"]
    frames = sum(r.frames for r in ran)
    listed = {r.path for r in recs}
    return {
        "inputs": [os.fspath(i) for i in inputs], "root": str(common_root(videos)),
        "out_dir": str(config.out_dir), "mode": kind, "workers": workers,
        "address": config.address, "interrupted": result.interrupted,
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(wall, 3), "config_hash": hashes[0], "model_hash": hashes[1],
        "model": str(model_file(tracker_config)),
        "tracker_config": dataclasses.asdict(tracker_config),
        "outputs": dataclasses.asdict(config.outputs),
        "totals": {"videos": len(videos), **count, "not_done": len(videos) - len(recs),
                   "frames": frames, "with_face": sum(r.with_face for r in ran),
                   "faces": sum(r.faces for r in ran),
                   "fps": round(frames / wall, 2) if wall > 0 else 0.0,
                   "videos_per_s": round(len(ran) / wall, 4) if wall > 0 else 0.0,
                   "video_seconds": round(sum(r.seconds for r in ran), 3)},
        "errors": {r.path: r.error for r in recs if r.status == "failed"},
        "not_done": [str(v) for v in videos if str(v) not in listed],
        "videos": [r.to_dict() for r in recs],
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def track_videos(videos: list[str | os.PathLike], tracker_config, config: BatchConfig,
                 progress: TextIO | None = None) -> tuple[dict[Path, Path | None], BatchResult]:
    """The landmarks of each video, through the batch machinery (serial, Ray tasks or actors,
    resumable): ({video: its landmarks.jsonl, or None if it failed or was not done}, the
    result). For evaluations: read each file with `tracker.batch.publish.read_landmarks`."""
    if not config.outputs.jsonl:
        raise ValueError("track_videos needs the JSONL output (Outputs(jsonl=True))")
    result = run_batch(list(videos), tracker_config, config, progress)
    paths: dict[Path, Path | None] = {}
    for r in result.records:
        paths[Path(r.path)] = config.out_dir / r.out / JSONL if r.status in ("ok", "skipped") else None
    for v in result.summary["not_done"]:
        paths[Path(v)] = None
    return paths, result
