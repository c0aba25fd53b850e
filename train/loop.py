"""The training loop: sampling, augmentation, loss, validation, checkpoints and resume.

A run lives in one folder: config.json, metrics.csv (one row per epoch), last.pt (model,
optimiser, schedule, epoch, step and random state, written every `checkpoint_every` steps and
at each epoch's end) and best.pt (lowest validation NME). Starting a run whose folder holds a
last.pt resumes it where it stopped.
"""
from __future__ import annotations

import csv
import hashlib
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tracker.core import codec_torch
from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import apply, compose, invert, warp
from tracker.core.landmarks import IBUG68
from tracker.core.metrics import auc_fr, nme
from tracker.core.model import FAN, PRESETS, ModelConfig
from train.augment import AugmentConfig, augment, canonical_transform
from train.cache import Cache
from train.config import TrainConfig
from train.loss import heatmap_l2, siamese_l2


def to_tensor(images: np.ndarray, mc: ModelConfig) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32 normalised network input."""
    return torch.from_numpy(mc.normalise(images))


def split(cache: Cache, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation faces; validation is a fixed share of the human
    identity groups (source image or person), chosen by a hash so it never moves."""
    human = np.isin(np.asarray(cache.names)[cache.source], cfg.human_sources)
    h = np.array([int(hashlib.md5(g.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for g in cache.group])
    val = human & (h < cfg.val_fraction)
    return np.flatnonzero(~val), np.flatnonzero(val)


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


class Trainer:
    def __init__(self, cfg: TrainConfig, cache: Cache | None = None,
                 model_config: ModelConfig | None = None):
        """`model_config` overrides the preset's architecture (tests use tiny models)."""
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.mc = model_config or PRESETS[cfg.preset]
        self.codec = HeatmapCodec(self.mc.input_hw, self.mc.heatmap_hw, cfg.sigma, cfg.encoding)
        self.cache = cache if cache is not None else Cache.load(Path(cfg.cache))
        self.train_idx, self.val_idx = split(self.cache, cfg)
        self.p = sampling_weights(self.cache, self.train_idx, cfg)
        human = set(cfg.human_sources)
        self.loss_w = np.array([1.0 if n in human else cfg.teacher_loss_weight
                                for n in self.cache.names])
        torch.manual_seed(cfg.seed)
        self.model = FAN(self.mc)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, list(cfg.milestones), cfg.gamma)
        self.rng = np.random.default_rng(cfg.seed)
        self.aug = AugmentConfig(**cfg.augment)
        self.last_losses: list[float] = []
        self.epoch, self.step_in_epoch, self.best = 0, 0, float("inf")
        if (self.out / "last.pt").exists():
            self._load(self.out / "last.pt")
        elif cfg.init:
            self._init_from(Path(cfg.init))
        cfg.save(self.out / "config.json")

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "best": self.best,
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "model_config": self.mc.to_dict(), "codec": self.codec.to_dict(),
                "train_config": asdict(self.cfg)}

    def _save(self, name: str, weights_only: bool = False) -> None:
        """last.pt: everything a resume needs; best.pt (`weights_only`): the model and what
        describes it, a third of the size. Written atomically: an interrupt never leaves half
        a file."""
        state = self._state()
        if weights_only:
            state = {k: state[k] for k in ("model", "model_config", "codec", "epoch", "best",
                                           "train_config")}
        tmp = self.out / (name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / name)

    def _load(self, path: Path) -> None:
        s = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self.sched.load_state_dict(s["sched"])
        # the config is authoritative on resume: a schedule shortened after a stop takes effect
        self.sched.milestones = Counter(self.cfg.milestones)
        self.sched.gamma = self.cfg.gamma
        self.epoch, self.step_in_epoch, self.best = s["epoch"], s["step_in_epoch"], s["best"]
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])

    def _init_from(self, path: Path) -> None:
        """Start from another model's weights, with this run's fresh optimiser and schedule.
        `path` is a training checkpoint or a shipped `.pt`; every tensor whose name and shape
        match is taken, so a 2-stack model can start from a 1-stack one (its first stack)."""
        if not path.is_file():
            raise FileNotFoundError(f"init checkpoint {path} not found")
        s = torch.load(path, map_location="cpu", weights_only=True)
        state = s["model"] if "model" in s else s["state_dict"]
        own = self.model.state_dict()
        taken = {k: v.float() for k, v in state.items() if k in own}
        clash = [k for k, v in taken.items() if v.shape != own[k].shape]
        if clash or not taken:
            raise ValueError(f"{path}: its tensors ({len(clash)} of other shapes, e.g. {clash[:2]}) "
                             f"do not fit this run's model {self.mc.to_dict()}")
        own.update(taken)
        self.model.load_state_dict(own)
        self.init_report = f"init from {path}: {len(taken)} of {len(own)} tensors"

    # -- one step ------------------------------------------------------------------------------
    def _batch(self, idx: np.ndarray):
        side = self.mc.input_hw[0]
        imgs, pts, ms = [], [], []
        for i in idx:
            im, p, m = augment(self.rng, self.cache.images[i], self.cache.points[i], self.aug, side)
            imgs.append(im), pts.append(p), ms.append(m)
        return np.stack(imgs), np.stack(pts), np.stack(ms)

    def _targets(self, pts_input: np.ndarray) -> torch.Tensor:
        xy_hm = apply(self.codec.to_heatmap, pts_input)
        return codec_torch.encode(torch.as_tensor(xy_hm, dtype=torch.float32), self.codec.heatmap_hw,
                                  self.codec.sigma, self.codec.encoding)

    def train_step(self, idx: np.ndarray) -> float:
        w = torch.as_tensor(self.loss_w[self.cache.source[idx]], dtype=torch.float32)
        self.model.train()
        if not self.cfg.siamese:
            imgs, pts, _ = self._batch(idx)
            outs = self.model.forward_all(to_tensor(imgs, self.mc))
            target = self._targets(pts)
            loss = sum(heatmap_l2(o, target, w) for o in outs)
        else:
            loss = self._siamese_loss(idx, w)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def _siamese_loss(self, idx: np.ndarray, w: torch.Tensor) -> torch.Tensor:
        """Two augmentations of each face; each branch's heatmaps are warped back to the
        un-augmented (canonical) crop, summed and compared with the canonical target."""
        side = self.mc.input_hw[0]
        a_img, _, a_m = self._batch(idx)
        b_img, _, b_m = self._batch(idx)
        outs = self.model.forward_all(to_tensor(np.concatenate([a_img, b_img]), self.mc))
        canon = canonical_transform(side)
        ref_pts = apply(canon, self.cache.points[idx])
        target = self._targets(ref_pts)
        to_hm = self.codec.to_heatmap
        flip = list(IBUG68.flip)
        n = len(idx)
        loss = 0
        for o in outs:
            branches = []
            for hm, m in ((o[:n], a_m), (o[n:], b_m)):
                # branch heatmap pixels -> canonical heatmap pixels
                hm_to_ref = compose(to_hm, compose(compose(canon, invert(m)), invert(to_hm)))
                mirrored = np.linalg.det(m[:, :, :2]) < 0
                hm = torch.where(torch.as_tensor(mirrored)[:, None, None, None], hm[:, flip], hm)
                branches.append((hm, hm_to_ref))
            (ha, ma), (hb, mb) = branches
            loss = loss + siamese_l2(ha, hb, ma, mb, target, w)
        return loss

    # -- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, idx: np.ndarray | None = None) -> dict:
        """NME (inter-ocular) on canonical crops of the validation faces (no augmentation)."""
        idx = self.val_idx if idx is None else idx
        self.model.eval()
        canon = canonical_transform(self.mc.input_hw[0])
        errs = []
        for s in range(0, len(idx), 64):
            b = idx[s:s + 64]
            imgs = np.stack([warp(self.cache.images[i], canon, self.mc.input_hw) for i in b])
            hm = self.model(to_tensor(imgs, self.mc)).numpy()
            xy, _ = self.codec.decode(hm)
            errs.append(nme(xy, apply(canon, self.cache.points[b])))
        e = np.concatenate(errs) if errs else np.zeros(0)
        out = {"val_nme": float(e.mean()) if len(e) else float("nan"),
               "val_median": float(np.median(e)) if len(e) else float("nan")}
        for cut in (0.08, 0.10):
            a, f = auc_fr(e, cut)
            out[f"val_auc@{cut:.2f}"], out[f"val_fr@{cut:.2f}"] = a, f
        return out

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, max_seconds: float | None = None) -> Path:
        """Train until `cfg.epochs` or `max_seconds`; returns the run folder."""
        cfg = self.cfg
        steps = cfg.samples_per_epoch // cfg.batch
        t_start = time.time()
        metrics = self.out / "metrics.csv"
        while self.epoch < cfg.epochs:
            bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       unit="step", dynamic_ncols=True, mininterval=5)
            losses, t0 = [], time.time()
            while self.step_in_epoch < steps:
                idx = self.rng.choice(self.train_idx, cfg.batch, p=self.p)
                losses.append(self.train_step(idx))
                self.step_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                if self.step_in_epoch % cfg.checkpoint_every == 0:
                    self._save("last.pt")
                if max_seconds is not None and time.time() - t_start > max_seconds:
                    bar.close()
                    self._save("last.pt")
                    return self.out
            bar.close()
            row = {"epoch": self.epoch + 1, "lr": self.opt.param_groups[0]["lr"],
                   "loss": float(np.mean(losses)) if losses else float("nan"),
                   "faces_per_s": len(losses) * cfg.batch / max(time.time() - t0, 1e-9)}
            row.update(self.validate())
            self.epoch += 1
            self.step_in_epoch = 0
            self.sched.step()
            if row["val_nme"] < self.best:
                self.best = row["val_nme"]
                self._save("best.pt", weights_only=True)
            self._save("last.pt")
            new = not metrics.exists()
            with metrics.open("a", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    wr.writeheader()
                wr.writerow(row)
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        return self.out
