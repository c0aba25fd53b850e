"""A training run for a wall-clock budget on one accelerator (the GPU machine's ten minutes):
the paper model (fan2-256) trained from a pack (`train.pack`) decoded once into device memory,
then a real-time student (by default the tracker's default model, `DEFAULT_MODEL`, whose network is
`DEFAULT_PRESET`) distilled from it.

Every step runs on the device: faces drawn with `train.sampling`'s weights
(`train.device_data`), augmented by `train.gpu_augment` (the augmentation of
`train.augment`), targets through `tracker.core.codec_torch`, the L2 or Siamese loss of
`train.loss` on every stack, under bf16 autocast with channels-last tensors. Each phase runs
for a wall-clock budget with its learning rate scheduled over that time (`train.timed`).
Validation: the identity split of `train.sampling.split` and the metrics of
`train.validation` (NME_io mean, median, AUC and failure rate at 0.08 and 0.10) on canonical
crops, in fp32, every `eval_every` seconds.

Distillation: a batch is augmented once at the teacher's input size and resampled (`train.targets.resample`) to the
student's; the teacher's last-stack heatmaps are decoded (its codec's decoder) to points,
which are encoded at the student's heatmap size as its targets (the same Gaussians as its
ground-truth targets); the loss adds `gt_weight` x the ground-truth loss. A teacher that
validates worse than the student's warm start is left out (labels alone), and the student
that validated best, the warm start included, is the one kept.

Outputs in `out`: config.json; metrics.json, rewritten at every evaluation; the teacher's fp16
weights in pieces `teacher.part<i>.pt` of under `piece_mb` MiB each, written as soon as the
teacher is trained (`train.checkpoint.save_pieces`; `join_pieces` makes a checkpoint of
them); student.pt, a best.pt-style fp32 checkpoint (its `best` is its validation NME). `deadline_minutes` caps the whole run,
start-up included: the phases shrink to end inside it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from tracker.core import codec_torch
from tracker.core.codec import HeatmapCodec
from tracker.core.model import FAN
from tracker.core.model_config import PRESETS, ModelConfig
from tracker.core.modelfile import DEFAULT_MODEL, DEFAULT_PRESET
from train import checkpoint
from train.affine import apply, compose, invert
from train.augment import AugmentConfig
from train.config import TrainConfig
from train.device_data import DeviceData, evaluate
from train.gpu_augment import augment, canonical_transform, check_supported, normalise, unmirror
from train.loss import heatmap_l2, siamese_l2
from train.pack import Pack
from train.targets import encode_points, resample, student_targets
from train.timed import Schedule, copy_state, run_phase

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SprintConfig:
    minutes: float = 5.5  # teacher
    distil_minutes: float = 2.5  # student; 0 skips it
    deadline_minutes: float = 9.0  # the whole run, start-up included
    teacher: str = "fan2-256"
    student: str = DEFAULT_PRESET  # a preset; warm-started from the bundled default's weights
    teacher_model: dict | None = None  # ModelConfig fields replacing the preset's (tests)
    student_model: dict | None = None
    student_init: str | None = f"tracker/models/{DEFAULT_MODEL}.pt"  # warm start (relative to the repo)
    siamese: bool = True  # the paper's loss; plain L2 when False
    batch: int = 128  # faces a step (a Siamese step runs two images of each)
    student_batch: int = 256
    lr: float = 1e-3  # Adam, peak
    student_lr: float = 5e-4
    warmup: float = 0.03  # share of a phase's time
    final_lr: float = 0.02  # share of the peak at the end of a phase
    gt_weight: float = 0.5  # distillation: the ground-truth loss's weight (teacher's: 1)
    human_share: float = 0.75  # of the drawn faces; teacher-labelled sources share the rest
    val_fraction: float = 0.08  # of the human identity groups (`train.sampling.split`)
    augment: dict = field(default_factory=dict)  # AugmentConfig fields to override
    amp: str = "auto"  # bf16 autocast: "auto" (on a GPU), "bf16", "off"
    eval_every: float = 60.0  # seconds
    piece_mb: float = 15.0  # MiB, the teacher's pieces stay under it
    threads: int = 0  # decode threads (0: all cores)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (self.teacher, self.student):
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; one of {sorted(PRESETS)}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto, bf16 or off, got {self.amp!r}")
        if self.minutes <= 0 or self.distil_minutes < 0 or self.batch < 1 or self.student_batch < 1:
            raise ValueError("minutes and batches must be positive, distil_minutes >= 0")
        if not 0 < self.human_share <= 1:
            raise ValueError("human_share must be in (0, 1]")
        check_supported(AugmentConfig(**self.augment))  # unknown fields fail here

    def schedule(self) -> Schedule:
        return Schedule(self.warmup, self.final_lr, self.eval_every)

    def models(self) -> tuple[ModelConfig, ModelConfig]:
        """The teacher's and the student's architectures."""
        t = ModelConfig.from_dict(dict(PRESETS[self.teacher].to_dict(), **(self.teacher_model or {})))
        s = ModelConfig.from_dict(dict(PRESETS[self.student].to_dict(), **(self.student_model or {})))
        return t, s

    def train_config(self, names: list[str]) -> TrainConfig:
        """The `TrainConfig` whose split, sampling weights and label weights this run uses: the
        paper recipe's, with humans drawn `human_share` of the time."""
        base = TrainConfig()
        human = set(base.human_sources)
        w = {n: base.source_weights.get(n, 0.0) for n in names}
        hum = sum(v for n, v in w.items() if n in human)
        rest = sum(v for n, v in w.items() if n not in human)
        share = {n: (self.human_share * v / hum if n in human else
                     (1 - self.human_share) * v / rest if rest else 0.0) for n, v in w.items()}
        return replace(base, preset=self.teacher, source_weights=share, siamese=self.siamese,
                       augment=self.augment, seed=self.seed, val_fraction=self.val_fraction)


# -- the run --------------------------------------------------------------------------------------
class Sprint:
    """One run: the pack in device memory, the teacher, the student, and what they report."""

    def __init__(self, cfg: SprintConfig, pack_dir: Path, out: Path, t0: float | None = None):
        self.t0 = time.time() if t0 is None else t0
        self.cfg, self.out = cfg, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.amp = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed)
        self.aug = AugmentConfig(**cfg.augment)
        t = time.time()
        pack = Pack.load(pack_dir)
        self.tcfg = cfg.train_config(pack.names)
        self.data = DeviceData.from_pack(pack, self.tcfg, self.device, cfg.threads)
        self.mc_t, self.mc_s = cfg.models()
        sigma, enc = self.tcfg.sigma, self.tcfg.encoding
        self.codec_t = HeatmapCodec(self.mc_t.input_hw, self.mc_t.heatmap_hw, sigma, enc)
        self.codec_s = HeatmapCodec(self.mc_s.input_hw, self.mc_s.heatmap_hw, sigma, enc)
        if abs(pack.canonical_side - self.mc_t.input_hw[0]) > 0.5:
            print(f"note: the pack's canonical crop is {pack.canonical_side:g} px, the teacher's "
                  f"input {self.mc_t.input_hw[0]} px", flush=True)
        self.metrics: dict = {
            "device": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu",
            "torch": torch.__version__, "amp_bf16": self.amp,
            "pack": {k: pack.meta.get(k) for k in ("faces", "per_source", "side", "margin", "bytes")},
            "train_faces": len(self.data.train_idx), "val_faces": len(self.data.val_idx),
            "load_s": round(time.time() - t, 2), "teacher": [], "student": []}
        self._write_metrics()

    # -- bookkeeping ----------------------------------------------------------------------------
    def left(self) -> float:
        """Seconds left before the run's deadline."""
        return self.cfg.deadline_minutes * 60 - (time.time() - self.t0)

    def _write_metrics(self) -> None:
        self.metrics["elapsed_s"] = round(time.time() - self.t0, 1)
        tmp = self.out / "metrics.json.tmp"
        tmp.write_text(json.dumps(self.metrics, indent=1))
        tmp.replace(self.out / "metrics.json")

    def _report(self, phase: str) -> Callable[[dict], None]:
        def report(row: dict) -> None:
            self.metrics[phase].append(row)
            self._write_metrics()
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
        return report

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    # -- losses ---------------------------------------------------------------------------------
    def teacher_loss(self, model: FAN) -> Callable[[int], torch.Tensor]:
        d, mc, codec = self.data, self.mc_t, self.codec_t
        side, dev = mc.input_hw[0], self.device
        to_hm = torch.as_tensor(codec.to_heatmap, dtype=torch.float32, device=dev)
        canon = canonical_transform(side, d.side, d.margin, dev)
        from_hm = invert(to_hm)

        def encode(xy_input: torch.Tensor) -> torch.Tensor:
            return codec_torch.encode(apply(to_hm, xy_input), codec.heatmap_hw, codec.sigma, codec.encoding)

        def loss(b: int) -> torch.Tensor:
            idx = d.draw(self.gen, b)
            imgs, pts, w = d.images[idx], d.points[idx], d.weight[idx]
            if not self.cfg.siamese:
                x, p_in, _, _ = augment(self.gen, imgs, pts, self.aug, side, d.margin)
                with self._autocast():
                    outs = model.forward_all(normalise(x, mc).contiguous(memory_format=torch.channels_last))
                target = encode(p_in)
                return sum(heatmap_l2(o.float(), target, w) for o in outs)
            xa, _, ma, fa = augment(self.gen, imgs, pts, self.aug, side, d.margin)
            xb, _, mb, fb = augment(self.gen, imgs, pts, self.aug, side, d.margin)
            x = normalise(torch.cat([xa, xb]), mc).contiguous(memory_format=torch.channels_last)
            with self._autocast():
                outs = model.forward_all(x)
            target = encode(apply(canon, pts))
            a_ref = compose(to_hm, compose(compose(canon, invert(ma)), from_hm))
            b_ref = compose(to_hm, compose(compose(canon, invert(mb)), from_hm))
            return sum(siamese_l2(unmirror(o[:b].float(), fa), unmirror(o[b:].float(), fb), a_ref, b_ref,
                                  target, w) for o in outs)
        return loss

    def distil_loss(self, student: FAN, teacher: FAN,
                    teacher_weight: float = 1.0) -> Callable[[int], torch.Tensor]:
        """The student's loss: L2 to the teacher's points (x `teacher_weight`) plus
        `gt_weight` x L2 to the labels."""
        d = self.data
        side_t, side_s = self.mc_t.input_hw[0], self.mc_s.input_hw[0]

        def loss(b: int) -> torch.Tensor:
            idx = d.draw(self.gen, b)
            x_t, p_t, _, _ = augment(self.gen, d.images[idx], d.points[idx], self.aug, side_t, d.margin)
            x_s = resample(x_t, side_s)
            with torch.no_grad(), self._autocast():
                hm_t = teacher(normalise(x_t, self.mc_t).contiguous(memory_format=torch.channels_last))
            from_teacher = student_targets(hm_t.float(), self.codec_t, self.codec_s)
            from_labels = encode_points(p_t, self.codec_t, self.codec_s)
            with self._autocast():
                outs = student.forward_all(
                    normalise(x_s, self.mc_s).contiguous(memory_format=torch.channels_last))
            ones = torch.ones_like(d.weight[idx])
            return sum(teacher_weight * heatmap_l2(o.float(), from_teacher, ones) +
                       self.cfg.gt_weight * heatmap_l2(o.float(), from_labels, d.weight[idx]) for o in outs)
        return loss

    # -- phases ---------------------------------------------------------------------------------
    def new_model(self, mc: ModelConfig) -> FAN:
        return FAN(mc).to(self.device).to(memory_format=torch.channels_last)

    def train_teacher(self) -> FAN:
        cfg = self.cfg
        teacher = self.new_model(self.mc_t)
        reserve = cfg.distil_minutes * 60 + (20 if cfg.distil_minutes > 0 else 0) + 15
        seconds = min(cfg.minutes * 60, self.left() - reserve)
        if seconds < 1:
            raise RuntimeError(f"no time left for the teacher ({self.left():.0f} s to the deadline)")
        self.metrics["teacher_seconds"] = round(seconds, 1)
        last = run_phase("teacher", teacher, self.teacher_loss(teacher), cfg.batch, cfg.lr, seconds,
                         cfg.schedule(), self._report("teacher"),
                         lambda: evaluate(teacher, self.codec_t, self.data))
        self.save_teacher(teacher, last)
        return teacher

    def save_teacher(self, teacher: FAN, last: dict) -> list[Path]:
        half = checkpoint.half_weights(teacher.state_dict())
        info = {"model_config": self.mc_t.to_dict(), "codec": self.codec_t.to_dict(), "epoch": 0,
                "best": last.get("val_nme", float("nan")), "train_config": asdict(self.cfg)}
        paths = checkpoint.save_pieces(half, self.out, "teacher", int(self.cfg.piece_mb * 2**20), info)
        # what the pieces hold, scored: the fp16 weights as they come back
        check = FAN(self.mc_t)
        check.load_state_dict({k: v.float() for k, v in checkpoint.join_pieces(paths)["model"].items()})
        self.metrics["teacher_fp16"] = evaluate(check.to(self.device).to(memory_format=torch.channels_last),
                                                self.codec_t, self.data)
        self.metrics["teacher_pieces"] = {p.name: p.stat().st_size for p in paths}
        self._write_metrics()
        return paths

    def distil(self, teacher: FAN) -> FAN | None:
        cfg = self.cfg
        seconds = min(cfg.distil_minutes * 60, self.left() - 10)
        if cfg.distil_minutes <= 0 or seconds < 1:
            return None
        student = FAN(self.mc_s)
        if cfg.student_init:
            init = Path(cfg.student_init)
            init = init if init.is_absolute() else ROOT / init
            self.metrics["student_init"] = checkpoint.init_from(student, init)
        student = student.to(self.device).to(memory_format=torch.channels_last)
        teacher.eval()
        self.metrics["student_seconds"] = round(seconds, 1)
        start = evaluate(student, self.codec_s, self.data)
        self.metrics["student_start"] = start
        # a teacher that validates worse than the (warm-started) student teaches it nothing:
        # then the student trains on the labels alone
        t_nme = self.metrics.get("teacher_fp16", {}).get("val_nme", float("nan"))
        teacher_weight = 1.0 if not t_nme >= start["val_nme"] else 0.0
        self.metrics["distil_teacher_weight"] = teacher_weight
        best = {"row": dict(start, minute=0.0), "state": copy_state(student)}

        def evaluate_keep_best() -> dict:
            row = evaluate(student, self.codec_s, self.data)
            if row["val_nme"] < best["row"]["val_nme"]:
                best["row"], best["state"] = row, copy_state(student)
            return row

        run_phase("student", student, self.distil_loss(student, teacher, teacher_weight), cfg.student_batch,
                  cfg.student_lr, seconds, cfg.schedule(), self._report("student"), evaluate_keep_best)
        # the student that validated best (the warm start itself, if training did not help)
        student.load_state_dict(best["state"])
        self.metrics["student_kept"] = best["row"]
        state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
        checkpoint.save_best({"model": state, "model_config": self.mc_s.to_dict(),
                              "codec": self.codec_s.to_dict(), "epoch": 0,
                              "best": best["row"]["val_nme"], "train_config": asdict(cfg)},
                             self.out / "student.pt")
        self._write_metrics()
        return student

    def run(self) -> dict:
        teacher = self.train_teacher()
        self.distil(teacher)
        if self.device.type == "cuda":
            self.metrics["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self._write_metrics()
        return self.metrics
