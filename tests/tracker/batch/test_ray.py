"""`tracker batch` on Ray (a local Ray of 2 CPUs and one pretend GPU, loopback only, started
once for the module): the same results as the serial path, a worker killed mid-video retried
without partial output, GPU actors, and Ctrl-C cancelling the tasks in flight. Skipped when
Ray is not installed."""
from __future__ import annotations

import json
import os

import pytest

import tracker.batch.runner as runner
from tests.tracker.batch.clips import batch, landmarks, make_tree, manifest, summary, temporaries
from tests.tracker.runtime_fixtures import clip_frames, write_video
from tracker.batch.publish import read_marker
from tracker.batch.work import CRASH_ENV

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def crash_file(tmp_path_factory):
    """A local Ray for the module's tests (the batch joins it rather than start its own); the
    workers see CRASH_ENV, the test hook that kills one at a chosen frame."""
    crash = tmp_path_factory.mktemp("hook") / "crash.txt"
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", CRASH_ENV: str(crash)}
    saved = {k: os.environ.get(k) for k in [*env, "RAY_ADDRESS"]}
    os.environ.update(env)
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 1024 ** 2, _node_ip_address="127.0.0.1", logging_level="ERROR")
    try:
        yield crash
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_ray_tasks_give_what_the_serial_path_gives(crash_file, tmp_path):
    make_tree(tmp_path / "in")
    assert batch(tmp_path / "in", "--out-dir", tmp_path / "ray", "--workers", "2") == 1
    assert batch(tmp_path / "in", "--out-dir", tmp_path / "serial", "--serial") == 1
    got = landmarks(tmp_path / "ray")
    assert list(got) == ["a/b/two", "a/one", "c/three"] and got == landmarks(tmp_path / "serial")
    s = summary(tmp_path / "ray")
    assert s["mode"] == "ray-tasks" and s["workers"] == 2 and s["totals"]["failed"] == 1
    assert "not a readable video" in next(iter(s["errors"].values()))
    assert s["config_hash"] == summary(tmp_path / "serial")["config_hash"]
    assert read_marker(tmp_path / "ray" / "c" / "broken")[0] == "failed"
    # the serial run's results are Ray's too: a Ray rerun on them skips every good video
    assert batch(tmp_path / "in", "--out-dir", tmp_path / "serial", "--workers", "2") == 1
    assert sorted(r["status"] for r in manifest(tmp_path / "serial")) == ["failed"] + ["skipped"] * 3


def test_a_worker_killed_mid_video_is_retried_without_partial_output(crash_file, tmp_path):
    tree = make_tree(tmp_path / "in")
    crash_file.write_text("one.mp4 20")
    out = tmp_path / "out"
    assert batch(tree["one"], tree["two"], "--out-dir", out, "--workers", "2") == 0
    assert not crash_file.exists()  # the hook fired: a worker died at frame 20 of one.mp4
    assert {k: len(v.splitlines()) for k, v in landmarks(out).items()} == {"one": 72, "b/two": 24}
    assert temporaries(out) == [] and [r["status"] for r in manifest(out)] == ["ok", "ok"]
    # without retries the death is the video's error record, and nothing partial is left
    crash_file.write_text("one.mp4 20")
    assert batch(tree["one"], "--out-dir", tmp_path / "o2", "--max-retries", "0") == 1
    (record,) = manifest(tmp_path / "o2")
    assert record["status"] == "failed" and "Worker" in record["error"] and temporaries(tmp_path / "o2") == []
    assert sorted(p.name for p in (tmp_path / "o2" / "one").iterdir()) == ["FAILED.json"]


def test_gpu_actors_load_the_model_once_each(crash_file, tmp_path):
    """Actors on half a (pretend) GPU each: two actors for three videos."""
    tree = make_tree(tmp_path / "in")
    videos = [tree["one"], tree["two"], tree["three"]]
    assert batch(*videos, "--out-dir", tmp_path / "gpu", "--gpus-per-worker", "0.5") == 0
    assert batch(*videos, "--out-dir", tmp_path / "serial", "--serial") == 0
    assert landmarks(tmp_path / "gpu") == landmarks(tmp_path / "serial")
    s = summary(tmp_path / "gpu")
    assert s["mode"] == "ray-actors" and s["workers"] == 2
    assert len({r["host"] for r in s["videos"]}) <= 2  # three videos, two processes
    assert ray.available_resources().get("GPU", 0) == 1  # the actors are gone


def test_ctrl_c_cancels_the_tasks_in_flight_and_removes_their_folders(crash_file, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "in")
    longer = [write_video(tmp_path / "in" / f"long{i}.mp4", list(clip_frames()) * 4) for i in range(2)]
    add = runner._Log.add

    def interrupt_after_the_first(self, record):
        add(self, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner._Log, "add", interrupt_after_the_first)
    out = tmp_path / "out"
    assert batch(*longer, tree["two"], "--out-dir", out, "--workers", "3") == 130
    s = summary(out)
    assert s["interrupted"] and s["totals"]["ok"] == 1 and s["totals"]["not_done"] == 2
    done = [r["out"] for r in manifest(out)]
    assert len(done) == 1 and list(landmarks(out)) == done and temporaries(out) == []
    assert json.loads((out / "summary.json").read_text())["mode"] == "ray-tasks"
