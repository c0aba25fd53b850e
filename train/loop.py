"""The training loop: a `Trainer` that composes sampling (`train.sampling`), augmentation
(`train.augment`), targets and losses (`train.targets`, `train.loss`), validation
(`train.validation`) and checkpoints (`train.checkpoint`) into steps and epochs.

A run lives in one folder: config.json, metrics.csv (one row per epoch), last.pt (model,
optimiser, schedule, epoch, step and random state, written every `checkpoint_every` steps and
at each epoch's end) and best.pt (lowest validation NME). Starting a run whose folder holds a
last.pt resumes it where it stopped. With `average_from` (`train.averaging`), last.pt also
holds the running mean of the weights, average.pt the mean with its batch-norm statistics
(written at each epoch's end from then on), and metrics.csv its validation in `avg_` columns;
the batches that recompute those statistics come from a stream of their own, so averaging
leaves the run's weights as they would have been without it.

Data parallelism (`train.distributed`, under torchrun): every step's global batch of
`cfg.batch` faces is drawn by every rank from the same stream (`batch_rng`, seeded alike) and
each rank trains on its slice, augmented from its own stream (`rng`); the losses divide by the
global batch's weight sum, batch norm uses the global batch's statistics, and DDP averages the
gradients, so that a step equals one process's step on the whole batch (up to rounding).
Rank 0 alone writes the run folder; last.pt then also keeps every rank's augmentation stream
(`rank_rngs`), and every rank resumes from rank 0's last.pt.
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
from tracker.core.model import FAN
from tracker.core.model_config import PRESETS, ModelConfig
from train import averaging, checkpoint
from train.augment import AugmentConfig, augment_batch, canonical_transform
from train.cache import Cache, check_fits
from train.config import TrainConfig
from train.distributed import SINGLE, Dist, threads_per_rank, training_module
from train.loss import LOSSES, decoded_l1, sample_weight, siamese_l2
from train.relabel import relabelled
from train.sampling import augment_rng, draw_batch, rank_slice, sampling_weights, split
from train.targets import (
    MEMORY_FORMAT,
    branch_to_canonical,
    ensemble_targets,
    heatmap_targets,
    label_weights,
    resample,
    to_tensor,
    unmirror,
)
from train.validation import summarise, validate

__all__ = ["Trainer", "split"]  # `split` stays importable from here (scripts/score_separation.py)


def append_row(path: Path, row: dict) -> None:
    """Append one row to a CSV file, with a header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(row))
        if new:
            wr.writeheader()
        wr.writerow(row)


def optimiser(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam at `cfg.lr`; with `cfg.weight_decay`, AdamW decaying the weight tensors alone
    (convolutions and heads: no biases, no batch-norm scales or shifts)."""
    if not cfg.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    params = list(model.parameters())
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1]},
                              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                             lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    def __init__(self, cfg: TrainConfig, cache: Cache | None = None,
                 model_config: ModelConfig | None = None, dist: Dist = SINGLE):
        """`model_config` overrides the preset's architecture (tests use tiny models); `dist`
        is this process's place in a data-parallel run (`train.distributed.from_env`)."""
        if cfg.batch % dist.world:
            raise ValueError(f"batch {cfg.batch} does not split over {dist.world} ranks")
        self.cfg, self.dist = cfg, dist
        torch.set_num_threads(threads_per_rank(cfg.threads, dist.local_world))
        self.out = Path(cfg.out)
        if dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.mc = model_config or PRESETS[cfg.preset]
        self.codec = HeatmapCodec(self.mc.input_hw, self.mc.heatmap_hw, cfg.sigma, cfg.encoding)
        self.cache = cache if cache is not None else Cache.load(Path(cfg.cache))
        if cfg.labels:
            self.cache = relabelled(self.cache, Path(cfg.labels))
        # a cache cut smaller than the model's input would train it on upsampled faces
        check_fits(self.cache.side, self.mc.input_hw[0], cfg.cache if cache is None else None)
        self.train_idx, self.val_idx = split(self.cache, cfg)
        self.p = sampling_weights(self.cache, self.train_idx, cfg)
        self.loss_w = label_weights(self.cache, cfg)
        self.heatmap_loss = LOSSES[cfg.loss]
        self.teachers = [self._teacher(path) for path in cfg.teachers]  # [(net, codec)]
        torch.manual_seed(cfg.seed)
        self.model = FAN(self.mc).to(dist.device).to(memory_format=MEMORY_FORMAT)
        self.opt = optimiser(self.model, cfg)
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, list(cfg.milestones), cfg.gamma)
        # one process: one stream draws the batches and augments them; under DDP the batch
        # stream is shared (same seed on every rank) and each rank augments from its own
        if dist.parallel:
            self._batch_rng = np.random.default_rng(cfg.seed)
            self.rng = augment_rng(cfg.seed, dist.rank, dist.world)
        else:
            self.rng = np.random.default_rng(cfg.seed)
        self.aug = AugmentConfig(**cfg.augment)
        self.epoch, self.step_in_epoch, self.best = 0, 0, float("inf")
        self.mean, self.n_averaged = None, 0  # the running mean of the weights (`average_from`)
        last = self.out / "last.pt"
        state = dist.broadcast(checkpoint.load(last) if dist.is_main and last.exists() else None)
        if state is not None:
            self._resume(state)
        elif cfg.init and dist.is_main:  # the other ranks get these weights when DDP wraps the model
            self.init_report = checkpoint.init_from(self.model, Path(cfg.init))
        if dist.is_main:
            cfg.save(self.out / "config.json")
        self.net = training_module(self.model, dist)

    def _teacher(self, path: str) -> tuple[FAN, HeatmapCodec]:
        """A distillation teacher in eval mode on this run's device, and its codec."""
        from tracker.core.modelfile import load_torch

        net, info = load_torch(path)
        if info.model.input_hw[0] != info.model.input_hw[1]:
            raise ValueError(f"distil_from {path}: its input {info.model.input_hw} is "
                             "not square")
        for p in net.parameters():
            p.requires_grad_(False)
        return net.to(self.dist.device).to(memory_format=MEMORY_FORMAT).eval(), info.codec

    @property
    def batch_rng(self) -> np.random.Generator:
        """The random stream that draws the global batches."""
        return self._batch_rng if self.dist.parallel else self.rng

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict:
        model = self.model.state_dict()
        if self.dist.device.type != "cpu":
            model = {k: v.cpu() for k, v in model.items()}
        return {"model": model, "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "best": self.best,
                "rng": self.batch_rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "model_config": self.mc.to_dict(), "codec": self.codec.to_dict(),
                "train_config": asdict(self.cfg), "mean": self.mean, "n_averaged": self.n_averaged}

    def _save_last(self) -> None:
        """last.pt, by rank 0; under DDP with every rank's augmentation stream (a collective:
        every rank calls this at the same step)."""
        rank_rngs = self.dist.gather(self.rng.bit_generator.state) if self.dist.parallel else None
        if not self.dist.is_main:
            return
        state = self._state()
        if rank_rngs is not None:
            state["rank_rngs"] = rank_rngs
        checkpoint.save(state, self.out / "last.pt")

    def _resume(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self.sched.load_state_dict(s["sched"])
        # the config is authoritative on resume: a schedule shortened after a stop takes effect
        self.sched.milestones = Counter(self.cfg.milestones)
        self.sched.gamma = self.cfg.gamma
        self.epoch, self.step_in_epoch, self.best = s["epoch"], s["step_in_epoch"], s["best"]
        self.mean, self.n_averaged = s.get("mean"), s.get("n_averaged", 0)
        self.batch_rng.bit_generator.state = s["rng"]
        if self.dist.parallel:
            own = s.get("rank_rngs")
            if own is not None and len(own) == self.dist.world:
                self.rng.bit_generator.state = own[self.dist.rank]
            else:  # resumed on another number of ranks: fresh augmentation streams
                self.rng = augment_rng(self.cfg.seed, self.dist.rank, self.dist.world,
                                       self.epoch, self.step_in_epoch)
        torch.set_rng_state(s["torch_rng"])

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, idx: np.ndarray) -> float:
        """One optimiser step on the global batch `idx` (B,) of face indices, of which this
        rank trains on its slice; returns the loss of the global batch."""
        d = self.dist
        mine = rank_slice(idx, d.rank, d.world)
        w = torch.as_tensor(self.loss_w[self.cache.source[mine]], dtype=torch.float32).to(d.device)
        total = float(sample_weight(self.loss_w)[self.cache.source[idx]].sum()) / d.world if d.parallel else None
        self.net.train()
        if not self.cfg.siamese:
            imgs, pts, _ = augment_batch(self.rng, self.cache, mine, self.aug, self.mc.input_hw[0])
            outs = self.net(to_tensor(imgs, self.mc).to(d.device))
            loss, decoded = self.label_losses(outs, pts, w, total, decoded=bool(self.cfg.decoded_weight))
            if decoded is not None:
                loss = loss + self.cfg.decoded_weight * decoded
            if self.teachers:
                loss = loss + self.cfg.distil_weight * self._distil_loss(imgs, outs, len(idx))
        else:
            loss = self._siamese_loss(mine, w, total)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return d.mean(float(loss.detach()))

    def label_losses(self, outs: list[torch.Tensor], pts: np.ndarray, w: torch.Tensor,
                     total: float | None = None, decoded: bool = True,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every stack's heatmaps `outs` against the labels `pts` (B, K, 2, input pixels), with
        sample weights `w`: (the heatmap loss, `cfg.loss`; the decoded points' loss,
        `train.loss.decoded_l1`, unweighted, or None without `decoded`), each summed over the
        stacks."""
        device = outs[0].device
        target = heatmap_targets(self.codec, pts).to(device)
        heat = sum(self.heatmap_loss(o, target, w, total=total) for o in outs)
        if not decoded:
            return heat, None
        xy_hm = torch.as_tensor(apply(self.codec.to_heatmap, pts), dtype=torch.float32).to(device)
        return heat, sum(decoded_l1(o, xy_hm, w, total, self.codec.window, self.codec.tau) for o in outs)

    def _distil_loss(self, imgs: np.ndarray, outs: list[torch.Tensor], global_batch: int) -> torch.Tensor:
        """The loss of every stack's heatmaps against the teacher's points on the same crops
        (every face weighs 1: the teacher is as good on photos as on the human-labelled ones);
        several teachers: their points averaged (`ensemble_targets`).
        A teacher with another input size sees the crops resampled to it (`resample`: a 128-px
        teacher scores the same on 112-px crops grown to 128 as on its own, 3.50 % on
        validation: `docs/results/rt-xl/on_168_cache/`)."""
        d = self.dist
        with torch.no_grad():
            hms, codecs = [], []
            for net, codec in self.teachers:
                x_t = to_tensor(imgs, net.config).to(d.device)
                hms.append(net(resample(x_t, net.config.input_hw[0])))
                codecs.append(codec)
            target = ensemble_targets(hms, codecs, self.codec)
        ones = torch.ones(len(imgs), device=d.device)
        total = global_batch / d.world if d.parallel else None
        return sum(self.heatmap_loss(o, target, ones, total=total) for o in outs)

    def _siamese_loss(self, idx: np.ndarray, w: torch.Tensor, total: float | None) -> torch.Tensor:
        """Two augmentations of each face; each branch's heatmaps are warped back to the
        un-augmented (canonical) crop, summed and compared with the canonical target."""
        side, device = self.mc.input_hw[0], self.dist.device
        a_img, _, a_m = augment_batch(self.rng, self.cache, idx, self.aug, side)
        b_img, _, b_m = augment_batch(self.rng, self.cache, idx, self.aug, side)
        outs = self.net(to_tensor(np.concatenate([a_img, b_img]), self.mc).to(device))
        canon = canonical_transform(side, self.cache.side)
        target = heatmap_targets(self.codec, apply(canon, self.cache.points[idx])).to(device)
        a_to_ref = branch_to_canonical(self.codec, canon, a_m)
        b_to_ref = branch_to_canonical(self.codec, canon, b_m)
        n = len(idx)
        return sum(siamese_l2(unmirror(o[:n], a_m), unmirror(o[n:], b_m), a_to_ref, b_to_ref, target, w,
                              total=total)
                   for o in outs)

    # -- validation ---------------------------------------------------------------------------
    def validate(self, idx: np.ndarray | None = None) -> dict:
        """`train.validation.validate` on the validation faces (or `idx`)."""
        return validate(self.model, self.codec, self.cache, self.val_idx if idx is None else idx,
                        upright=self.aug.upright)

    # -- weight averaging ---------------------------------------------------------------------
    def _bn_batches(self):
        """`average_bn_batches` augmented training batches (network inputs), drawn and augmented
        from a stream seeded by the run's seed and epoch, apart from the training streams."""
        rng = np.random.default_rng([self.cfg.seed, 0x5A, self.epoch])
        for _ in range(self.cfg.average_bn_batches):
            idx = draw_batch(rng, self.train_idx, self.p, self.cfg.batch)
            imgs, _, _ = augment_batch(rng, self.cache, idx, self.aug, self.mc.input_hw[0])
            yield to_tensor(imgs, self.mc)

    def _average(self) -> dict:
        """Fold this epoch's weights into the mean, write average.pt and return its validation
        metrics as `avg_` columns (NaN before `average_from`). Rank 0 only."""
        cfg = self.cfg
        if cfg.average_from is None:
            return {}
        if self.epoch + 1 < cfg.average_from:
            return {f"avg_{k}": v for k, v in summarise(np.zeros(0)).items()}
        self.mean = averaging.fold_in(self.mean, self.n_averaged, self.model)
        self.n_averaged += 1
        net = averaging.averaged_model(self.model, self.mean, self._bn_batches())
        metrics = validate(net, self.codec, self.cache, self.val_idx, upright=self.aug.upright)
        state = dict(self._state(), model={k: v.cpu() for k, v in net.state_dict().items()},
                     epoch=self.epoch + 1, best=metrics["val_nme"])
        checkpoint.save_best(state, self.out / "average.pt")
        return {f"avg_{k}": v for k, v in metrics.items()}

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, max_seconds: float | None = None) -> Path:
        """Train until `cfg.epochs` or `max_seconds` (rank 0's clock and limit decide for every
        rank); returns the run folder."""
        cfg, main = self.cfg, self.dist.is_main
        steps = cfg.samples_per_epoch // cfg.batch
        t_start = time.time()
        while self.epoch < cfg.epochs:
            bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       unit="step", dynamic_ncols=True, mininterval=5, disable=not main)
            losses, t0 = [], time.time()
            while self.step_in_epoch < steps:
                losses.append(self.train_step(draw_batch(self.batch_rng, self.train_idx, self.p, cfg.batch)))
                self.step_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                if self.step_in_epoch % cfg.checkpoint_every == 0:
                    self._save_last()
                if self.dist.decide(max_seconds is not None and time.time() - t_start > max_seconds):
                    bar.close()
                    self._save_last()
                    return self.out
            bar.close()
            row = {"epoch": self.epoch + 1, "lr": self.opt.param_groups[0]["lr"],
                   "loss": float(np.mean(losses)) if losses else float("nan"),
                   "faces_per_s": len(losses) * cfg.batch / max(time.time() - t0, 1e-9)}
            row.update(self.dist.broadcast(self.validate() if main else None))
            row.update(self.dist.broadcast(self._average() if main else None))
            self.epoch += 1
            self.step_in_epoch = 0
            self.sched.step()
            if row["val_nme"] < self.best:
                self.best = row["val_nme"]
                if main:
                    checkpoint.save_best(self._state(), self.out / "best.pt")
            self._save_last()
            if main:
                append_row(self.out / "metrics.csv", row)
                tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in row.items()))
        return self.out
