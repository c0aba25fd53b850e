"""Who does the videos: this process (`SerialExecutor`, the reference), Ray tasks on CPUs
(`RayTaskExecutor`) or long-lived Ray actors on GPUs (`RayActorExecutor`); all of them call
`tracker.batch.work.track_video`.

An executor's `run(jobs)` yields a `VideoRecord` per job as the jobs finish (any order),
submitting no more than a window of jobs ahead, so that stopping early leaves the rest
untouched; after an interrupt, `abort()` stops what is running (Ray: cancels its tasks, kills
its actors) and returns the jobs that were in flight, whose temporary folders the caller
then removes. `close()` releases the workers.

Ray is optional and imported only here, inside the functions that need it; `ray_session`
connects to a cluster (`address`) or starts a local Ray for the batch, and shuts down only
what it started.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from contextlib import contextmanager
from typing import Iterable, Iterator

from tracker.batch.config import BatchConfig, Outputs
from tracker.batch.work import VideoJob, VideoRecord, VideoWorker, track_video

#: Seconds between checks for finished work (and for Ctrl-C) while waiting on Ray.
POLL_S = 0.5
#: Object store of a local Ray: the batch passes only small records through it.
LOCAL_OBJECT_STORE = 256 * 1024 ** 2


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot take the work (said in one line)."""


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


class SerialExecutor:
    """Every video in this process, one after another, each with its own `Tracker`."""

    kind = "serial"

    def __init__(self, tracker_config, outputs: Outputs) -> None:
        self.config, self.outputs = tracker_config, outputs
        self.workers = 1
        self.current: VideoJob | None = None

    def run(self, jobs: Iterable[VideoJob]) -> Iterator[VideoRecord]:
        for job in jobs:
            self.current = job
            record = track_video(job, self.config, self.outputs)
            self.current = None
            yield record

    def abort(self) -> list[VideoJob]:
        return [self.current] if self.current is not None else []

    def close(self) -> None:
        pass


@contextmanager
def ray_session(config: BatchConfig):
    """Ray, connected: to `config.address`, to the Ray this process already joined, or to a
    local Ray started now (loopback only, no dashboard) with `workers * cpus_per_worker`
    CPUs, shut down again on exit."""
    if not ray_available():
        raise RayUnavailable("Ray is not installed (pip install 'subpixel-tracker[ray]')")
    import ray

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if config.address:
            try:
                ray.init(address=config.address, log_to_driver=False, logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise RayUnavailable(f"cannot connect to the Ray cluster at {config.address} "
                                     f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        else:
            cpus = (config.workers or os.cpu_count() or 1) * config.cpus_per_worker
            ray.init(address="local", num_cpus=max(1, round(cpus)), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, log_to_driver=False,
                     logging_level="WARNING", _node_ip_address="127.0.0.1")
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _for_worker(tracker_config, config: BatchConfig):
    """The tracker config a worker uses: onnxruntime threads = its CPUs, unless named, and
    not spinning (workers share the machine's cores)."""
    threads = tracker_config.threads
    if threads is None:
        threads = max(1, int(config.cpus_per_worker))
    return dataclasses.replace(tracker_config, threads=threads, spin=False)


def _reason(e: BaseException, last: bool = False) -> str:
    """One line for an exception: its type and the first (or last) line of its message."""
    lines = str(e).strip().splitlines() or [""]
    return f"{type(e).__name__}: {lines[-1 if last else 0]}".rstrip(": ")


def _failure(job: VideoJob, e: BaseException) -> VideoRecord:
    return VideoRecord(job.video, job.rel, "failed", error=_reason(e))


def _raise_if_interrupted(ray, e: BaseException) -> None:
    """A task stopped by Ctrl-C (the terminal's SIGINT reaches the local workers too) is an
    interrupt of the batch, not a failure of its video."""
    if isinstance(e, ray.exceptions.TaskCancelledError) or isinstance(
            getattr(e, "cause", None), KeyboardInterrupt):
        raise KeyboardInterrupt from None


def check_workers(ray) -> None:
    """One tiny task on the cluster: the tracker package must import on its workers."""
    import tracker

    probe = ray.remote(num_cpus=0, max_retries=0)(_version)
    try:
        theirs = ray.get(probe.remote(), timeout=120)
    except Exception as e:  # noqa: BLE001 - whatever stops it, say so in one line
        raise RayUnavailable(f"the Ray workers cannot run the tracker (is subpixel-tracker "
                             f"installed on every node?): {_reason(e, last=True)}") from None
    if theirs != tracker.__version__:
        raise RayUnavailable(f"the Ray workers have tracker {theirs}, this driver "
                             f"{tracker.__version__}: install the same version on every node")


def _version() -> str:
    import tracker

    return tracker.__version__


class RayTaskExecutor:
    """One Ray task per video on `cpus_per_worker` CPUs: retried up to `max_retries` times when
    its worker process dies, never for an exception (`retry_exceptions=False`)."""

    kind = "ray-tasks"

    def __init__(self, ray, tracker_config, outputs: Outputs, config: BatchConfig) -> None:
        self.ray = ray
        self.config, self.outputs = _for_worker(tracker_config, config), outputs
        self.remote = ray.remote(track_video).options(
            num_cpus=config.cpus_per_worker, max_retries=config.max_retries, retry_exceptions=False)
        cpus = ray.cluster_resources().get("CPU", 1)
        self.workers = config.workers or max(1, int(cpus // config.cpus_per_worker))
        if config.address and config.workers is None:
            self.window = 2 * self.workers
        else:
            self.window = self.workers + max(1, self.workers // 2)
        self.pending: dict = {}  # ObjectRef -> VideoJob

    def run(self, jobs: Iterable[VideoJob]) -> Iterator[VideoRecord]:
        ray, todo = self.ray, iter(jobs)
        more = True
        while True:
            while more and len(self.pending) < self.window:
                job = next(todo, None)
                if job is None:
                    more = False
                    break
                self.pending[self.remote.remote(job, self.config, self.outputs)] = job
            if not self.pending:
                return
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died more than max_retries times
                    _raise_if_interrupted(ray, e)
                    record = _failure(self.pending[ref], e)
                del self.pending[ref]
                yield record

    def abort(self) -> list[VideoJob]:
        refs, jobs = list(self.pending), list(self.pending.values())
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)  # kills the worker process; never retried
            except Exception:  # noqa: BLE001, S110 - finished meanwhile
                pass
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=10)
        self.pending.clear()
        return jobs

    def close(self) -> None:
        pass


class RayActorExecutor:
    """`workers` long-lived actors (`tracker.batch.work.VideoWorker`) on `gpus_per_worker` of a
    GPU each, every one with its own tracker loaded once, fed one video at a time. A dead
    actor is restarted up to `max_retries` times, its video retried as often."""

    kind = "ray-actors"

    def __init__(self, ray, tracker_config, outputs: Outputs, config: BatchConfig) -> None:
        self.ray = ray
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < config.gpus_per_worker:
            raise RayUnavailable(f"the Ray cluster has {gpus:g} GPUs: workers of "
                                 f"{config.gpus_per_worker:g} GPU cannot start")
        self.workers = config.workers or max(1, int(gpus // config.gpus_per_worker))
        cls = ray.remote(VideoWorker).options(**actor_options(config))
        cfg = _for_worker(tracker_config, config)
        self.actors = [cls.remote(cfg, outputs) for _ in range(self.workers)]
        self.pending: dict = {}  # ObjectRef -> (VideoJob, actor)

    def run(self, jobs: Iterable[VideoJob]) -> Iterator[VideoRecord]:
        ray, todo, idle = self.ray, iter(jobs), list(self.actors)
        while True:
            while idle:
                job = next(todo, None)
                if job is None:
                    break
                actor = idle.pop()
                self.pending[actor.track.remote(job)] = (job, actor)
            if not self.pending:
                for job in todo:  # every actor is dead
                    yield VideoRecord(job.video, job.rel, "failed", error="no worker left (every "
                                      "actor died; see the errors above)")
                return
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                job, actor = self.pending[ref]
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:  # restarts and retries used up
                    _raise_if_interrupted(ray, e)
                    record = _failure(job, e)
                    if isinstance(e, ray.exceptions.ActorDiedError):
                        actor = None  # gone for good
                del self.pending[ref]
                if actor is not None:
                    idle.append(actor)
                yield record

    def abort(self) -> list[VideoJob]:
        jobs = [job for job, _ in self.pending.values()]
        self.pending.clear()
        self.close()
        return jobs

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 - already dead
                pass
        self.actors = []


def actor_options(config: BatchConfig) -> dict:
    """Ray options of the GPU actors: their share of a GPU and CPUs, restarts and retries."""
    return {"num_gpus": config.gpus_per_worker, "num_cpus": config.cpus_per_worker,
            "max_restarts": config.max_retries, "max_task_retries": config.max_retries}


@contextmanager
def open_executor(tracker_config, outputs: Outputs, config: BatchConfig):
    """The executor `config` asks for, its workers released (and a Ray it started shut down)
    on exit: serial; GPU actors (gpus_per_worker > 0); else CPU tasks. On a cluster, one probe
    task first checks that the workers can import the tracker."""
    if config.serial:
        yield SerialExecutor(tracker_config, outputs)
        return
    with ray_session(config) as ray:
        if config.address:
            check_workers(ray)
        cls = RayActorExecutor if config.gpus_per_worker > 0 else RayTaskExecutor
        executor = cls(ray, tracker_config, outputs, config)
        try:
            yield executor
        finally:
            executor.close()
