"""Random geometric and photometric augmentation of cached face crops (paper section 5.1).

A sample is drawn as a transform from cache-crop pixels (see `train.cache`) to network-input
pixels: rotation, scale, translation and an optional mirror about the crop centre; colour is
scaled per channel. Caches of any side work (see `train.cache`): the transform maps the cache
crop's canonical square (`cache_side / MARGIN` pixels) onto the input, whatever either's size.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tracker.core.geometry import apply, eye_angle, similarity, warp
from tracker.core.landmarks import IBUG68, LandmarkScheme
from train.cache import CACHE_SIDE, MARGIN, Cache


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 30.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.08  # fraction of the crop side, uniform in +-translate per axis
    flip: float = 0.5  # probability
    colour: tuple[float, float] = (0.6, 1.4)
    grey: float = 0.05  # probability of a grey-scale sample
    # probability of a random reordering of the colour channels: backgrounds and lighting of
    # hues the data lacks (a blue screen broke rt-m's jaw line on clm_franck)
    channel_shuffle: float = 0.0
    blur: float = 0.1  # probability of a Gaussian blur (motion, focus, small faces)
    # turn each face to its eye line before the random rotation, as the tracker turns its
    # crops (rotation_deg is then the residual roll the model must bear)
    upright: bool = False
    # probability of one random rectangle painted over the input in one random colour (hands,
    # microphones, hair, glasses; the points under it keep their labels): a regulariser against
    # fitting the human-labelled faces by heart (rt-xl fits its own to 2.5 %, validation 3.5 %)
    occlusion: float = 0.0
    occlusion_side: tuple[float, float] = (0.15, 0.4)  # each side, as a fraction of the input's


def sample_transform(rng: np.random.Generator, cfg: AugmentConfig, input_side: int,
                     cache_side: int = CACHE_SIDE, roll: float = 0.0) -> tuple[np.ndarray, bool]:
    """A random (2, 3) transform from the pixels of a `cache_side` crop to input pixels, and
    whether it mirrors. `roll`: the face's eye-line angle in the crop (degrees, `eye_roll`),
    turned away first when `cfg.upright`."""
    c = (cache_side - 1) / 2
    base = input_side / (cache_side / MARGIN)
    s = base * rng.uniform(*cfg.scale)
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    flip = bool(rng.random() < cfg.flip)
    if cfg.upright:  # a mirror negates the eye line's angle
        angle += -roll if flip else roll
    shift = rng.uniform(-cfg.translate, cfg.translate, 2) * input_side
    dst = np.array([(input_side - 1) / 2, (input_side - 1) / 2]) + shift
    return similarity(np.array([c, c]), dst, s, angle, flip), flip


def canonical_transform(input_side: int, cache_side: int = CACHE_SIDE, roll: float = 0.0) -> np.ndarray:
    """The un-augmented transform from the pixels of a `cache_side` crop to input pixels,
    turned by `roll` degrees (a face's `eye_roll`: upright)."""
    c = (cache_side - 1) / 2
    return similarity(np.array([c, c]), np.array([(input_side - 1) / 2] * 2),
                      input_side / (cache_side / MARGIN), roll)


def eye_roll(xy: np.ndarray, scheme: LandmarkScheme = IBUG68) -> float:
    """The angle in degrees of the line between the outer eye corners of (K, 2) points (as the
    tracker's regions measure it): turning by it levels the eyes."""
    a, b = scheme.outer_eye_corners
    return eye_angle(xy[a], xy[b])


def augment(rng: np.random.Generator, image: np.ndarray, xy: np.ndarray, cfg: AugmentConfig,
            input_side: int, scheme: LandmarkScheme = IBUG68) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented sample of a (C, C, 3) cache crop (any side C): ((S, S, 3) uint8 image,
    S = input_side, (K, 2) input-space points, (2, 3) transform from cache crop to input). Under a mirror the points are relabelled with the scheme's flip
    permutation, so point i stays 'the left eye corner' etc."""
    import cv2

    if image.shape[0] != image.shape[1]:
        raise ValueError(f"augment: cache crops are square, got {image.shape}")
    roll = eye_roll(xy, scheme) if cfg.upright else 0.0
    m, flip = sample_transform(rng, cfg, input_side, image.shape[0], roll)
    out = warp(image, m, (input_side, input_side))
    pts = apply(m, xy)
    if flip:
        pts = pts[list(scheme.flip)]
    out = photometric(rng, out, cfg)
    if rng.random() < cfg.blur:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if cfg.occlusion > 0 and rng.random() < cfg.occlusion:
        out = occlude(rng, out, cfg.occlusion_side)
    return out, pts, m


def occlude(rng: np.random.Generator, image: np.ndarray, side: tuple[float, float]) -> np.ndarray:
    """A copy of an (S, S, 3) uint8 image with one rectangle of one random colour painted over
    it: width and height each uniform in `side` x S, centre anywhere in the image (the
    rectangle is clipped at the borders)."""
    s = image.shape[0]
    w, h = (rng.uniform(*side, 2) * s).round().astype(int)
    cx, cy = rng.uniform(0, s, 2)
    x0, y0 = int(max(cx - w / 2, 0)), int(max(cy - h / 2, 0))
    out = image.copy()
    out[y0:int(min(cy + h / 2, s)), x0:int(min(cx + w / 2, s))] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


#: The five reorderings of (R, G, B) other than the identity.
PERMUTATIONS = [list(p) for p in itertools.permutations(range(3)) if p != (0, 1, 2)]


def photometric(rng: np.random.Generator, image: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    img = image.astype(np.float32) * rng.uniform(*cfg.colour, 3).astype(np.float32)
    if rng.random() < cfg.channel_shuffle:
        img = img[..., PERMUTATIONS[rng.integers(len(PERMUTATIONS))]]
    if rng.random() < cfg.grey:
        img[:] = img.mean(-1, keepdims=True)
    return np.clip(img, 0, 255).astype(np.uint8)


def augment_batch(rng: np.random.Generator, cache: Cache, idx: np.ndarray, cfg: AugmentConfig,
                  input_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`augment` for each face `idx` of the cache, in order: ((B, S, S, 3) uint8 images,
    (B, K, 2) input-space points, (B, 2, 3) transforms from cache crop to input)."""
    imgs, pts, ms = [], [], []
    for i in idx:
        im, p, m = augment(rng, cache.images[i], cache.points[i], cfg, input_side)
        imgs.append(im), pts.append(p), ms.append(m)
    return np.stack(imgs), np.stack(pts), np.stack(ms)
