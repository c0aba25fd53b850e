"""Frame sources: the real clip, generated videos with row-padded widths, image folders with
grey/RGBA/odd/corrupt images, and every kind of bad input."""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from tests.tracker.runtime_fixtures import CLIP, clip_frames, faulty_videos, write_video
from tracker.core.geometry import quarter_of
from tracker.core.yuv import YUV420, cut
from tracker.evaluation.footage import EXIF_ORIENTATION, save_turned
from tracker.runtime.camera_source import CameraSource
from tracker.runtime.capture import open_source
from tracker.runtime.frames import Frame, SourceError
from tracker.runtime.image_source import ImageFolderSource
from tracker.runtime.video_source import FrameNumbers, VideoSource, pixels_of


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    return faulty_videos(tmp_path_factory.mktemp("faults"))


def test_clip_decodes_every_frame_with_index_and_timestamp():
    src = open_source(CLIP)
    assert isinstance(src, VideoSource) and not src.live
    assert src.size_hw == (360, 640) and src.fps == pytest.approx(30.0) and src.has_audio
    frames = list(src)
    src.close()
    assert [f.index for f in frames] == list(range(72))
    assert np.allclose(np.diff([f.timestamp for f in frames]), 1 / 30, atol=1e-3)
    for f in frames[:3]:
        assert f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8
        assert f.image.flags["C_CONTIGUOUS"]
    assert src.skipped == []
    np.testing.assert_array_equal(frames[10].image, clip_frames()[10])


@pytest.mark.parametrize("width", [360, 590])
def test_row_padded_widths_come_out_contiguous(tmp_path, width):
    # PyAV's to_ndarray pads rows for these widths; the source must hand out plain arrays
    g = np.random.default_rng(width)
    img = np.kron(g.integers(0, 255, (6, width // 10 + 1, 3), dtype=np.uint8),
                  np.ones((20, 10, 1), np.uint8))[:120, :width]
    path = write_video(tmp_path / f"w{width}.mp4", [img] * 3)
    frames = list(VideoSource(path))
    assert len(frames) == 3
    f = frames[0].image
    assert f.shape == (120, width, 3) and f.flags["C_CONTIGUOUS"]
    assert f.strides == (width * 3, 3, 1)
    assert np.abs(f.astype(int) - img).mean() < 12  # lossy, but the same picture
    # the planes of a padded frame are read right too: a crop of them is the RGB frame's crop
    # (measured 2.6 and 1.8 levels on these saturated 10-px blocks, where chroma upsampling
    # differs most; a plane read with the wrong stride is off by tens)
    m = np.array([[0.9, 0.2, -20.0], [-0.2, 0.9, 30.0]])
    assert isinstance(frames[0].pixels, YUV420)
    assert np.abs(cut(frames[0].pixels, m, (64, 64)).astype(int) - cut(f, m, (64, 64))).mean() < 3.5


def test_h264_frames_come_as_planes_and_other_formats_as_rgb(tmp_path):
    import av

    frames = list(VideoSource(CLIP))
    assert all(isinstance(f.pixels, YUV420) for f in frames)
    assert frames[5].image is frames[5].image  # converted once, by PyAV (the reference)
    img = clip_frames()[0]
    path = tmp_path / "yuv444.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.height, v.width, v.pix_fmt = *img.shape[:2], "yuv444p"
        for p in [*v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")), *v.encode()]:
            out.mux(p)
    (frame,) = list(VideoSource(path))
    assert isinstance(frame.pixels, np.ndarray) and frame.pixels is frame.image
    assert frame.image.shape == img.shape and np.abs(frame.image.astype(int) - img).mean() < 3


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_a_video_stored_turned_comes_upright_as_players_show_it(tmp_path, rotation):
    """A phone stores portrait video sideways with a display matrix saying how to turn it:
    frames come turned back (planes and RGB alike), so points are in the upright picture."""
    import av

    upright = clip_frames()[:3]
    turns = rotation // 90
    stored = [np.rot90(f, -turns) for f in upright]  # what the phone wrote
    path = write_video(tmp_path / f"r{rotation}.mp4", stored, display_rotation=rotation)
    frames = list(VideoSource(path))
    assert len(frames) == 3 and all(isinstance(f.pixels, YUV420) for f in frames)
    plain = list(VideoSource(write_video(tmp_path / "plain.mp4", upright)))
    for f, p in zip(frames, plain):
        assert f.image.shape == (360, 640, 3) and f.image.flags["C_CONTIGUOUS"]
        # the same picture within the codec's loss: measured 1.93-1.99 levels (the clip encoded
        # upright: 1.90); turned the wrong way it is another shape, or 76 levels off upside down
        assert np.abs(f.image.astype(int) - upright[f.index]).mean() < 2.2
        m = np.array([[0.9, 0.2, -20.0], [-0.2, 0.9, 30.0]])  # a crop of the planes: the same
        # crop as from the clip encoded upright (measured 0.47-0.58 levels)
        assert np.abs(cut(f.pixels, m, (64, 64)).astype(int) - cut(p.pixels, m, (64, 64))).mean() < 0.8
    with av.open(str(path)) as c:  # the RGB path (any other pixel format) turns the same way
        vf = next(c.decode(video=0))
        rgb = pixels_of(vf.reformat(format="yuv444p"))
        assert quarter_of(vf.rotation) == turns % 4
    assert isinstance(rgb, np.ndarray) and rgb.flags["C_CONTIGUOUS"]
    assert np.abs(rgb.astype(int) - upright[0]).mean() < 1.7  # measured 1.37-1.43


def test_quarter_turns_round_to_the_nearest():
    assert [quarter_of(a) for a in (0, 90, -90, 180, -180, 270, 44, 46, -134, -136)] == [0, 1, 3, 2, 2, 3, 0, 1, 3, 2]


def test_a_photo_stored_turned_with_an_exif_orientation_comes_upright(tmp_path):
    """Phones store photos sideways with an EXIF orientation tag that viewers honour."""
    frame = clip_frames()[0]
    for turns in (1, -1, 2):  # stored turned, with tags 6, 8 and 3
        save_turned(tmp_path / f"o{EXIF_ORIENTATION[turns % 4]}.jpg", frame, [], turns, tag=True)
    frames = list(open_source(tmp_path))
    assert [f.name for f in frames] == ["o3", "o6", "o8"]
    for f in frames:  # measured 1.1 levels (JPEG); the stored orientation is another shape or 40+
        assert f.image.shape == frame.shape and np.abs(f.image.astype(int) - frame).mean() < 2
    from tracker.core.datasets import read_image

    assert read_image(tmp_path / "o6.jpg").shape == frame.shape  # labelled sets read the same way


def test_image_folder_reads_grey_rgba_odd_and_skips_corrupt(tmp_path):
    frame = clip_frames()[0]
    cv2.imwrite(str(tmp_path / "a_colour.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "b_grey.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "c_rgba.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(tmp_path / "d_odd.png"), frame[:101, :203])
    (tmp_path / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(tmp_path, fps=10)
    assert isinstance(src, ImageFolderSource)
    frames = list(src)
    assert [f.name for f in frames] == ["a_colour", "b_grey", "c_rgba", "d_odd"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[1].timestamp == pytest.approx(0.1)
    for f in frames:
        assert f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.flags["C_CONTIGUOUS"]
    assert frames[3].image.shape == (101, 203, 3)
    np.testing.assert_array_equal(frames[2].image, frame)  # RGBA png: lossless, RGB order
    assert len(src.skipped) == 1 and "e_corrupt.jpg" in src.skipped[0]


def test_single_image_file_is_a_one_frame_source(tmp_path):
    p = tmp_path / "one.png"
    cv2.imwrite(str(p), np.zeros((8, 9, 3), np.uint8))
    frames = list(open_source(p))
    assert len(frames) == 1 and frames[0].image.shape == (8, 9, 3) and frames[0].name == "one"


def test_missing_and_empty_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path / "empty")


def test_bad_video_files(faults):
    with pytest.raises(SourceError, match=r"empty\.mp4: empty file"):
        open_source(faults["empty"])
    with pytest.raises(SourceError, match=r"text\.mp4: not a readable video"):
        open_source(faults["text"])
    with pytest.raises(SourceError, match=r"truncated\.mp4: not a readable video.*truncated"):
        open_source(faults["truncated"])
    with pytest.raises(SourceError, match="no video stream"):
        open_source(faults["no_video"])
    with pytest.raises(SourceError, match="unsupported or damaged video stream"):
        open_source(faults["unknown_codec"])


def test_truncated_file_gives_its_frames_and_says_so(faults):
    src = open_source(faults["truncated_playable"])
    frames = list(src)
    assert 10 < len(frames) < 72
    assert [f.index for f in frames] == list(range(len(frames)))
    assert any("truncated" in s for s in src.skipped)


def test_zero_frame_video_yields_nothing(faults):
    src = open_source(faults["zero_frames"])
    assert list(src) == []


def test_absent_camera_raises():
    with pytest.raises(SourceError, match="camera 97"):
        CameraSource(97)
    with pytest.raises(SourceError, match="camera 98"):
        open_source("98")


def test_frame_is_a_plain_record():
    f = Frame(3, 0.1, np.zeros((2, 2, 3), np.uint8))
    assert f.index == 3 and f.name is None


def test_frame_numbers_follow_the_timestamps_at_a_constant_rate():
    numbers = FrameNumbers(rate=30.0, origin=0.0, fps=30.0)
    got = [numbers(t) for t in (0.0, 1 / 30, 3 / 30, 3.2 / 30, None, 10 / 30)]
    assert [i for i, _ in got] == [0, 1, 3, 4, 5, 10]  # a gap, then strictly increasing
    assert got[2][1] == pytest.approx(0.1) and got[4][1] == pytest.approx(5 / 30)
    late = FrameNumbers(rate=25.0, origin=None, fps=25.0)  # no stream start: the first frame's
    assert [late(t)[0] for t in (1.0, 1.04, 1.16)] == [0, 1, 4]
    vfr = FrameNumbers(rate=None, origin=0.0, fps=30.0)  # variable rate: decoding order
    got = [vfr(t) for t in (0.0, 0.1, 0.12, 0.5)]
    assert [i for i, _ in got] == [0, 1, 2, 3] and got[3][1] == pytest.approx(0.5)


def _damage_packet(src, dst, k: int):
    """A copy of the video `src` whose k-th video packet (decoding order) is zeroed."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for n, p in enumerate(q for q in i.demux(video=0) if q.dts is not None):
            if n == k:
                bad = av.Packet(bytes(p.size))
                bad.pts, bad.dts, bad.time_base, bad.is_keyframe = p.pts, p.dts, p.time_base, p.is_keyframe
                p = bad
            p.stream = s
            o.mux(p)
    return dst


@pytest.fixture(scope="module")
def damaged_clip(tmp_path_factory):
    """30 frames of the clip, H.264 intra-only, with packet 15 zeroed: frame 15 cannot be
    decoded, every other frame can."""
    import av

    folder = tmp_path_factory.mktemp("damaged")
    src = folder / "intra.mp4"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.height, v.width, v.pix_fmt, v.options = 360, 640, "yuv420p", {"g": "1"}
        for img in clip_frames()[:30]:
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return _damage_packet(src, folder / "damaged.mp4", 15)


def test_frames_after_an_undecodable_packet_keep_their_numbers(damaged_clip):
    src = VideoSource(damaged_clip)
    assert src.constant_rate
    frames = list(src)
    src.close()
    assert [f.index for f in frames] == [*range(15), *range(16, 30)]
    assert [f.timestamp for f in frames] == pytest.approx([f.index / 30 for f in frames])
    for f in frames[14:17]:  # the picture is the one the number says
        assert np.abs(f.image.astype(int) - clip_frames()[f.index]).mean() < 6
    assert any("undecodable data after frame 14" in m for m in src.skipped)
    assert any("only 29 could be decoded" in m for m in src.skipped)


def test_300vw_numbering_keeps_labels_on_their_frames(damaged_clip):
    videos = pytest.importorskip("tracker.evaluation.videos")
    numbers = [n for n, _ in videos.numbered_frames(damaged_clip, last_frame=30)]
    assert numbers == [*range(1, 16), *range(17, 31)]  # 1-based: frame 16 is missing


def test_a_variable_rate_video_is_numbered_in_decoding_order(tmp_path):
    import av

    times = [0.0, 0.033, 0.1, 0.12, 0.3, 0.31, 0.5]
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for t in times:
            f = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    src = VideoSource(path)
    frames = list(src)
    assert not src.constant_rate
    assert [f.index for f in frames] == list(range(len(times)))
    assert [f.timestamp for f in frames] == pytest.approx(times, abs=1e-3)
