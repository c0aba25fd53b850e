"""A compact training set that travels inside the working tree: every face as a JPEG crop at
the paper model's resolution, in one folder small enough to go with the repository to a
machine that has nothing else (the GPU machine of `scripts/gpu_train.py`).

A pack is a folder holding pack.npz and pack.json. pack.npz:

    jpeg    (n_bytes,) uint8    every crop's JPEG file, one after another
    offsets (N + 1,) int64      crop i is jpeg[offsets[i]:offsets[i + 1]]
    points  (N, K, 2) float32   landmarks in pack-crop pixels (pixel centres on integers)
    source  (N,) int16          index into names
    group   (N,) str            identity unit (image, person or clip), as in the crop cache
    names   (S,) str            source names, those of `train.cache.SOURCES`

pack.json: side, margin, quality, teacher_quality, faces, per_source, bytes, origin.

A crop is a square of `side` pixels covering `margin` x the canonical crop (see
`train.cache`), so its canonical crop is `side / margin` pixels: the default 320 px at margin
1.25 holds the paper model's 256-px crop at its own resolution with a 32-px border for
augmentation. (A 384-px crop at the cache's margin of 1.5 takes ~45 MB for the human faces
alone at quality 85, more than the 64 MiB that travels leaves beside the code.)

Every human-labelled 300-W training face comes first; teacher-labelled faces fill what is left
of the byte budget, spread over their sources by `TrainConfig.source_weights` and, for the
videos, over the clips. 300-W's helen_testset, the test set, is never packed.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracker.core.datasets import image_folder, read_image, video_clip
from tracker.core.geometry import apply, similarity, warp
from train.cache import MARGIN, SOURCES, Cache, cut, video_faces
from train.config import TrainConfig

PACK_SIDE = 320
PACK_MARGIN = 1.25
QUALITY = 75  # human faces
TEACHER_QUALITY = 70
FORBIDDEN = "helen_testset"  # 300-W's test set: never trained on
#: Bytes a face costs beside its JPEG: points, offset, source and a group name of up to 48
#: characters (numpy's fixed-width unicode, 4 bytes a character).
PER_FACE = 68 * 2 * 4 + 8 + 2 + 4 * 48
SLACK = 4096  # the npz's zip headers


@dataclass
class Pack:
    jpeg: np.ndarray  # (n_bytes,) uint8
    offsets: np.ndarray  # (N + 1,) int64
    points: np.ndarray  # (N, K, 2) float32, pack-crop pixels
    source: np.ndarray  # (N,) int16
    group: np.ndarray  # (N,) str
    names: list[str]
    side: int
    margin: float
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def canonical_side(self) -> float:
        """The side of the canonical (network) crop inside a pack crop, in pack pixels."""
        return self.side / self.margin

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "pack.npz", jpeg=self.jpeg, offsets=self.offsets, points=self.points,
                 source=self.source, group=self.group, names=np.array(self.names))
        meta = dict(self.meta, side=self.side, margin=self.margin, faces=len(self),
                    per_source={n: int((self.source == i).sum()) for i, n in enumerate(self.names)})
        (folder / "pack.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path) -> "Pack":
        folder = Path(folder)
        if not (folder / "pack.npz").is_file():
            raise FileNotFoundError(f"{folder}: no pack.npz; build one with "
                                    f"`python scripts/gpu_train.py pack`")
        meta = json.loads((folder / "pack.json").read_text())
        d = np.load(folder / "pack.npz", allow_pickle=False)
        return cls(d["jpeg"], d["offsets"], d["points"], d["source"], d["group"], list(d["names"]),
                   int(meta["side"]), float(meta["margin"]), meta)

    def images(self, threads: int | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB: every crop decoded, on `threads` threads."""
        return decode_jpegs(self.jpeg, self.offsets, threads)


def encode_jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the bytes of a JPEG file, as a (n,) uint8 array."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.reshape(-1)


def decode_jpegs(jpeg: np.ndarray, offsets: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Concatenated JPEG files (`jpeg`, cut at `offsets` (N + 1,)) -> (N, H, W, 3) uint8 RGB."""
    import cv2

    def one(i: int) -> np.ndarray:
        bgr = cv2.imdecode(jpeg[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"crop {i}: not a readable JPEG")
        return bgr[..., ::-1]

    n = len(offsets) - 1
    if n == 0:
        raise ValueError("an empty pack")
    first = one(0)
    out = np.empty((n, *first.shape), np.uint8)
    out[0] = first
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as ex:
        for i, img in enumerate(ex.map(one, range(1, n)), 1):
            out[i] = img
    return out


# -- which faces ----------------------------------------------------------------------------------
#: A face to pack: (crop (S, S, 3) uint8, points (K, 2), source index, group), made on demand.
Face = tuple[np.ndarray, np.ndarray, int, str]


def teacher_shares(names: list[str], human: set[str]) -> dict[str, float]:
    """Each teacher source's share of the teacher faces, from `TrainConfig.source_weights`."""
    w = TrainConfig().source_weights
    shares = {n: w.get(n, 0.0) for n in names if n not in human and w.get(n, 0.0) > 0}
    total = sum(shares.values())
    return {n: v / total for n, v in shares.items()} if total else {}


def interleave(queues: dict[str, list], shares: dict[str, float]) -> Iterator:
    """Items of the per-source `queues` in the order that keeps each source's count nearest its
    share (stride scheduling): the next item comes from the non-empty queue with the lowest
    (taken + 1) / share."""
    taken = {n: 0 for n in queues}
    pos = {n: 0 for n in queues}
    while True:
        live = [n for n in queues if pos[n] < len(queues[n]) and shares.get(n, 0) > 0]
        if not live:
            return
        n = min(live, key=lambda s: ((taken[s] + 1) / shares[s], s))
        yield queues[n][pos[n]]
        pos[n] += 1
        taken[n] += 1


def _image_faces(root: Path, si: int, name: str, side: int, margin: float,
                 rng: np.random.Generator | None, limit: int | None) -> list[Callable[[], Face]]:
    """Lazy faces of an image folder, shuffled by `rng` (None: in file order)."""
    recs = list(image_folder(root))
    if rng is not None:
        recs = [recs[i] for i in rng.permutation(len(recs))]
    recs = recs[:limit]

    def make(r) -> Callable[[], Face]:
        def face() -> Face:
            c, p = cut(read_image(r.image), r.points, side, margin)
            return c, p, si, f"{name}/{r.group}"
        return face
    return [make(r) for r in recs]


def _video_faces(root: Path, si: int, name: str, side: int, margin: float, rng: np.random.Generator,
                 per_clip: int, limit: int | None) -> list[Callable[[], Face | None]]:
    """Lazy faces of a folder of clips, `per_clip` evenly spaced frames of each, ordered frame
    j of every clip before frame j + 1 of any; a clip is decoded once, when first asked."""
    clips = sorted(p for p in root.iterdir() if (p / "annot").is_dir())
    clips = [clips[i] for i in rng.permutation(len(clips))][:limit]
    done: dict[Path, list] = {}

    def make(clip: Path, j: int) -> Callable[[], Face | None]:
        def face() -> Face | None:
            if clip not in done:
                n = len(video_clip(clip)[1])
                faces = video_faces(clip, max(1, n // per_clip), side, margin)[:per_clip]
                done[clip] = [faces[i] for i in rng.permutation(len(faces))]
            if j >= len(done[clip]):  # a short clip: fewer frames than asked
                return None
            c, p = done[clip][j]
            return c, p, si, f"{name}/{clip.name}"
        return face
    return [make(c, j) for j in range(per_clip) for c in clips]


# -- building -------------------------------------------------------------------------------------
def build_from_data(data_root: Path, out: Path, budget: int, side: int = PACK_SIDE,
                    margin: float = PACK_MARGIN, quality: int = QUALITY,
                    teacher_quality: int = TEACHER_QUALITY, sources: list = SOURCES,
                    per_clip: int = 8, seed: int = 0, limit: int | None = None) -> Pack:
    """Pack the faces of `sources` (as `train.cache.SOURCES`) under `data_root` into the folder
    `out`, in at most `budget` bytes: every human face, then teacher faces while they fit."""
    data_root = Path(data_root)
    rng = np.random.default_rng(seed)
    names = [s[0] for s in sources]
    human = {s[0] for s in sources if s[3]}
    humans, queues = [], {}
    for si, (name, kind, rel, is_human) in enumerate(sources):
        if FORBIDDEN in rel:
            raise ValueError(f"{rel}: the 300-W test set is never packed")
        root = data_root / rel
        if not root.is_dir():
            warnings.warn(f"{root}: not found, source {name} left out", stacklevel=2)
            continue
        if kind == "images":
            faces = _image_faces(root, si, name, side, margin, None if is_human else rng, limit)
        else:
            faces = _video_faces(root, si, name, side, margin, rng, per_clip, limit)
        if is_human:
            humans += faces
        else:
            queues[name] = faces
    order = interleave(queues, teacher_shares(names, human))
    return assemble(humans, order, names, out, budget, side, margin, quality, teacher_quality,
                    {"origin": f"data:{data_root}"})


def build_from_cache(cache: Cache, out: Path, budget: int, human: tuple[str, ...],
                     side: int = PACK_SIDE, margin: float = PACK_MARGIN, quality: int = QUALITY,
                     teacher_quality: int = TEACHER_QUALITY, seed: int = 0,
                     origin: str = "cache") -> Pack:
    """Pack the faces of a crop cache (its `human` sources first, all of them), re-cut from the
    cache's crops (side C, margin 1.5) to `side` at `margin`; warns when that enlarges them."""
    scale = (side / margin) / (cache.side / MARGIN)
    if scale > 1.01:
        warnings.warn(f"the cache's {cache.side}-px crops are enlarged {scale:.2f} x to make "
                      f"{side}-px pack crops: build the pack from the data, or from a cache of "
                      f"side >= {int(np.ceil(side / margin * MARGIN))}", stacklevel=2)
    c = (cache.side - 1) / 2
    m = similarity(np.array([c, c]), np.array([(side - 1) / 2] * 2), scale)
    rng = np.random.default_rng(seed)

    def make(i: int) -> Callable[[], Face]:
        def face() -> Face:
            return (warp(cache.images[i], m, (side, side)), apply(m, cache.points[i]).astype(np.float32),
                    int(cache.source[i]), str(cache.group[i]))
        return face

    names = list(cache.names)
    is_human = np.isin(np.asarray(names)[cache.source], list(human))
    humans = [make(i) for i in np.flatnonzero(is_human)]
    queues: dict[str, list] = {}
    for si, name in enumerate(names):
        idx = np.flatnonzero((cache.source == si) & ~is_human)
        if len(idx):
            queues[name] = [make(i) for i in idx[rng.permutation(len(idx))]]
    order = interleave(queues, teacher_shares(names, set(human)))
    return assemble(humans, order, names, out, budget, side, margin, quality, teacher_quality,
                    {"origin": origin})


def assemble(humans: list[Callable[[], Face | None]], teachers: Iterator[Callable[[], Face | None]],
             names: list[str], out: Path, budget: int, side: int, margin: float, quality: int,
             teacher_quality: int, meta: dict) -> Pack:
    """Encode every human face, then teacher faces until the next would pass `budget` bytes
    (the whole pack.npz); write the pack to `out`. ValueError when the human faces alone do
    not fit. A lazy face that gives None is skipped."""
    from tqdm import tqdm

    blobs, pts, src, grp = [], [], [], []
    used = SLACK

    def add(face: Face, q: int) -> int:
        crop, p, si, g = face
        if crop.shape != (side, side, 3):
            raise ValueError(f"crop of shape {crop.shape}, expected {(side, side, 3)}")
        b = encode_jpeg(crop, q)
        blobs.append(b), pts.append(np.asarray(p, np.float32)), src.append(si), grp.append(g)
        return len(b) + PER_FACE

    for f in tqdm(humans, desc="human faces", unit="face", mininterval=5):
        face = f()
        if face is not None:
            used += add(face, quality)
    if used > budget:
        raise ValueError(f"the {len(blobs)} human faces alone take {used / 2**20:.1f} MiB at "
                         f"{side} px, quality {quality}: over the budget of {budget / 2**20:.1f} "
                         f"MiB; lower --quality or --side, or raise --max-mb")
    n_human = len(blobs)
    bar = tqdm(desc="teacher faces", unit="face", mininterval=5)
    for f in teachers:
        face = f()
        if face is None:
            continue
        cost = add(face, teacher_quality)
        if used + cost > budget:  # this one does not fit: take it back and stop
            blobs.pop(), pts.pop(), src.pop(), grp.pop()
            break
        used += cost
        bar.update(1)
    bar.close()
    if not blobs:
        raise ValueError("no faces to pack")
    meta = dict(meta, quality=quality, teacher_quality=teacher_quality, budget=budget)
    while True:  # the estimate of what a face costs beside its JPEG can be short: check
        n = len(blobs)
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        pack = Pack(np.concatenate(blobs), offsets, np.stack(pts), np.asarray(src, np.int16),
                    np.asarray(grp), names, side, margin,
                    dict(meta, human_faces=n_human, teacher_faces=n - n_human))
        pack.save(out)
        size = (Path(out) / "pack.npz").stat().st_size
        if size <= budget:
            break
        if n == n_human:
            raise ValueError(f"{out}: the human faces came to {size} bytes, over the budget of "
                             f"{budget}")
        drop = min(n - n_human, 1 + int((size - budget) / (size / n)))
        del blobs[-drop:], pts[-drop:], src[-drop:], grp[-drop:]
    pack.meta["bytes"] = size
    pack.save(out)  # again, with its size in pack.json
    return pack
