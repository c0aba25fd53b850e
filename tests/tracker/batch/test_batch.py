"""`tracker batch` without Ray (`--serial`, the reference path), in-process: results for the
good clips and an error record for the bad one, resuming, Ctrl-C, the fallback when Ray is
missing, usage errors, and the actor's body with one tracker for many videos."""
from __future__ import annotations

import pytest

import tracker.batch.executors as executors
import tracker.runtime.tracker as api
from tests.tracker.batch.clips import batch, landmarks, make_tree, manifest, summary, temporaries
from tests.tracker.runtime_fixtures import tiny_model
from tracker.batch.config import BatchConfig, Outputs
from tracker.batch.executors import actor_options
from tracker.batch.publish import read_landmarks, read_marker
from tracker.batch.runner import run_batch, track_videos
from tracker.batch.work import VideoWorker
from tracker.runtime.config import TrackerConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GOOD = {"a/one": 72, "a/b/two": 24, "c/three": 16}


def _tiny() -> TrackerConfig:
    return TrackerConfig(model=str(tiny_model()), lost_threshold=0, max_shape_residual=None, threads=1)


def test_good_clips_get_results_the_bad_one_an_error_record_and_a_rerun_skips_all(tmp_path, capsys):
    tree = make_tree(tmp_path / "in")
    out = tmp_path / "in" / "results"  # inside the inputs: its overlay videos are not inputs
    assert batch(tmp_path / "in", "--out-dir", out, "--serial", "--csv", "--pts", "--video") == 1
    err = capsys.readouterr().err
    assert "3 done, 0 already done, 1 failed" in err and "broken.mp4" in err
    got = landmarks(out)
    assert {k: len(v.splitlines()) for k, v in got.items()} == GOOD
    for rel, n in GOOD.items():
        assert len((out / rel / "landmarks.csv").read_text().splitlines()) == n + 1
        assert len(list((out / rel / "pts").glob("*.pts"))) == n and (out / rel / "overlay.mp4").is_file()
    status = {r["out"]: r["status"] for r in manifest(out)}
    assert status == {"a/one": "ok", "a/b/two": "ok", "c/three": "ok", "c/broken": "failed"}
    bad = next(r for r in manifest(out) if r["status"] == "failed")
    assert "not a readable video" in bad["error"] and bad["path"] == str(tree["broken"])
    assert (out / "errors.txt").read_text().startswith(f"{tree['broken']}: SourceError")
    assert read_marker(out / "c" / "broken")[0] == "failed" and temporaries(out) == []
    s = summary(out)
    assert s["totals"] | {"fps": 0, "videos_per_s": 0, "video_seconds": 0} == {
        "videos": 4, "ok": 3, "failed": 1, "skipped": 0, "not_done": 0, "frames": 112,
        "with_face": 112, "faces": 112, "fps": 0, "videos_per_s": 0, "video_seconds": 0}
    assert s["mode"] == "serial" and s["workers"] == 1 and len(s["model_hash"]) == 64
    assert list(s["errors"]) == [str(tree["broken"])] and s["root"] == str(tmp_path / "in")

    stamps = {rel: (out / rel / "landmarks.jsonl").stat().st_mtime_ns for rel in GOOD}
    assert batch(tmp_path / "in", "--out-dir", out, "--serial", "--csv", "--pts", "--video") == 1
    assert {r["out"]: r["status"] for r in manifest(out)} == status | {
        "a/one": "skipped", "a/b/two": "skipped", "c/three": "skipped"}
    assert "earlier run" in next(r["error"] for r in manifest(out) if r["status"] == "failed")
    assert summary(out)["totals"]["frames"] == 0 and landmarks(out) == got
    assert stamps == {rel: (out / rel / "landmarks.jsonl").stat().st_mtime_ns for rel in GOOD}

    # another setting (--every) or the other outputs: a different config hash, everything redone
    assert batch(tmp_path / "in", "--out-dir", out, "--serial", "--every", "5") == 1
    assert [r["status"] for r in manifest(out)].count("ok") == 3
    assert not (out / "a" / "one" / "landmarks.csv").exists()


def test_retry_failed_and_force(tmp_path):
    tree = make_tree(tmp_path / "in")
    out = tmp_path / "out"
    videos = [tree["two"], tree["broken"]]
    assert batch(*videos, "--out-dir", out, "--serial") == 1
    assert batch(*videos, "--out-dir", out, "--serial", "--retry-failed") == 1
    assert {r["out"]: r["status"] for r in manifest(out)} == {"a/b/two": "skipped", "c/broken": "failed"}
    assert "earlier run" not in next(r["error"] for r in manifest(out) if r["error"])  # tried again
    assert batch(*videos, "--out-dir", out, "--serial", "--force") == 1
    assert {r["out"]: r["status"] for r in manifest(out)} == {"a/b/two": "ok", "c/broken": "failed"}
    assert batch(tree["two"], "--out-dir", out, "--serial") == 0


def test_ctrl_c_abandons_the_running_video_and_writes_the_summary(tmp_path, monkeypatch, capsys):
    make_tree(tmp_path / "in")
    out = tmp_path / "out"
    process, calls = api.Tracker.process, [0]

    def interrupting(self, *a, **k):
        calls[0] += 1
        if calls[0] == 30:  # a/b/two.mp4 (24 frames) is done; a/one.mp4 at its 6th frame
            raise KeyboardInterrupt
        return process(self, *a, **k)

    monkeypatch.setattr(api.Tracker, "process", interrupting)
    assert batch(tmp_path / "in", "--out-dir", out, "--serial") == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(landmarks(out)) == ["a/b/two"] and not (out / "a" / "one").exists()
    assert temporaries(out) == [] and [r["out"] for r in manifest(out)] == ["a/b/two"]
    s = summary(out)
    assert s["interrupted"] and s["totals"]["not_done"] == 3 and len(s["not_done"]) == 3
    monkeypatch.setattr(api.Tracker, "process", process)
    assert batch(tmp_path / "in", "--out-dir", out, "--serial") == 1  # resumes; broken fails
    assert {k: len(v.splitlines()) for k, v in landmarks(out).items()} == GOOD
    assert [r["status"] for r in manifest(out)].count("skipped") == 1


def test_without_ray_it_runs_serially_with_a_note_unless_a_cluster_was_asked(tmp_path, monkeypatch, capsys):
    tree = make_tree(tmp_path / "in")
    monkeypatch.setattr(executors, "ray_available", lambda: False)
    assert batch(tree["three"], "--out-dir", tmp_path / "out") == 0
    assert "Ray is not installed" in capsys.readouterr().err
    assert summary(tmp_path / "out")["mode"] == "serial"
    assert batch(tree["three"], "--out-dir", tmp_path / "o2", "--address", "ray://127.0.0.1:1") == 2
    assert "--address needs Ray" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert batch(tree["three"], "--out-dir", tmp_path / "o2") == 2
    assert batch(tree["three"], "--out-dir", tmp_path / "o2", "--gpus-per-worker", "0.5") == 2
    assert "needs Ray" in capsys.readouterr().err and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("argv, message", [
    (["{in}/nothing.mp4"], "no such file"),
    (["{in}/c/*.mkv"], "matches no video"),
    (["{in}/a", "--no-jsonl"], "no output asked for"),
    (["{in}/a", "--workers", "0"], "workers must be >= 1"),
    (["{in}/a", "--model", "/nonexistent.onnx"], "no such model file"),
    (["{in}/a", "--force", "--retry-failed"], ""),
])
def test_usage_errors_exit_2(tmp_path, capsys, argv, message):
    make_tree(tmp_path / "in")
    args = [a.format(**{"in": tmp_path / "in"}) for a in argv]
    assert batch(*args, "--out-dir", tmp_path / "out", "--serial") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_actor_body_loads_one_tracker_for_many_videos(tmp_path, monkeypatch):
    """The GPU path without a GPU: `VideoWorker` (the actor's body) behind a fake executor."""
    tree = make_tree(tmp_path / "in")
    made = []
    init = api.Tracker.__init__

    def counting(self, *a, **k):
        made.append(self)
        init(self, *a, **k)

    monkeypatch.setattr(api.Tracker, "__init__", counting)

    class OneActor:
        kind, workers = "fake-actors", 1

        def __init__(self):
            self.worker = VideoWorker(_tiny(), Outputs())

        def run(self, jobs):
            return (self.worker.track(job) for job in jobs)

        def abort(self):
            return []

    actor = OneActor()
    config = BatchConfig(tmp_path / "out")
    result = run_batch([tree["one"], tree["two"], tree["three"]], _tiny(), config, None, actor)
    assert [r.status for r in result.records] == ["ok"] * 3 and len(made) == 1
    assert actor.worker.videos == 3 and all(r.with_face == r.frames for r in result.records)
    serial = run_batch([tree["one"], tree["two"], tree["three"]], _tiny(),
                       BatchConfig(tmp_path / "serial", serial=True), None)
    assert len(made) == 4 and landmarks(tmp_path / "out") == landmarks(tmp_path / "serial")
    assert serial.summary["config_hash"] == result.summary["config_hash"]
    assert actor_options(BatchConfig(tmp_path, gpus_per_worker=0.25)) == {
        "num_gpus": 0.25, "num_cpus": 1.0, "max_restarts": 3, "max_task_retries": 3}


def test_track_videos_gives_evaluation_the_landmarks_of_each_video(tmp_path):
    tree = make_tree(tmp_path / "in")
    paths, result = track_videos([tree["two"], tree["broken"]], _tiny(),
                                 BatchConfig(tmp_path / "out", serial=True))
    assert paths[tree["broken"]] is None and len(result.failed) == 1
    frames = list(read_landmarks(paths[tree["two"]]))
    assert [f[0] for f in frames] == list(range(24))
    assert all(len(faces) == 1 and faces[0].shape == (68, 2) for _, _, faces in frames)


def test_ctrl_c_on_a_real_process(tmp_path):
    """SIGINT to `python -m tracker batch --serial` mid-video: exit 130, the finished video
    kept, the running one's temporary folder gone, the summary written."""
    import sys

    from tests.tracker.batch.clips import tracker_options
    from tests.tracker.runtime_fixtures import clip_frames, interrupt_when, write_video

    tree = make_tree(tmp_path / "in")
    long = write_video(tmp_path / "in" / "z_long.mp4", list(clip_frames()) * 4)  # after the others
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tracker", "batch", str(tree["two"]), str(long), "--out-dir",
           str(out), "--serial", *tracker_options()]
    ready = lambda: any(p.read_text().count("\n") > 20  # noqa: E731
                        for p in out.glob(".z_long.tmp-*/landmarks.jsonl"))
    code, err = interrupt_when(cmd, ready)
    assert code == 130, err[-2000:]
    assert list(landmarks(out)) == ["a/b/two"] and temporaries(out) == []
    assert not (out / "z_long").exists() and summary(out)["interrupted"]


def test_workers_share_the_cores_their_onnxruntime_threads_do_not_spin(tmp_path):
    cfg = BatchConfig(tmp_path, cpus_per_worker=2)
    worker = executors._for_worker(TrackerConfig(), cfg)
    assert worker.threads == 2 and worker.spin is False
    named = executors._for_worker(TrackerConfig(threads=1), cfg)
    assert named.threads == 1 and named.spin is False
