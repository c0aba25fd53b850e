"""Shared helpers for the tracker runtime's tests (capture ... cli): a tiny untrained model
exported once per test session, the real clip, and generated faulty inputs."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CLIP = FIXTURES / "feat_single" / "vid.mp4"  # 640x360, 72 frames, 30 fps, mp3 audio
ANNOT = FIXTURES / "feat_single" / "annot"


@functools.lru_cache(maxsize=None)
def tiny_model() -> Path:
    """An untrained, tiny FAN (64x64 input, 16x16 heatmaps) as .onnx with its .pt beside it,
    in a temporary folder (exported once per process)."""
    import torch

    from tracker.core.codec import HeatmapCodec
    from tracker.core.model import FAN
    from tracker.core.model_config import ModelConfig
    from tracker.core.modelfile import ModelInfo
    from tracker.engines.export import export_onnx, save_shipped

    torch.manual_seed(0)
    mc = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16),
                     stem_width=8)
    net = FAN(mc).eval()
    info = ModelInfo("tiny", mc, HeatmapCodec(mc.input_hw, mc.heatmap_hw))
    folder = Path(tempfile.mkdtemp(prefix="tracker-tiny-"))
    path = folder / "tiny.onnx"
    export_onnx(net, info, path)
    save_shipped(net, info, folder / "tiny.pt", half=False)
    return path


@functools.lru_cache(maxsize=None)
def clip_frames() -> tuple[np.ndarray, ...]:
    """The 72 RGB frames of the clip (decoded once per process)."""
    import av

    with av.open(str(CLIP)) as c:
        return tuple(np.ascontiguousarray(f.to_ndarray(format="rgb24")) for f in c.decode(video=0))


def write_video(path: Path, frames, rate=30, codec: str = "libx264", audio: bool = False,
                display_rotation: int = 0) -> Path:
    """Encode RGB frames into a video file (optionally with a silent AAC track, and with a
    display matrix turning them `display_rotation` degrees counter-clockwise, as phones write)."""
    import av

    frames = list(frames)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=rate)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        if display_rotation:
            v.set_display_rotation(display_rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
        for img in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            n = int(44100 * len(frames) / float(rate))
            for _ in range(0, n, 1024):
                f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
                f.sample_rate = 44100
                for p in a.encode(f):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def faulty_videos(folder: Path) -> dict[str, Path]:
    """Bad inputs made from the clip: empty, text, truncated (index at the end, so nothing
    opens), truncated with the index first (half the frames decode), no video stream,
    zero frames, and an unknown codec."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    data = CLIP.read_bytes()
    out = {}
    out["empty"] = folder / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["text"] = folder / "text.mp4"
    out["text"].write_text("this is not a video\n")
    out["truncated"] = folder / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 2])
    # the same clip with the index first (faststart), cut in half: the first frames decode
    fs = folder / "faststart.mp4"
    with av.open(str(CLIP)) as i, av.open(str(fs), "w", options={"movflags": "faststart"}) as o:
        m = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is None:
                continue
            p.stream = m[p.stream.index]
            o.mux(p)
    out["truncated_playable"] = folder / "truncated_playable.mp4"
    out["truncated_playable"].write_bytes(fs.read_bytes()[: fs.stat().st_size // 2])
    # audio only
    out["no_video"] = folder / "audio_only.m4a"
    with av.open(str(out["no_video"]), "w") as o:
        a = o.add_stream("aac", rate=44100)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate = 44100
        for p in [*a.encode(f), *a.encode()]:
            o.mux(p)
    # a video stream with no frame in it
    out["zero_frames"] = folder / "zero_frames.mkv"
    with av.open(str(out["zero_frames"]), "w") as o:
        v = o.add_stream("mpeg4", rate=30)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = o.add_stream("aac", rate=44100)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate = 44100
        for p in [*a.encode(f), *a.encode()]:
            o.mux(p)
    # an AVI whose codec tag FFmpeg does not know
    mj = folder / "mjpeg.avi"
    with av.open(str(mj), "w") as o:
        v = o.add_stream("mjpeg", rate=10)
        v.width, v.height, v.pix_fmt = 64, 64, "yuvj420p"
        for _ in range(3):
            for p in v.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")):
                o.mux(p)
        for p in v.encode():
            o.mux(p)
    out["unknown_codec"] = folder / "unknown_codec.avi"
    out["unknown_codec"].write_bytes(mj.read_bytes().replace(b"MJPG", b"QQQQ"))
    return out


def interrupt_when(cmd: list[str], ready, timeout: float = 120.0) -> tuple[int, str]:
    """Run `cmd` from the repository root, send it SIGINT once `ready()` holds (polled), and
    return (exit code, stderr); pytest.skip when it ended before it could be interrupted."""
    import signal
    import subprocess
    import time

    import pytest

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    if proc.poll() is not None:
        proc.communicate()
        pytest.skip("the run ended before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()
