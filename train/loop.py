"""The training loop: a `Trainer` that composes sampling (`train.sampling`), augmentation
(`train.augment`), targets and losses (`train.targets`, `train.loss`), validation
(`train.validation`) and checkpoints (`train.checkpoint`) into steps and epochs.

A run lives in one folder: config.json, metrics.csv (one row per epoch), last.pt (model,
optimiser, schedule, epoch, step and random state, written every `checkpoint_every` steps and
at each epoch's end) and best.pt (lowest validation NME). Starting a run whose folder holds a
last.pt resumes it where it stopped.
"""
from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import apply
from tracker.core.model import FAN, PRESETS, ModelConfig
from train import checkpoint
from train.augment import AugmentConfig, augment_batch, canonical_transform
from train.cache import Cache
from train.config import TrainConfig
from train.loss import heatmap_l2, siamese_l2
from train.sampling import draw_batch, sampling_weights, split
from train.targets import branch_to_canonical, heatmap_targets, label_weights, to_tensor, unmirror
from train.validation import validate

__all__ = ["Trainer", "split"]  # `split` stays importable from here (scripts/score_separation.py)


def append_row(path: Path, row: dict) -> None:
    """Append one row to a CSV file, with a header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(row))
        if new:
            wr.writeheader()
        wr.writerow(row)


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
        self.loss_w = label_weights(self.cache, cfg)
        torch.manual_seed(cfg.seed)
        self.model = FAN(self.mc)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, list(cfg.milestones), cfg.gamma)
        self.rng = np.random.default_rng(cfg.seed)
        self.aug = AugmentConfig(**cfg.augment)
        self.epoch, self.step_in_epoch, self.best = 0, 0, float("inf")
        if (self.out / "last.pt").exists():
            self._resume(checkpoint.load(self.out / "last.pt"))
        elif cfg.init:
            self.init_report = checkpoint.init_from(self.model, Path(cfg.init))
        cfg.save(self.out / "config.json")

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "best": self.best,
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "model_config": self.mc.to_dict(), "codec": self.codec.to_dict(),
                "train_config": asdict(self.cfg)}

    def _resume(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self.sched.load_state_dict(s["sched"])
        # the config is authoritative on resume: a schedule shortened after a stop takes effect
        self.sched.milestones = Counter(self.cfg.milestones)
        self.sched.gamma = self.cfg.gamma
        self.epoch, self.step_in_epoch, self.best = s["epoch"], s["step_in_epoch"], s["best"]
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, idx: np.ndarray) -> float:
        w = torch.as_tensor(self.loss_w[self.cache.source[idx]], dtype=torch.float32)
        self.model.train()
        if not self.cfg.siamese:
            imgs, pts, _ = augment_batch(self.rng, self.cache, idx, self.aug, self.mc.input_hw[0])
            outs = self.model.forward_all(to_tensor(imgs, self.mc))
            target = heatmap_targets(self.codec, pts)
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
        a_img, _, a_m = augment_batch(self.rng, self.cache, idx, self.aug, side)
        b_img, _, b_m = augment_batch(self.rng, self.cache, idx, self.aug, side)
        outs = self.model.forward_all(to_tensor(np.concatenate([a_img, b_img]), self.mc))
        canon = canonical_transform(side)
        target = heatmap_targets(self.codec, apply(canon, self.cache.points[idx]))
        a_to_ref = branch_to_canonical(self.codec, canon, a_m)
        b_to_ref = branch_to_canonical(self.codec, canon, b_m)
        n = len(idx)
        return sum(siamese_l2(unmirror(o[:n], a_m), unmirror(o[n:], b_m), a_to_ref, b_to_ref, target, w)
                   for o in outs)

    # -- validation ---------------------------------------------------------------------------
    def validate(self, idx: np.ndarray | None = None) -> dict:
        """`train.validation.validate` on the validation faces (or `idx`)."""
        return validate(self.model, self.codec, self.cache, self.val_idx if idx is None else idx)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, max_seconds: float | None = None) -> Path:
        """Train until `cfg.epochs` or `max_seconds`; returns the run folder."""
        cfg = self.cfg
        steps = cfg.samples_per_epoch // cfg.batch
        t_start = time.time()
        while self.epoch < cfg.epochs:
            bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       unit="step", dynamic_ncols=True, mininterval=5)
            losses, t0 = [], time.time()
            while self.step_in_epoch < steps:
                losses.append(self.train_step(draw_batch(self.rng, self.train_idx, self.p, cfg.batch)))
                self.step_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                if self.step_in_epoch % cfg.checkpoint_every == 0:
                    checkpoint.save(self._state(), self.out / "last.pt")
                if max_seconds is not None and time.time() - t_start > max_seconds:
                    bar.close()
                    checkpoint.save(self._state(), self.out / "last.pt")
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
                checkpoint.save_best(self._state(), self.out / "best.pt")
            checkpoint.save(self._state(), self.out / "last.pt")
            append_row(self.out / "metrics.csv", row)
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        return self.out
