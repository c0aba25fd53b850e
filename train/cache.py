"""Crop cache: every training face cut once from its image or video frame, so that an epoch
neither re-reads images nor re-decodes video.

Each face is stored as a square crop of `side` pixels (`CACHE_SIDE` = 192 by default) around
its landmark box, covering `MARGIN` times the network's canonical crop (see
`tracker.core.geometry.CROP_RATIO`), so that rotation, scale and translation augmentation stay
inside real pixels. Points are stored in cache-crop pixels. The canonical network crop is the
central `side / MARGIN` square, so a model of input side s wants a cache of side
`side_for(s)` = 1.5 s: 192 for the real-time models (128 px), 384 for the paper's (256 px).
A cache's side is its images' (`Cache.side`), and its JSON sidecar records it; caches of
other sides than the default are named for it (`default_path`):

    python -m train.cache ../shared/data                # .cache/train_crops.npz, 192 px
    python -m train.cache ../shared/data --side 384     # .cache/train_crops_384.npz

`check_fits` refuses a cache whose canonical crop is smaller than the model's input (every
face would be upsampled), and `Cache.load` a cache file that is not there; both name the
command that builds the right one (`build_command`).
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tracker.core.datasets import image_folder, read_image, video_clip
from tracker.core.geometry import CROP_RATIO, apply, crop_transform, points_box, warp

CACHE_SIDE = 192  # the default side: MARGIN x the real-time models' 128-px input
MARGIN = 1.5
MAX_SHRINK = 2.0  # a canonical crop more than this times the model's input aliases when warped
DEFAULT_DIR = Path(".cache")


def side_for(input_side: int) -> int:
    """The cache side whose canonical crop is a model input of `input_side` pixels."""
    return math.ceil(input_side * MARGIN)


def default_path(side: int = CACHE_SIDE) -> Path:
    """Where a cache of `side` pixels lives by default: .cache/train_crops.npz for the default
    side, .cache/train_crops_<side>.npz for any other."""
    return DEFAULT_DIR / ("train_crops.npz" if side == CACHE_SIDE else f"train_crops_{side}.npz")


def build_command(path: str | Path, side: int | None = None) -> str:
    """The command that cuts the cache `path` at `side` pixels (None: the side its default
    name says, `default_path`; SIDE where the name does not say)."""
    path = Path(path)
    named = re.fullmatch(r"train_crops(?:_(\d+))?\.npz", path.name)
    if side is None and named:
        side = int(named.group(1) or CACHE_SIDE)
    cmd = f"python -m train.cache DATA_ROOT --side {side or 'SIDE'}"
    if side is None or path != default_path(side):
        cmd += f" -o {path}"
    return f"`{cmd}`"


def shrink_ratio(side: int, input_side: int) -> float:
    """How many times a cache of `side` pixels shrinks its canonical crop to a model input of
    `input_side`: below 1 it upsamples every face, above MAX_SHRINK its warps alias."""
    return side / MARGIN / input_side


def path_for(input_side: int, folder: Path = DEFAULT_DIR) -> Path:
    """The cache a model of `input_side` pixels reads by default: the one cut at its own
    resolution (`side_for`) when it is there, else the default one when that fits it
    (`check_fits`: no face upsampled, none shrunk more than MAX_SHRINK times), else the path
    of the one to build."""
    own = folder / default_path(side_for(input_side)).name
    fallback = folder / default_path().name
    if not own.is_file() and fallback.is_file() and 1 <= shrink_ratio(CACHE_SIDE, input_side) <= MAX_SHRINK:
        return fallback
    return own


def sidecar(path: Path) -> Path:
    """The JSON file beside a cache (faces per source, side, margin)."""
    path = Path(path)
    return path.parent / (path.stem + ".json")


def read_side(path: Path) -> int | None:
    """A cache file's side from its JSON sidecar, without loading the cache; None without one."""
    meta = sidecar(path)
    if not meta.is_file():
        return None
    return int(json.loads(meta.read_text()).get("side", CACHE_SIDE))


class CacheMismatch(ValueError):
    """A crop cache too small for the model it is to train."""


def check_fits(side: int, input_side: int, path: str | Path | None = None) -> None:
    """Refuse (CacheMismatch) a cache of `side` pixels whose canonical crop (`side / MARGIN`) is
    smaller than the model's `input_side`: every face would be upsampled. The message names the
    command that builds the right cache. A cache more than twice the size wanted is accepted
    with a warning (the bilinear warps alias when they shrink that much)."""
    need = side_for(input_side)
    canonical = side / MARGIN
    ratio = shrink_ratio(side, input_side)
    where = f"crop cache {path}" if path is not None else "the crop cache"
    if ratio < 1:
        raise CacheMismatch(
            f"{where} holds {side}-px crops (canonical crop {canonical:g} px), smaller than the "
            f"model's {input_side}-px input, so every face would be upsampled; build one at the "
            f"model's resolution with {build_command(default_path(need))} (writes "
            f"{default_path(need)}) and train with `--set cache={default_path(need)}`")
    if ratio > MAX_SHRINK:
        warnings.warn(f"{where} holds {side}-px crops, {ratio:.1f} x the "
                      f"model's {input_side}-px input: the bilinear warps that shrink them alias; "
                      f"a cache of side {need} fits this model", stacklevel=2)


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

    @property
    def side(self) -> int:
        """The crops' side in pixels."""
        return int(self.images.shape[1])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=self.images, points=self.points, source=self.source,
                 group=self.group, names=np.array(self.names))

    @classmethod
    def load(cls, path: Path) -> "Cache":
        """The cache saved at `path`; FileNotFoundError naming the command that cuts it."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"crop cache {path} not found; cut it from the shared data "
                                    f"with {build_command(path)}")
        d = np.load(path, allow_pickle=False)
        return cls(d["images"], d["points"], d["source"], d["group"], list(d["names"]))


def cut(image: np.ndarray, xy: np.ndarray, side: int = CACHE_SIDE,
        margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Cache crop of one face: ((S, S, 3) uint8, (K, 2) float32 points in the crop), S = side,
    covering `margin` x the canonical crop."""
    m = crop_transform(points_box(xy), (side, side), CROP_RATIO * margin)
    return warp(image, m, (side, side)), apply(m, xy).astype(np.float32)


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


def video_faces(clip: Path, every: int, side: int = CACHE_SIDE,
                margin: float = MARGIN) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every `every`-th labelled frame of a clip, with temporally smoothed labels, cut at `side`
    (see `cut`)."""
    import av

    video, labels = video_clip(clip)
    frames = sorted(labels)
    smooth = smooth_track(frames, np.stack([labels[f] for f in frames]))
    keep = {f: smooth[i] for i, f in enumerate(frames) if i % every == 0}
    last = max(keep)
    out = []
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(video=0), 1):
            if n in keep:
                out.append(cut(np.ascontiguousarray(frame.to_ndarray(format="rgb24")), keep[n], side,
                               margin))
            if n >= last:
                break
    return out


def build(data_root: Path, out: Path, video_every: int = 4, limit: int | None = None,
          side: int = CACHE_SIDE, sources: list[tuple[str, str, str, bool]] = SOURCES) -> Cache:
    """Cut every face of `sources` (as `SOURCES`) under `data_root` into a cache of `side`-px
    crops at `out`, with its JSON sidecar."""
    if side < 16:
        raise ValueError(f"cache side {side} is too small")
    imgs, pts, src, grp = [], [], [], []
    names = [s[0] for s in sources]
    for si, (name, kind, rel, _human) in enumerate(sources):
        root = data_root / rel
        if kind == "images":
            recs = list(image_folder(root))[:limit]
            cached: dict = {}
            for r in tqdm(recs, desc=name, unit="face"):
                if r.image not in cached:
                    cached = {r.image: read_image(r.image)}
                c, p = cut(cached[r.image], r.points, side)
                imgs.append(c), pts.append(p), src.append(si), grp.append(f"{name}/{r.group}")
        else:
            clips = sorted(p for p in root.iterdir() if (p / "annot").is_dir())[:limit]
            for clip in tqdm(clips, desc=name, unit="clip"):
                for c, p in video_faces(clip, video_every, side):
                    imgs.append(c), pts.append(p), src.append(si), grp.append(f"{name}/{clip.name}")
    cache = Cache(np.stack(imgs), np.stack(pts), np.asarray(src), np.asarray(grp), names)
    cache.save(out)
    sidecar(out).write_text(json.dumps(
        {"faces": len(src), "per_source": {n: int((cache.source == i).sum())
                                           for i, n in enumerate(names)},
         "side": side, "margin": MARGIN, "video_every": video_every}, indent=1))
    return cache


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Cut the training faces into a crop cache.")
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--side", type=int, default=CACHE_SIDE,
                    help=f"crop side in pixels, {MARGIN} x the model's input (default {CACHE_SIDE}, "
                         f"for 128-px models; {side_for(256)} for the paper's 256 px)")
    ap.add_argument("-o", "--out", type=Path, default=None,
                    help="cache file (default .cache/train_crops.npz, or train_crops_<side>.npz)")
    ap.add_argument("--video-every", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    build(a.data_root, a.out or default_path(a.side), a.video_every, a.limit, a.side)
