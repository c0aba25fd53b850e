"""Build the footage test clips in tests/fixtures/footage/ from real clips of the shared data.

    python scripts/make_footage_fixtures.py [--data ../shared/data]

Each case is a folder with vid.mp4 (H.264, 30 fps) and labels.npz: `points` (F, N, 68, 2)
float32, the source clips' labels (teacher labels, 0-based pixel centres) carried exactly
through the same transforms as the pixels, NaN where face n is not in frame f; `ids` (N,)
which source each face comes from. The cases edit real footage the way real footage is edited:

- cut: feat_single, then a hard cut to lp_d0 (letterboxed into the same 640x360 frame);
- zoom: feat_single, then a zoom cut: the same shot framed 1.5x closer and shifted;
- two_faces: a 1120x360 frame with feat_single on the left and lp_d0 small on the right
  (a face about 130 px tall beside a large one);
- crossing: two faces on a 960x540 frame moving past each other (one along the top, one along
  the bottom), 48 frames;
- rotated: feat_single turned about its face by an angle that rises to 60 degrees and back;
- fast: feat_single on a 960x360 frame swinging left and right by up to 42 px per frame;
- upside_down: feat_single turned upside down (a camera mounted so, or footage flipped in
  editing, with no display matrix to say so), 48 frames;
- roll_full: feat_single turned about its face by an angle that rises from 0 to 180 degrees
  over 72 frames (a head rolling over, or a camera turned during the shot);
- portrait: feat_single framed as a phone's portrait video (360x640) and stored as a phone
  stores it: turned a quarter, 640x360, with a display matrix turning it back (-90 degrees);
  the labels are in the upright picture's pixels, as players show it.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.core.datasets import video_clip  # noqa: E402
from tracker.core.geometry import apply, compose, invert, similarity, warp  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "footage"
FPS = 30


def clip(data: Path, name: str, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first `n` frames (RGB) of a shared clip and their labels (n, 68, 2), 0-based."""
    import av

    video, labels = video_clip(data / "videos" / name)
    frames = []
    with av.open(str(video)) as c:
        for f in c.decode(video=0):
            frames.append(np.ascontiguousarray(f.to_ndarray(format="rgb24")))
            if len(frames) == n:
                break
    missing = [i + 1 for i in range(n) if i + 1 not in labels]
    if missing:
        raise SystemExit(f"{name}: frames {missing} have no labels; pick another span")
    return frames, np.stack([labels[i + 1] - 1.0 for i in range(n)]).astype(np.float64)


def place(canvas_hw, layers) -> tuple[np.ndarray, list[np.ndarray]]:
    """Compose (image, points, transform) layers onto a grey canvas, later ones on top; returns
    the frame and each layer's transformed points."""
    h, w = canvas_hw
    out = np.full((h, w, 3), 90, np.uint8)
    pts = []
    for image, p, m in layers:
        warped = warp(image, m, (h, w))
        mask = warp(np.full(image.shape[:2] + (3,), 255, np.uint8), m, (h, w))[..., 0] > 127
        out[mask] = warped[mask]
        pts.append(apply(m, p))
    return out, pts


def write(case: str, frames: list[np.ndarray], points: np.ndarray, ids: list[str],
          display_rotation: int = 0) -> None:
    """The case's folder: `frames` encoded (stored turned by -`display_rotation` degrees
    counter-clockwise, with a display matrix turning them back) and the labels."""
    import av

    folder = OUT / case
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(folder / "vid.mp4"), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "23", "preset": "medium"}
        turns = display_rotation // 90
        if turns:
            s.set_display_rotation(display_rotation)
            s.height, s.width = np.rot90(frames[0], -turns).shape[:2]
        for f in frames:
            stored = np.ascontiguousarray(np.rot90(f, -turns))
            for packet in s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    np.savez_compressed(folder / "labels.npz", points=points.astype(np.float32), ids=np.array(ids))
    kb = sum(p.stat().st_size for p in folder.iterdir()) / 1024
    print(f"{case}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, {kb:.0f} KB")


def identity() -> np.ndarray:
    return np.array([[1.0, 0, 0], [0, 1.0, 0]])


def main(data: Path) -> None:
    a_frames, a_pts = clip(data, "feat_single", 72)  # 640x360
    b_frames, b_pts = clip(data, "lp_d0", 72)  # 512x512

    # cut: 36 frames of A, then B letterboxed (scaled to 360 high, centred)
    mb = similarity(np.array([255.5, 255.5]), np.array([319.5, 179.5]), 360 / 512)
    frames, pts = [], []
    for i in range(36):
        frames.append(a_frames[i]), pts.append([a_pts[i]])
    for i in range(36):
        f, p = place((360, 640), [(b_frames[i], b_pts[i], mb)])
        frames.append(f), pts.append(p)
    write("cut", frames, np.array(pts), ["feat_single|lp_d0"])

    # zoom: A, then A framed 1.5x closer around a point right of the face's centre
    c = a_pts[36].mean(0)
    mz = similarity(c + np.array([20.0, 10.0]), np.array([319.5, 179.5]), 1.5)
    frames, pts = [], []
    for i in range(72):
        m = identity() if i < 36 else mz
        f, p = place((360, 640), [(a_frames[i], a_pts[i], m)])
        frames.append(f), pts.append(p)
    write("zoom", frames, np.array(pts), ["feat_single"])

    # two faces: A at full size on the left, B at 0.45 on the right
    ms = compose(np.array([[1.0, 0, 640 + 125], [0, 1.0, 65]]), similarity(np.zeros(2), np.zeros(2), 0.45))
    frames, pts = [], []
    for i in range(48):
        f, p = place((360, 1120), [(a_frames[i], a_pts[i], identity()), (b_frames[i], b_pts[i], ms)])
        frames.append(f), pts.append(p)
    write("two_faces", frames, np.array(pts), ["feat_single", "lp_d0"])

    # crossing: A (face crop scaled 0.8) left -> right along the top, B (0.5) right -> left
    # along the bottom; they pass each other around frame 24
    frames, pts = [], []
    ca, cb = a_pts[:48].mean((0, 1)), b_pts[:48].mean((0, 1))
    for i in range(48):
        t = i / 47
        ma = similarity(ca, np.array([150 + 660 * t, 135.0]), 0.8)
        mb2 = similarity(cb, np.array([810 - 660 * t, 405.0]), 0.5)
        a_crop, a_p = _face_patch(a_frames[i], a_pts[i], ca, 150)
        b_crop, b_p = _face_patch(b_frames[i], b_pts[i], cb, 210)
        f, p = place((540, 960), [(a_crop, a_p, compose(ma, invert(_shift(ca, 150)))),
                                  (b_crop, b_p, compose(mb2, invert(_shift(cb, 210))))])
        frames.append(f), pts.append(p)
    write("crossing", frames, np.array(pts), ["feat_single", "lp_d0"])

    # rotated: A turned about its mean face centre by 0 -> 60 -> 0 degrees
    c = a_pts.mean((0, 1))
    frames, pts = [], []
    for i in range(72):
        angle = 60 * math.sin(math.pi * i / 71)
        f, p = place((360, 640), [(a_frames[i], a_pts[i], similarity(c, c, 1.0, angle))])
        frames.append(f), pts.append(p)
    write("rotated", frames, np.array(pts), ["feat_single"])

    # fast: A on a wider frame, swinging by 160 px with a period of 24 frames
    frames, pts = [], []
    for i in range(48):
        dx = 160 + 160 * math.sin(2 * math.pi * i / 24)
        f, p = place((360, 960), [(a_frames[i], a_pts[i], np.array([[1.0, 0, dx], [0, 1.0, 0]]))])
        frames.append(f), pts.append(p)
    write("fast", frames, np.array(pts), ["feat_single"])

    # upside_down: A turned 180 degrees about the frame's centre
    frames, pts = [], []
    for i in range(48):
        f, p = place((360, 640), [(a_frames[i], a_pts[i], similarity(np.array([319.5, 179.5]),
                                                                      np.array([319.5, 179.5]), 1.0, 180))])
        frames.append(f), pts.append(p)
    write("upside_down", frames, np.array(pts), ["feat_single"])

    # roll_full: A turned about its mean face centre by 0 -> 180 degrees, evenly
    c = a_pts.mean((0, 1))
    frames, pts = [], []
    for i in range(72):
        f, p = place((360, 640), [(a_frames[i], a_pts[i], similarity(c, c, 1.0, 180 * i / 71))])
        frames.append(f), pts.append(p)
    write("roll_full", frames, np.array(pts), ["feat_single"])

    # portrait: A centred on a 360x640 portrait frame, stored sideways as phones store it
    c = a_pts[:48].mean((0, 1))
    frames, pts = [], []
    for i in range(48):
        f, p = place((640, 360), [(a_frames[i], a_pts[i], similarity(c, np.array([179.5, 279.5]), 1.0))])
        frames.append(f), pts.append(p)
    write("portrait", frames, np.array(pts), ["feat_single"], display_rotation=-90)


def _face_patch(image: np.ndarray, pts: np.ndarray, centre: np.ndarray, half: int):
    """A square patch of side 2 * half around `centre` (points in patch pixels)."""
    m = _shift(centre, half)
    return warp(image, m, (2 * half, 2 * half)), apply(m, pts)


def _shift(centre: np.ndarray, half: int) -> np.ndarray:
    """Frame -> patch translation that puts `centre` at the patch's centre."""
    return np.array([[1.0, 0, half - 0.5 - centre[0]], [0, 1.0, half - 0.5 - centre[1]]])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    main(ap.parse_args().data)
