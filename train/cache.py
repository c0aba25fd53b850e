"""Crop cache: every training face cut once from its image or video frame, so that an epoch
neither re-reads images nor re-decodes video.

Each face is stored as a square crop of `CACHE_SIDE` pixels around its landmark box, covering
`MARGIN` times the network's canonical crop (see `tracker.core.geometry.CROP_RATIO`), so that
rotation, scale and translation augmentation stay inside real pixels. Points are stored in
cache-crop pixels. The canonical network crop is the central `CACHE_SIDE / MARGIN` square.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tracker.core.datasets import image_folder, read_image, video_clip
from tracker.core.geometry import CROP_RATIO, apply, crop_transform, points_box, warp

CACHE_SIDE = 192
MARGIN = 1.5

#: Sources under the shared data folder: (name, kind, relative path, is_human).
SOURCES = [
    ("300w_lfpw", "images", "300w/lfpw_trainset", True),
    ("300w_helen", "images", "300w/helen_trainset", True),
    ("300w_afw", "images", "300w/afw", True),
    ("lfw", "images", "photos_lfw", False),
    ("utkface", "images", "photos_utkface", False),
    ("misc", "images", "photos_misc", False),
    ("photos", "images", "photos", False),
    ("videos", "videos", "videos", False),
]


@dataclass
class Cache:
    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    points: np.ndarray  # (N, 68, 2) float32, cache-crop pixels
    source: np.ndarray  # (N,) int, index into `names`
    group: np.ndarray  # (N,) str, identity unit (image, person or clip)
    names: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=self.images, points=self.points, source=self.source,
                 group=self.group, names=np.array(self.names))

    @classmethod
    def load(cls, path: Path) -> "Cache":
        d = np.load(path, allow_pickle=False)
        return cls(d["images"], d["points"], d["source"], d["group"], list(d["names"]))


def cut(image: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cache crop of one face: ((S, S, 3) uint8, (K, 2) float32 points in the crop)."""
    m = crop_transform(points_box(xy), (CACHE_SIDE, CACHE_SIDE), CROP_RATIO * MARGIN)
    return warp(image, m, (CACHE_SIDE, CACHE_SIDE)), apply(m, xy).astype(np.float32)


def smooth_track(frames: list[int], xy: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian smoothing of (T, K, 2) labels over time, within runs of consecutive frames.

    The teacher's video labels are whole-pixel and jitter from frame to frame; averaging
    neighbours (sigma in frames) removes most of that jitter without lagging real motion.
    """
    out = xy.copy()
    frames = np.asarray(frames)
    r = int(3 * sigma)
    for t in range(len(frames)):
        lo, hi = t, t
        while lo > 0 and frames[lo - 1] == frames[lo] - 1 and t - lo < r:
            lo -= 1
        while hi < len(frames) - 1 and frames[hi + 1] == frames[hi] + 1 and hi - t < r:
            hi += 1
        d = frames[lo:hi + 1] - frames[t]
        w = np.exp(-d**2 / (2 * sigma**2))
        out[t] = (w[:, None, None] * xy[lo:hi + 1]).sum(0) / w.sum()
    return out


def video_faces(clip: Path, every: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every `every`-th labelled frame of a clip, with temporally smoothed labels."""
    import av

    video, labels = video_clip(clip)
    frames = sorted(labels)
    smooth = smooth_track(frames, np.stack([labels[f] for f in frames]))
    keep = {f: smooth[i] for i, f in enumerate(frames) if i % every == 0}
    out = []
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(video=0), 1):
            if n in keep:
                out.append(cut(np.ascontiguousarray(frame.to_ndarray(format="rgb24")), keep[n]))
            if n > frames[-1]:
                break
    return out


def build(data_root: Path, out: Path, video_every: int = 4, limit: int | None = None) -> Cache:
    """Cut every face of `SOURCES` under `data_root` into a cache file at `out`."""
    imgs, pts, src, grp = [], [], [], []
    names = [s[0] for s in SOURCES]
    for si, (name, kind, rel, _human) in enumerate(SOURCES):
        root = data_root / rel
        if kind == "images":
            recs = list(image_folder(root))[:limit]
            cached: dict = {}
            for r in tqdm(recs, desc=name, unit="face"):
                if r.image not in cached:
                    cached = {r.image: read_image(r.image)}
                c, p = cut(cached[r.image], r.points)
                imgs.append(c), pts.append(p), src.append(si), grp.append(f"{name}/{r.group}")
        else:
            clips = sorted(p for p in root.iterdir() if (p / "annot").is_dir())[:limit]
            for clip in tqdm(clips, desc=name, unit="clip"):
                for c, p in video_faces(clip, video_every):
                    imgs.append(c), pts.append(p), src.append(si), grp.append(f"{name}/{clip.name}")
    cache = Cache(np.stack(imgs), np.stack(pts), np.asarray(src), np.asarray(grp), names)
    cache.save(out)
    (out.parent / (out.stem + ".json")).write_text(json.dumps(
        {"faces": len(src), "per_source": {n: int((cache.source == i).sum())
                                           for i, n in enumerate(names)},
         "side": CACHE_SIDE, "margin": MARGIN, "video_every": video_every}, indent=1))
    return cache


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Cut the training faces into a crop cache.")
    ap.add_argument("data_root", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path(".cache/train_crops.npz"))
    ap.add_argument("--video-every", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    build(a.data_root, a.out, a.video_every, a.limit)
