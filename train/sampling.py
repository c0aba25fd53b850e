"""Which faces train and validate, and how often each is drawn.

Validation is a fixed share of the human identity groups (source image or person), chosen by
a hash of the group name so that it never moves between runs. Training faces are drawn with
replacement, by weight: each source has its share of the batches (`TrainConfig.source_weights`)
and, within the video source, each clip has an equal share.

Under data parallelism every rank draws the same global batch (the same stream, seeded alike)
and trains on its slice (`rank_slice`), augmented from a stream of its own (`augment_rng`).
"""
from __future__ import annotations

import hashlib

import numpy as np

from train.cache import Cache
from train.config import TrainConfig


def split(cache: Cache, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation faces; validation is a fixed share of the human
    identity groups (source image or person), chosen by a hash so it never moves."""
    human = np.isin(np.asarray(cache.names)[cache.source], cfg.human_sources)
    val = human & np.array([held_out(g, cfg.val_fraction) for g in cache.group], bool)
    return np.flatnonzero(~val), np.flatnonzero(val)


def human_split(cache: Cache, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(the human-labelled training faces, the validation faces) of `split`."""
    train, val = split(cache, cfg)
    return train[np.isin(np.asarray(cache.names)[cache.source[train]], cfg.human_sources)], val


def held_out(group: str, fraction: float) -> bool:
    """Whether identity group `group` (the cache's "source/group" name) is in the validation
    share `fraction`: a hash of the name, so it never moves."""
    return int(hashlib.md5(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def sampling_weights(cache: Cache, idx: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Probability of drawing each training face: sources by `cfg.source_weights`, and within
    the video source each clip equally."""
    names = np.asarray(cache.names)[cache.source[idx]]
    p = np.zeros(len(idx))
    for src, share in cfg.source_weights.items():
        sel = names == src
        if not sel.any():
            continue
        if src == "videos":
            groups = cache.group[idx][sel]
            _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
            p[sel] = share / len(counts) / counts[inv]
        else:
            p[sel] = share / sel.sum()
    return p / p.sum()


def draw_batch(rng: np.random.Generator, idx: np.ndarray, p: np.ndarray, batch: int) -> np.ndarray:
    """(batch,) face indices drawn from `idx` with replacement, face i with probability p[i]."""
    return rng.choice(idx, batch, p=p)


def rank_slice(idx: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s share of a global batch `idx` (B,) split over `world` ranks: the
    contiguous (B / world,) slice, in rank order; B must divide by `world`."""
    if len(idx) % world:
        raise ValueError(f"a batch of {len(idx)} does not split over {world} ranks")
    b = len(idx) // world
    return idx[rank * b:(rank + 1) * b]


def augment_rng(seed: int, rank: int, world: int, epoch: int = 0, step: int = 0) -> np.random.Generator:
    """Rank `rank`'s augmentation stream in a run of `world` ranks: independent of the other
    ranks' and of the batch stream; `epoch` and `step` seed a fresh one mid-run."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, step]).spawn(world)[rank])
