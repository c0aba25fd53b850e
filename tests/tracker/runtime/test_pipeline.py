"""The threaded runner: order, errors passed downstream (never a hang), early exit stopping
every thread, live sources dropping stale items and file sources never dropping one."""
from __future__ import annotations

import threading
import time

import pytest

from tracker.runtime.pipeline import Runner, Timings, run_inline, run_stages


def _alive(runner: Runner) -> list[str]:
    return [t.name for t in runner.threads if t.is_alive()]


def test_items_pass_every_stage_in_order():
    timings = Timings()
    out = list(run_stages(range(50), [("double", lambda x: 2 * x), ("inc", lambda x: x + 1)],
                          queue_size=2, timings=timings))
    assert out == [2 * i + 1 for i in range(50)]
    s = timings.summary(50)
    assert set(s) == {"capture", "double", "inc"}
    assert s["double"]["calls"] == 50 and s["capture"]["calls"] == 50
    assert "50 frames" in timings.table(50, 1.0)


def test_inline_runner_gives_the_same():
    stages = [("a", lambda x: x * 3), ("b", str)]
    assert list(run_inline(range(7), stages)) == list(run_stages(range(7), stages))


def test_an_exception_in_a_stage_reaches_the_caller_and_every_thread_ends():
    def boom(x):
        if x == 5:
            raise ZeroDivisionError("stage failed")
        return x

    runner = Runner(range(100), [("ok", lambda x: x), ("boom", boom), ("after", lambda x: x)],
                    queue_size=2)
    got = []
    with pytest.raises(ZeroDivisionError, match="stage failed") as info:
        for x in runner:
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert any("'boom' stage" in n for n in info.value.__notes__)
    runner.close()
    assert _alive(runner) == []


def test_an_exception_in_the_source_reaches_the_caller():
    def source():
        yield 1
        yield 2
        raise OSError("disk gone")

    runner = Runner(source(), [("id", lambda x: x)])
    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in runner:
            got.append(x)
    assert got == [1, 2] and _alive(runner) == []


def test_keyboard_interrupt_in_a_stage_is_raised_as_such():
    def stage(x):
        if x == 3:
            raise KeyboardInterrupt
        return x

    runner = Runner(range(10), [("s", stage)])
    got = []
    with pytest.raises(KeyboardInterrupt):
        for x in runner:
            got.append(x)
    assert got == [0, 1, 2] and _alive(runner) == []


def test_leaving_early_stops_a_source_blocked_on_a_full_queue():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    runner = Runner(endless(), [("id", lambda x: x)], queue_size=1)
    for x in runner:
        if x == 3:
            break
    runner.close()
    assert _alive(runner) == []


def test_an_interrupt_in_the_consumer_stops_everything():
    runner = Runner(range(1000), [("slow", lambda x: (time.sleep(0.001), x)[1])], queue_size=2)
    with pytest.raises(KeyboardInterrupt):
        for x in runner:
            if x == 10:
                raise KeyboardInterrupt
    assert _alive(runner) == []


def test_a_file_source_never_drops_with_a_slow_consumer():
    out = []
    for x in run_stages(range(40), [("id", lambda x: x)], queue_size=1):
        time.sleep(0.002)
        out.append(x)
    assert out == list(range(40))


def test_a_live_source_drops_stale_items_with_a_slow_consumer():
    def camera():
        for i in range(200):
            time.sleep(0.0005)
            yield i

    runner = Runner(camera(), [("slow", lambda x: (time.sleep(0.01), x)[1])], live=True)
    out = list(runner)
    assert runner.dropped > 0 and len(out) + runner.dropped == 200
    assert out == sorted(out) and out[-1] == 199  # the newest frame is kept, order too


def test_runner_runs_once_and_validates():
    r = Runner([1], [])
    assert list(r) == [1]
    with pytest.raises(RuntimeError):
        list(r)
    with pytest.raises(ValueError):
        Runner([1], [], queue_size=0)


def test_timings_are_thread_safe():
    t = Timings()

    def work():
        for _ in range(1000):
            t("x", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.calls["x"] == 4000 and t.seconds["x"] == pytest.approx(4.0)
    with t.measure("y"):
        pass
    assert t.calls["y"] == 1
    t.reset()
    assert t.summary(1) == {}
