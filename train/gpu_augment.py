"""`train.augment` in batches of torch tensors, on whatever device holds them (the GPU run of
`train.sprint`): the same random similarity (rotation, scale, translation, mirror with the
landmark flip permutation), applied with `affine_grid` / `grid_sample`, and the same colour
changes (per-channel scale, channel reordering, grey, blur).

Transforms are (B, 2, 3) float32 pixel transforms with the conventions of
`tracker.core.geometry` (pixel centres on integers); `similarity` here and `train.affine`'s
helpers are its batched twins. Images are (B, 3, H, W) float in [0, 255] until `normalise`.
Constant tensors are made once per device (`_on`): copying one to a GPU waits for the GPU, and a
step that waits cannot queue the next one's work.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from tracker.core.landmarks import IBUG68, LandmarkScheme
from tracker.core.model_config import ModelConfig
from train.affine import apply
from train.augment import PERMUTATIONS, AugmentConfig
from train.loss import pixel_theta


@functools.lru_cache(maxsize=64)
def _on(values: tuple, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A constant tensor of `values` (nested tuples) on `device`, made once."""
    return torch.tensor(values, dtype=dtype).to(device)


# -- batched geometry ---------------------------------------------------------------------------
def similarity(center_src: torch.Tensor, center_dst: torch.Tensor, scale: torch.Tensor,
               angle_deg: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) transforms: `tracker.core.geometry.similarity` of each row of (B, 2) centres,
    (B,) scales, angles (degrees, counter-clockwise on screen) and mirror flags."""
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a) * scale, torch.sin(a) * scale
    sx = torch.where(flip, -1.0, 1.0).to(c.dtype)
    rot = torch.stack([torch.stack([c * sx, s], -1), torch.stack([-s * sx, c], -1)], -2)  # (B, 2, 2)
    t = center_dst - (rot @ center_src[..., None])[..., 0]
    return torch.cat([rot, t[..., None]], -1)


def canonical_transform(input_side: int, crop_side: int, margin: float,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """(2, 3): the un-augmented transform from a crop of `crop_side` px covering `margin` x the
    canonical crop to input pixels (`train.augment.canonical_transform` at any margin)."""
    c = (crop_side - 1) / 2
    s = input_side / (crop_side / margin)
    o = (input_side - 1) / 2
    return _on(((s, 0.0, o - s * c), (0.0, s, o - s * c)), torch.device(device))


def check_supported(cfg: AugmentConfig) -> None:
    """The device augmentation lacks the CPU one's `upright` turn and `occlusion`: refuse them
    rather than train without them."""
    for name, on in (("upright", cfg.upright), ("occlusion", cfg.occlusion > 0)):
        if on:
            raise ValueError(f"augment.{name} is not implemented on the device (train.gpu_augment); "
                             f"train such models with python -m train")


def sample_transforms(gen: torch.Generator, b: int, cfg: AugmentConfig, input_side: int,
                      crop_side: int, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, 3) random transforms from crop pixels to input pixels and (B,) mirror flags,
    drawn as `train.augment.sample_transform` draws one."""
    dev = gen.device

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, *shape, generator=gen, device=dev)

    c = torch.full((b, 2), (crop_side - 1) / 2, device=dev)
    s = input_side / (crop_side / margin) * uniform(*cfg.scale)
    angle = uniform(-cfg.rotation_deg, cfg.rotation_deg)
    flip = torch.rand(b, generator=gen, device=dev) < cfg.flip
    dst = (input_side - 1) / 2 + uniform(-cfg.translate, cfg.translate, 2) * input_side
    return similarity(c, dst, s, angle, flip), flip


# -- images -------------------------------------------------------------------------------------
def warp_images(images: torch.Tensor, m: torch.Tensor, out_side: int) -> torch.Tensor:
    """(B, 3, S, S) images (uint8 or float) through (B, 2, 3) pixel transforms into
    (B, 3, out, out) float32, bilinear, zeros outside (as `tracker.core.geometry.warp`)."""
    b = images.shape[0]
    theta = pixel_theta(m, images.shape[-2:], (out_side, out_side))
    grid = F.affine_grid(theta, [b, 1, out_side, out_side], align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _gaussian_kernel(k: int, device: torch.device) -> torch.Tensor:
    """OpenCV's GaussianBlur kernel for size k and sigma 0: (3, 1, k, k) depthwise weights."""
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    x = torch.arange(k, device=device, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, k, k).contiguous()


def photometric(gen: torch.Generator, x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """(B, 3, H, W) float [0, 255] images with `train.augment.photometric`'s colour changes and
    `augment`'s blur, each drawn per image; returns them clipped to [0, 255]."""
    b, dev = x.shape[0], x.device
    lo, hi = cfg.colour
    x = x * (lo + (hi - lo) * torch.rand(b, 3, 1, 1, generator=gen, device=dev))
    if cfg.channel_shuffle > 0:
        perms = _on(tuple(map(tuple, PERMUTATIONS)), dev, torch.int64)  # (5, 3)
        pick = perms[torch.randint(len(PERMUTATIONS), (b,), generator=gen, device=dev)]  # (B, 3)
        shuffled = torch.gather(x, 1, pick[:, :, None, None].expand_as(x))
        x = torch.where((torch.rand(b, generator=gen, device=dev) < cfg.channel_shuffle)[:, None, None, None],
                        shuffled, x)
    grey = torch.rand(b, generator=gen, device=dev) < cfg.grey
    x = torch.where(grey[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
    x = x.clamp(0, 255)
    if cfg.blur > 0:
        blur = torch.rand(b, generator=gen, device=dev) < cfg.blur
        five = torch.rand(b, generator=gen, device=dev) < 0.5
        k3 = F.conv2d(F.pad(x, (1,) * 4, mode="reflect"), _gaussian_kernel(3, dev), groups=3)
        k5 = F.conv2d(F.pad(x, (2,) * 4, mode="reflect"), _gaussian_kernel(5, dev), groups=3)
        x = torch.where(blur[:, None, None, None], torch.where(five[:, None, None, None], k5, k3), x)
    return x


def normalise(x: torch.Tensor, mc: ModelConfig) -> torch.Tensor:
    """(B, 3, H, W) float [0, 255] -> network input, (x / 255 - mean) / std (as
    `ModelConfig.normalise`)."""
    mean = _on(mc.mean, x.device).view(1, 3, 1, 1)
    std = _on(mc.std, x.device).view(1, 3, 1, 1)
    return (x * (1 / 255) - mean) / std


def flip_points(pts: torch.Tensor, flip: torch.Tensor, scheme: LandmarkScheme = IBUG68) -> torch.Tensor:
    """(B, K, 2) points of mirrored samples (flip (B,)) relabelled with the flip permutation, so
    that point i stays 'the left eye corner' etc."""
    return torch.where(flip[:, None, None], pts[:, _on(scheme.flip, pts.device, torch.int64)], pts)


def unmirror(hm: torch.Tensor, flip: torch.Tensor, scheme: LandmarkScheme = IBUG68) -> torch.Tensor:
    """(B, K, h, w) heatmaps of mirrored samples (flip (B,)) relabelled back (the mirror itself
    is undone by the warp to the canonical crop), as `train.targets.unmirror`."""
    return torch.where(flip[:, None, None, None], hm[:, _on(scheme.flip, hm.device, torch.int64)], hm)


def augment(gen: torch.Generator, images: torch.Tensor, points: torch.Tensor, cfg: AugmentConfig,
            input_side: int, margin: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of (B, 3, S, S) uint8 crops (covering `margin` x the canonical crop) and their
    (B, K, 2) points -> ((B, 3, s, s) float [0, 255] images, s = input_side, (B, K, 2)
    input-space points relabelled under a mirror, (B, 2, 3) transforms crop -> input, (B,)
    mirror flags)."""
    m, flip = sample_transforms(gen, images.shape[0], cfg, input_side, images.shape[-1], margin)
    x = photometric(gen, warp_images(images, m, input_side), cfg)
    return x, flip_points(apply(m, points), flip), m, flip
