"""Validation: the model's landmarks on canonical (un-augmented) crops of held-out faces,
scored by NME (inter-ocular), its median, and AUC and failure rate at two cut-offs. `upright`
turns each crop to the face's eye line first, as the tracker does."""
from __future__ import annotations

import numpy as np
import torch

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import apply, warp
from tracker.core.metrics import auc_fr, nme
from tracker.core.model import FAN
from train.augment import canonical_transform, eye_roll
from train.cache import Cache
from train.targets import to_tensor


@torch.no_grad()
def validate(model: FAN, codec: HeatmapCodec, cache: Cache, idx: np.ndarray, batch: int = 64,
             upright: bool = False) -> dict:
    """Metrics of `model` (put in eval mode) on the faces `idx` of the cache: val_nme,
    val_median, val_auc@0.08, val_fr@0.08, val_auc@0.10, val_fr@0.10 (NaN NME when `idx` is
    empty)."""
    mc = model.config
    device = next(model.parameters()).device
    model.eval()
    errs = []
    for s in range(0, len(idx), batch):
        b = idx[s:s + batch]
        imgs, canon = crops(cache, b, mc.input_hw, upright)
        hm = model(to_tensor(imgs, mc).to(device)).cpu().numpy()
        xy, _ = codec.decode(hm)
        errs.append(nme(xy, apply(canon, cache.points[b])))
    return summarise(np.concatenate(errs) if errs else np.zeros(0))


def crops(cache: Cache, idx: np.ndarray, input_hw: tuple[int, int],
          upright: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The validation crops of faces `idx`: ((B, H, W, 3) uint8, (B, 2, 3) transforms from
    cache crop to input), turned to each face's eye line when `upright`."""
    canon = np.stack([canonical_transform(input_hw[0], cache.side,
                                          eye_roll(cache.points[i]) if upright else 0.0) for i in idx])
    return np.stack([warp(cache.images[i], m, input_hw) for i, m in zip(idx, canon)]), canon


def summarise(errors: np.ndarray) -> dict:
    """The validation metrics of (N,) per-face NMEs: val_nme, val_median, val_auc@0.08,
    val_fr@0.08, val_auc@0.10, val_fr@0.10 (NaN NME when there are none)."""
    e = np.asarray(errors, np.float64)
    out = {"val_nme": float(e.mean()) if len(e) else float("nan"),
           "val_median": float(np.median(e)) if len(e) else float("nan")}
    for cut in (0.08, 0.10):
        a, f = auc_fr(e, cut)
        out[f"val_auc@{cut:.2f}"], out[f"val_fr@{cut:.2f}"] = a, f
    return out
