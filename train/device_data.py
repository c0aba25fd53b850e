"""A pack (`train.pack`) in device memory: its crops decoded once into a uint8 tensor, the
identity split of `train.sampling.split`, the sampling weights of `train.sampling` and the
label weights of `train.targets`; batches drawn on the device; and validation on it with the
metrics of `train.validation` (`evaluate`), for the timed GPU run of `train.sprint`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tracker.core import codec_torch
from tracker.core.codec import HeatmapCodec
from tracker.core.metrics import nme
from tracker.core.model import FAN
from train.affine import apply
from train.config import TrainConfig
from train.gpu_augment import canonical_transform, normalise, warp_images
from train.pack import Pack
from train.sampling import sampling_weights, split
from train.targets import label_weights
from train.validation import summarise


@dataclass
class DeviceData:
    """A pack decoded into device memory, with its split and sampling weights."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    points: torch.Tensor  # (N, K, 2) float32, pack-crop pixels
    weight: torch.Tensor  # (N,) float32, each face's label weight
    train_idx: torch.Tensor  # (n_train,) int64
    p: torch.Tensor  # (n_train,) float32, probability of drawing each training face
    val_idx: torch.Tensor  # (n_val,) int64
    margin: float

    @classmethod
    def from_pack(cls, pack: Pack, cfg: TrainConfig, device: torch.device, threads: int = 0) -> "DeviceData":
        imgs = pack.images(threads or None)  # (N, S, S, 3)
        train_idx, val_idx = split(pack, cfg)  # a pack has the cache's names, source and group
        p = sampling_weights(pack, train_idx, cfg)
        w = label_weights(pack, cfg)[pack.source]
        return cls(torch.from_numpy(imgs).to(device).permute(0, 3, 1, 2).contiguous(),
                   torch.from_numpy(pack.points).to(device),
                   torch.as_tensor(w, dtype=torch.float32, device=device),
                   torch.as_tensor(train_idx, device=device),
                   torch.as_tensor(p, dtype=torch.float32, device=device),
                   torch.as_tensor(val_idx, device=device), pack.margin)

    @property
    def side(self) -> int:
        return self.images.shape[-1]

    def draw(self, gen: torch.Generator, b: int) -> torch.Tensor:
        """(b,) training faces drawn with replacement by their weights."""
        return self.train_idx[torch.multinomial(self.p, b, replacement=True, generator=gen)]

    def canonical(self, idx: torch.Tensor, input_side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical (un-augmented) crops of faces `idx` at `input_side`: ((B, 3, s, s) float
        [0, 255], (B, K, 2) input-space points). Warped at the pack's canonical size and
        shrunk (area) when the input is smaller, as the student's training images are."""
        work = max(input_side, round(self.side / self.margin))
        canon = canonical_transform(work, self.side, self.margin, self.images.device)
        x = warp_images(self.images[idx], canon.expand(len(idx), 2, 3), work)
        pts = apply(canon, self.points[idx])
        if work != input_side:
            x = F.interpolate(x, size=(input_side, input_side), mode="area")
            pts = (pts + 0.5) * (input_side / work) - 0.5
        return x, pts


@torch.no_grad()
def evaluate(model: FAN, codec: HeatmapCodec, data: DeviceData, batch: int = 128) -> dict:
    """`train.validation.validate`'s metrics of `model` on the validation faces, in fp32."""
    was = model.training
    model.eval()
    side = model.config.input_hw[0]
    to_input = torch.as_tensor(codec.to_input, dtype=torch.float32, device=data.images.device)
    errs = []
    for s in range(0, len(data.val_idx), batch):
        idx = data.val_idx[s:s + batch]
        x, gt = data.canonical(idx, side)
        hm = model(normalise(x, model.config).contiguous(memory_format=torch.channels_last)).float()
        xy, _ = codec_torch.decode(hm, codec.decoder, codec.window, codec.tau)
        errs.append(nme(apply(to_input, xy).cpu().numpy(), gt.cpu().numpy()))
    model.train(was)
    return summarise(np.concatenate(errs) if errs else np.zeros(0))
