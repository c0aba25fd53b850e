"""A thin threaded runner for the tracker's stages, and per-stage timings.

The stages themselves (detector, aligner, smoother, renderer, sinks) are plain callables
tested without threads. `run_stages` connects them: the source is iterated in one thread,
each stage runs in its own thread, bounded queues sit between them, and the last stage's
outputs are yielded in the caller's thread (where the sinks and any GUI run).

- The end of the source travels down as a stop token; every thread ends after passing it on.
- An exception in the source or a stage (KeyboardInterrupt included) travels down in place of
  an item and is raised again in the caller's thread, so nothing hangs on a dead worker.
- Leaving the loop early (break, exception, Ctrl-C in the caller) stops every thread: each
  blocking put/get polls a shared stop event.
- A live run (a webcam) keeps latency bounded: every queue holds one item and a put into a
  full queue drops the queued (older) item, so the newest frame wins at every stage and a
  slow stage or sink sees a fresh frame, never a backlog; drops are counted per queue. A file
  source's run blocks instead, so it never drops a frame.
- `Runner.close` says whether the source's thread has stopped: only then may the source be
  closed (a capture is never released under a read in progress).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

POLL_S = 0.05

log = logging.getLogger("tracker")


class _Stop:
    def __repr__(self) -> str:
        return "STOP"


#: The stop token that ends a stream of items.
STOP = _Stop()


@dataclass
class Failure:
    """An exception raised by `stage`, travelling downstream in place of an item."""

    stage: str
    error: BaseException


class Timings:
    """Thread-safe accumulator of seconds per named stage: `timings(stage, seconds)` or
    `with timings.measure(stage): ...`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds
            self.calls[stage] += 1

    @contextmanager
    def measure(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self(stage, time.perf_counter() - t0)

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()

    def summary(self, frames: int) -> dict[str, dict[str, float]]:
        """{stage: {"ms_per_frame", "calls", "ms_per_call"}} in first-seen order."""
        with self._lock:
            return {s: {"ms_per_frame": 1000 * t / max(frames, 1), "calls": self.calls[s],
                        "ms_per_call": 1000 * t / max(self.calls[s], 1)}
                    for s, t in self.seconds.items()}

    def table(self, frames: int, wall_s: float | None = None) -> str:
        """A text table of the summary (and the end-to-end rate when `wall_s` is given)."""
        rows = [f"{'stage':<10} {'ms/frame':>9} {'calls':>7} {'ms/call':>8}"]
        for s, v in self.summary(frames).items():
            rows.append(f"{s:<10} {v['ms_per_frame']:>9.2f} {v['calls']:>7d} {v['ms_per_call']:>8.2f}")
        if wall_s:
            rows.append(f"{frames} frames in {wall_s:.2f} s: {frames / wall_s:.1f} fps end to end "
                        f"(stages overlap in threads)")
        return "\n".join(rows)


class _Timed:
    """An iterator whose `next` calls are timed as `stage`."""

    def __init__(self, it: Iterator, timings: Timings | None, stage: str):
        self.it, self.timings, self.stage = it, timings, stage

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        item = next(self.it)
        if self.timings is not None:
            self.timings(self.stage, time.perf_counter() - t0)
        return item


def _put(q: queue.Queue, item: Any, stop: threading.Event, drop_oldest: bool = False,
         on_drop: Callable[[], None] | None = None) -> bool:
    """Put with polling of `stop`; a live producer drops the oldest queued item instead of
    waiting. False if stopped first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0 if drop_oldest else POLL_S)
            return True
        except queue.Full:
            if drop_oldest:
                try:
                    q.get_nowait()
                    if on_drop is not None:
                        on_drop()
                except queue.Empty:
                    pass
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if stop.is_set():
                return STOP


class Runner:
    """The threads of one run; iterate it for the last stage's outputs. In a `live` run every
    queue holds one item and drops the older one when full (`drops[i]` counts the items
    dropped from queue i, `dropped` all of them); otherwise queues hold `queue_size` items and
    block. Leaving the iteration stops every thread, waiting up to `stop_timeout_s`."""

    def __init__(self, source: Iterable, stages: Sequence[tuple[str, Callable[[Any], Any]]],
                 queue_size: int = 4, live: bool = False, timings: Timings | None = None,
                 source_stage: str = "capture", stop_timeout_s: float = 5.0):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.source, self.stages = source, list(stages)
        self.live, self.timings, self.source_stage = live, timings, source_stage
        self.stop_timeout_s = stop_timeout_s
        self.stop = threading.Event()
        n = len(self.stages) + 1
        self.queues = [queue.Queue(maxsize=1 if live else queue_size) for _ in range(n)]
        self.drops = [0] * n  # each queue has one producer thread: no lock needed
        self.threads = [threading.Thread(target=self._produce, name="tracker-source", daemon=True)]
        for i, (name, fn) in enumerate(self.stages):
            self.threads.append(threading.Thread(target=self._work, args=(i, name, fn),
                                                 name=f"tracker-{name}", daemon=True))
        self._started = False
        self._deadline: float | None = None
        self._warned = False

    @property
    def dropped(self) -> int:
        """Items dropped in all queues (live runs only)."""
        return sum(self.drops)

    def _put(self, i: int, item: Any) -> bool:
        """Put into queue i: in a live run an item displaces the queued one when full; the
        stop token and failures wait for room (they never displace the last frame)."""

        def count() -> None:
            self.drops[i] += 1

        drop = self.live and item is not STOP and not isinstance(item, Failure)
        return _put(self.queues[i], item, self.stop, drop, count)

    def _produce(self) -> None:
        try:
            for item in _Timed(iter(self.source), self.timings, self.source_stage):
                if self.stop.is_set() or not self._put(0, item):
                    return
        except BaseException as e:  # noqa: BLE001 - passed downstream, raised in the caller
            self._put(0, Failure(self.source_stage, e))
            return
        self._put(0, STOP)

    def _work(self, i: int, name: str, fn: Callable[[Any], Any]) -> None:
        q_in = self.queues[i]
        while True:
            item = _get(q_in, self.stop)
            if item is STOP or isinstance(item, Failure):
                self._put(i + 1, item)
                return
            t0 = time.perf_counter()
            try:
                out = fn(item)
            except BaseException as e:  # noqa: BLE001 - passed downstream, raised in the caller
                self._put(i + 1, Failure(name, e))
                return
            if self.timings is not None:
                self.timings(name, time.perf_counter() - t0)
            if not self._put(i + 1, out):
                return

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            raise RuntimeError("a Runner can be iterated once")
        self._started = True
        for t in self.threads:
            t.start()
        try:
            q = self.queues[-1]
            while True:
                item = _get(q, self.stop)
                if item is STOP:
                    return
                if isinstance(item, Failure):
                    e = item.error
                    if hasattr(e, "add_note") and not isinstance(e, KeyboardInterrupt):
                        e.add_note(f"(raised in the tracker's {item.stage!r} stage)")
                    raise e
                yield item
        finally:
            self.close()

    @property
    def source_stopped(self) -> bool:
        """Whether the thread that iterates the source has ended (or never started)."""
        return not self.threads[0].is_alive()

    def close(self, timeout: float | None = None) -> bool:
        """Stop every thread and wait for them (each polls the stop event) until `timeout`
        seconds (default `stop_timeout_s`) after the first call; later calls wait no longer.
        True when the source's thread has ended, so the source may be closed; False, logged,
        when it is still inside the source (a read that does not return): the caller must
        then leave the source open."""
        self.stop.set()
        if self._deadline is None:
            timeout = self.stop_timeout_s if timeout is None else timeout
            self._deadline = time.monotonic() + timeout
        for t in self.threads:
            if t.is_alive():
                t.join(max(0.0, self._deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck and not self._warned:
            self._warned = True
            log.warning("threads still running after the stop: %s", ", ".join(stuck))
        return self.source_stopped


def run_stages(source: Iterable, stages: Sequence[tuple[str, Callable[[Any], Any]]],
               queue_size: int = 4, live: bool = False,
               timings: Timings | None = None) -> Iterator[Any]:
    """Iterate `source` in a thread, pass each item through the named stages (one thread
    each, bounded queues between), and yield the results here, in order."""
    yield from Runner(source, stages, queue_size, live, timings)


def run_inline(source: Iterable, stages: Sequence[tuple[str, Callable[[Any], Any]]],
               timings: Timings | None = None) -> Iterator[Any]:
    """The same as `run_stages` without threads (for debugging and profiling)."""
    for item in _Timed(iter(source), timings, "capture"):
        for name, fn in stages:
            t0 = time.perf_counter()
            item = fn(item)
            if timings is not None:
                timings(name, time.perf_counter() - t0)
        yield item
