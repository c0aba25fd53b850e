"""`tracker` end to end, in-process: the real clip into every output (parsed back), exit codes
for every kind of bad input, and interrupts / failures mid-run leaving complete outputs."""
from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pytest

import tracker.runtime.sinks as sinks
import tracker.runtime.tracker as api
from tests.tracker.runtime_fixtures import (
    CLIP,
    clip_frames,
    faulty_videos,
    interrupt_when,
    tiny_model,
    write_video,
)
from tracker.cli import build_parser, main
from tracker.core.pts import read_pts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    return faulty_videos(tmp_path_factory.mktemp("faults"))


def _track(*args):
    return main(["track", *map(str, args), "--model", str(tiny_model()), "--lost-threshold", "0",
                 "--max-shape-residual", "0", "--quiet"])


def _outputs(d):
    return ["-o", d / "out.mp4", "--pts-dir", d / "pts", "--csv", d / "log.csv", "--jsonl", d / "log.jsonl"]


def _video(path):
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
        return n, c.streams.video[0].average_rate, [s.type for s in c.streams]


def _csv_frames(path):
    with open(path, newline="") as f:
        return [int(r["index"]) for r in csv.DictReader(f)]


def test_help_usage_and_exit_codes_documented(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in ("0 ", "2 ", "3 ", "130"):
        assert code in out
    assert main([]) == 2
    assert main(["track"]) == 2
    assert main(["dance"]) == 2


def test_evaluation_subcommands_are_registered():
    pytest.importorskip("tracker.evaluation.videos")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"track", "webcam", "info", "eval-300vw", "eval-images"} <= set(sub.choices)


def test_track_the_clip_into_every_output(tmp_path, capsys):
    assert _track(CLIP, *_outputs(tmp_path), "--every", "5", "--timings") == 0
    err = capsys.readouterr().err
    assert "72 frames (72 with a face" in err and "infer" in err and "fps" in err
    n, rate, kinds = _video(tmp_path / "out.mp4")
    assert n == 72 and rate == 30 and kinds == ["video", "audio"]
    pts = sorted((tmp_path / "pts").glob("*.pts"))
    assert [p.name for p in pts[:2]] == ["000001.pts", "000002.pts"] and len(pts) == 72
    assert read_pts(pts[0]).shape == (68, 2)
    assert _csv_frames(tmp_path / "log.csv") == list(range(72))
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 72 and all(len(d["faces"]) == 1 for d in lines)
    # the .pts (1-based) and the CSV (0-based) agree
    with open(tmp_path / "log.csv", newline="") as f:
        row = next(csv.DictReader(f))
    xy = np.array([[float(row[f"x{k}"]), float(row[f"y{k}"])] for k in range(68)])
    np.testing.assert_allclose(read_pts(pts[0]), xy, atol=2e-3)


def test_image_folder_with_grey_rgba_odd_and_corrupt_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    f = cv2.cvtColor(clip_frames()[0], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "a.jpg"), f)
    cv2.imwrite(str(folder / "b.png"), cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "c.png"), cv2.cvtColor(f, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "d.png"), f[:301, :455])
    (folder / "e.jpg").write_bytes(b"garbage")
    assert _track(folder, "--pts-dir", tmp_path / "pts", "-o", tmp_path / "o.mp4") == 0
    err = capsys.readouterr().err
    assert "e.jpg" in err and "1 skipped" in err
    assert sorted(p.name for p in (tmp_path / "pts").iterdir()) == ["a.pts", "b.pts", "c.pts", "d.pts"]
    assert _video(tmp_path / "o.mp4")[0] == 4


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such file"), ("empty", "empty file"), ("text", "not a readable video"),
    ("truncated", "truncated"), ("no_video", "no video stream"),
    ("unknown_codec", "unsupported or damaged"), ("zero_frames", "no frames could be decoded"),
])
def test_bad_inputs_exit_2_with_a_message(faults, tmp_path, capsys, kind, message):
    path = tmp_path / "missing.mp4" if kind == "missing" else faults[kind]
    assert _track(path, "--csv", tmp_path / "log.csv") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_truncated_but_playable_file_is_tracked_as_far_as_it_goes(faults, tmp_path, capsys):
    assert _track(faults["truncated_playable"], "--csv", tmp_path / "log.csv") == 0
    err = capsys.readouterr().err
    assert "truncated" in err
    assert 10 < len(_csv_frames(tmp_path / "log.csv")) < 72


def test_no_face_in_any_frame_exits_3(tmp_path, capsys):
    video = write_video(tmp_path / "black.mp4", [np.zeros((64, 96, 3), np.uint8)] * 5)
    assert _track(video, "--jsonl", tmp_path / "log.jsonl") == 3
    assert "no face" in capsys.readouterr().err
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("argv, message", [
    (["--every", "0"], "detect_every"),
    (["--backend", "tensorrt"], "tensorrt"),
    (["--model", "/nonexistent/model.onnx"], "no such model file"),
    (["-o", "/proc/forbidden/out.mp4"], "cannot write a video"),
    (["--fps", "-3"], "--fps"),
])
def test_bad_options_exit_2(tmp_path, capsys, argv, message):
    if argv[0] == "--backend":
        from tracker.engines.registry import available_backends

        if available_backends()["tensorrt"].startswith("available"):
            pytest.skip("TensorRT is installed here")
    args = ["track", str(CLIP), "--quiet", "--model", str(tiny_model())] + [str(a) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _fail_at(monkeypatch, index, exc):
    process = api.Tracker.process

    def failing(self, frame, index_=0, timestamp=0.0, *rest):
        if index_ == index:
            raise exc
        return process(self, frame, index_, timestamp, *rest)

    monkeypatch.setattr(api.Tracker, "process", failing)


def test_interrupt_mid_run_finalises_every_output(tmp_path, monkeypatch, capsys):
    _fail_at(monkeypatch, 20, KeyboardInterrupt())
    assert _track(CLIP, *_outputs(tmp_path)) == 130
    assert "interrupted" in capsys.readouterr().err
    n, rate, kinds = _video(tmp_path / "out.mp4")
    assert n == 20 and rate == 30 and "audio" in kinds  # finalised and playable
    assert _csv_frames(tmp_path / "log.csv") == list(range(20))
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 20
    assert len(list((tmp_path / "pts").glob("*.pts"))) == 20


def test_interrupt_from_a_sink_finalises_the_video(tmp_path, monkeypatch):
    write = sinks.JsonlSink.write

    def interrupting(self, frame, result, overlay=None):
        if result.index == 30:
            raise KeyboardInterrupt
        write(self, frame, result, overlay)

    monkeypatch.setattr(sinks.JsonlSink, "write", interrupting)
    assert _track(CLIP, *_outputs(tmp_path)) == 130
    # the sinks before it got frame 30 too; the logs hold every frame up to it
    assert _video(tmp_path / "out.mp4")[0] == 31
    assert _csv_frames(tmp_path / "log.csv") == list(range(31))
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 30


def test_a_failing_stage_exits_1_without_hanging(tmp_path, monkeypatch, capsys):
    _fail_at(monkeypatch, 10, RuntimeError("simulated fault"))
    assert _track(CLIP, *_outputs(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "simulated fault" in err and "track" in err and "Traceback" not in err
    assert _video(tmp_path / "out.mp4")[0] == 10
    assert _csv_frames(tmp_path / "log.csv") == list(range(10))


def test_webcam_without_display_or_camera(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["webcam", "--device", "0"]) == 2
    assert "no display" in capsys.readouterr().err
    assert main(["webcam", "--no-window"]) == 2
    assert "needs an output" in capsys.readouterr().err
    assert main(["webcam", "--device", "97", "--no-window", "--csv", str(tmp_path / "c.csv"),
                 "--model", str(tiny_model())]) == 2
    assert "camera 97" in capsys.readouterr().err


def test_info_lists_backends_and_the_model(capsys):
    assert main(["info", "--model", str(tiny_model())]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "tensorrt" in out and "name tiny" in out and "64x64" in out
    assert ("bundled models (--model NAME): rt-m (1.5 MB), rt-sep-112-kd (1.6 MB, fast), "
            "rt-sep-kd (1.6 MB, the default), rt-sep2-192 (2.0 MB, accurate)\n") in out
    assert main(["info", "--model", "/nonexistent.onnx"]) == 2


def test_ctrl_c_on_a_real_process(tmp_path):
    """SIGINT to `python -m tracker track` mid-run: exit 130, a playable video and logs with
    the same frames."""
    import sys


    long = write_video(tmp_path / "long.mp4", list(clip_frames()) * 4)  # 288 frames
    cmd = [sys.executable, "-m", "tracker", "track", str(long), "--model", str(tiny_model()),
           "--lost-threshold", "0", "--max-shape-residual", "0", "--quiet", *map(str, _outputs(tmp_path))]
    log = tmp_path / "log.csv"
    code, err = interrupt_when(cmd, lambda: log.is_file() and log.read_text().count("\n") > 20)
    assert code == 130, err[-2000:]
    n_video = _video(tmp_path / "out.mp4")[0]
    n_csv = len(_csv_frames(log))
    assert 20 <= n_csv < 288 and n_video in (n_csv, n_csv + 1)


def test_tracker_options_reach_the_config():
    from tracker.cli.options import config_from_args

    args = build_parser().parse_args(["track", "in.mp4", "--flip-test", "--smooth", "--every", "3",
                                      "--lost-threshold", "0.2", "--max-shape-residual", "0.5",
                                      "--no-spin", "--refine", "0", "--no-turned-faces"])
    cfg = config_from_args(args)
    assert cfg.flip_test and cfg.smooth and cfg.detect_every == 3 and cfg.lost_threshold == 0.2
    assert cfg.max_shape_residual == 0.5 and not cfg.spin and cfg.refine == 0 and not cfg.turned_faces
    default = config_from_args(build_parser().parse_args(["track", "in.mp4"]))
    assert not default.flip_test and default.max_shape_residual == 0.5 and default.spin
    assert default.refine == 1 and default.turned_faces
    off = build_parser().parse_args(["track", "in.mp4", "--max-shape-residual", "0"])
    assert config_from_args(off).max_shape_residual is None


def test_the_webcam_smooths_by_default_and_track_stays_raw():
    from tracker.cli.options import config_from_args

    def smooth(*argv):
        return config_from_args(build_parser().parse_args(list(argv))).smooth

    assert smooth("webcam") is True
    assert smooth("webcam", "--no-smooth") is False
    assert smooth("webcam", "--smooth") is True
    assert smooth("track", "in.mp4") is False
    assert smooth("track", "in.mp4", "--smooth") is True
    with pytest.raises(SystemExit):  # --no-smooth is the webcam's alone
        build_parser().parse_args(["track", "in.mp4", "--no-smooth"])


class _UnpluggedCamera:
    """A capture object that delivers `frames` of the clip (BGR) and then nothing, ever."""

    def __init__(self, frames: int = 8, opens: bool = True):
        self.left, self.opens = frames, opens

    def isOpened(self):
        return self.opens

    def get(self, prop):
        return 30.0

    def set(self, prop, value):
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, cv2.cvtColor(clip_frames()[self.left], cv2.COLOR_RGB2BGR)

    def release(self):
        pass


def test_a_camera_lost_mid_run_exits_4_with_finished_outputs(monkeypatch, tmp_path, capsys):
    import tracker.runtime.camera_source as cs

    captures = iter([_UnpluggedCamera(8), _UnpluggedCamera(opens=False), _UnpluggedCamera(0)])
    fast = cs.CameraConfig(first_frame_s=0.2, stall_s=0.1, reopen_attempts=2, reopen_s=1.0,
                           reopen_pause_s=0.01)
    real = cs.CameraSource
    monkeypatch.setattr(cs, "CameraSource", lambda device: real(
        device, config=fast, open_capture=lambda d: next(captures)))
    code = main(["webcam", "--no-window", "--csv", str(tmp_path / "log.csv"), "-o",
                 str(tmp_path / "out.mp4"), "--model", str(tiny_model()), "--lost-threshold", "0",
                 "--max-shape-residual", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "camera 0: the camera stopped delivering frames" in err
    assert "could not be reopened (2 attempts" in err and "Traceback" not in err
    logged = _csv_frames(tmp_path / "log.csv")  # a live run may drop stale frames, not the last
    assert logged == sorted(set(logged)) and set(logged) <= set(range(8)) and logged[-1] == 7
    assert _video(tmp_path / "out.mp4")[0] == len(logged)
    assert main(["--help"]) == 0
    assert "4    the camera stopped" in capsys.readouterr().out
