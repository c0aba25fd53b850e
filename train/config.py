"""Training configuration: one frozen dataclass, saved beside every run so that it reproduces."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tracker.core.model_config import PRESETS
from train.augment import AugmentConfig
from train.cache import default_path, side_for
from train.loss import LOSSES


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "rt-m"
    cache: str = ".cache/train_crops.npz"
    out: str = "runs/rt-m"
    epochs: int = 50
    samples_per_epoch: int = 8192
    batch: int = 32
    lr: float = 1e-4
    # Decoupled weight decay (AdamW) on the convolutions' and the head's weights, not on
    # biases or batch-norm parameters; 0: plain Adam, the paper's
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (25, 40)
    gamma: float = 0.1
    sigma: float = 2.0
    encoding: str = "continuous"
    siamese: bool = False
    loss: str = "l2"  # on the heatmaps: "l2" (the paper's) or "awing" (train.loss.heatmap_awing)
    # Weight of a second loss on the decoded points (`train.loss.decoded_l1`, heatmap pixels);
    # 0: the heatmap loss alone
    decoded_weight: float = 0.0
    # Distillation: a trained model whose decoded points are a second target, weighted
    # `distil_weight` against the labels' loss (`train.targets.student_targets`); or a list of
    # them, an ensemble whose points are averaged (`train.targets.ensemble_targets`).
    distil_from: str | list[str] | None = None
    distil_weight: float = 1.0
    labels: str | None = None  # relabelled teacher data for this cache (`python -m train.relabel`)
    # Share of each source in the sampled batches; clips share `videos` equally.
    source_weights: dict = field(default_factory=lambda: {
        "300w_lfpw": 0.2, "300w_helen": 0.2, "300w_afw": 0.1, "lfw": 0.15, "utkface": 0.1,
        "misc": 0.03, "photos": 0.02, "videos": 0.2})
    human_sources: tuple[str, ...] = ("300w_lfpw", "300w_helen", "300w_afw")
    teacher_loss_weight: float = 0.5  # human labels weigh 1.0
    # The teacher's labels on some parts of the markup weighed apart (`LandmarkScheme.groups`
    # names, say {"jaw": 2.0}; `train.targets.label_weights`): dlib places the jaw's points
    # along their line closer to the human convention than our models do (README, Training)
    teacher_part_weights: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)  # train.augment.AugmentConfig fields to override
    val_fraction: float = 0.08  # of the human identity groups, held out
    init: str | None = None  # a checkpoint whose weights start the run (fine-tuning); not its optimiser
    # Weight averaging (SWA): from this epoch on (1-based), the weights at each epoch's end join
    # a running mean, whose batch-norm statistics are recomputed on `average_bn_batches`
    # augmented training batches before it is validated and written as average.pt.
    average_from: int | None = None
    average_bn_batches: int = 64
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 50  # steps

    @property
    def teachers(self) -> list[str]:
        """The distillation teachers' paths (`distil_from` as a list; empty without one)."""
        if not self.distil_from:
            return []
        return [self.distil_from] if isinstance(self.distil_from, str) else list(self.distil_from)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; one of {sorted(PRESETS)}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "human_sources", tuple(self.human_sources))
        if isinstance(self.distil_from, (list, tuple)):
            if not self.distil_from:
                raise ValueError("distil_from: an empty list; None distils from no one")
            object.__setattr__(self, "distil_from", list(self.distil_from))
        unknown = set(self.augment) - {f.name for f in fields(AugmentConfig)}
        if unknown:
            raise ValueError(f"augment: unknown settings {sorted(unknown)}; "
                             f"AugmentConfig has {[f.name for f in fields(AugmentConfig)]}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: one of {sorted(LOSSES)}")
        if self.siamese and (self.loss != "l2" or self.distil_from or self.teacher_part_weights
                             or self.decoded_weight):
            raise ValueError("the Siamese loss is an L2 on the warped-back sum: no other loss, "
                             "no distillation, no per-part label weights with it")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay {self.weight_decay}: >= 0")
        if self.decoded_weight < 0:
            raise ValueError(f"decoded_weight {self.decoded_weight}: >= 0")
        if any(w < 0 for w in self.teacher_part_weights.values()):
            raise ValueError(f"teacher_part_weights {self.teacher_part_weights}: weights >= 0")
        if self.average_from is not None and not 1 <= self.average_from <= self.epochs:
            raise ValueError(f"average_from {self.average_from}: an epoch of 1..{self.epochs}")
        if self.average_bn_batches < 1:
            raise ValueError("average_bn_batches must be positive")
        if self.batch < 1 or self.epochs < 1 or self.samples_per_epoch < self.batch:
            raise ValueError("batch, epochs and samples_per_epoch must be positive, "
                             "samples_per_epoch >= batch")

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path, **overrides) -> "TrainConfig":
        d = json.loads(Path(path).read_text())
        d.update(overrides)
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**d)


#: Recipes. `paper` is section 5.1 of the paper, on a cache cut at its 256-px input
#: (`python -m train.cache DATA --side 384`); `rt` is the real-time CPU model's.
RECIPES = {
    "paper": TrainConfig(preset="fan2-256", out="runs/fan2-256", epochs=50, lr=1e-4,
                         milestones=(25, 40), siamese=True,
                         cache=str(default_path(side_for(PRESETS["fan2-256"].input_hw[0])))),
    "rt": TrainConfig(preset="rt-m", out="runs/rt-m", epochs=22, lr=1e-3, milestones=(16, 20),
                      samples_per_epoch=8192),
}
