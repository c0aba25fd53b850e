"""Checkpoints of a run: last.pt (everything a resume needs) and best.pt (the weights and
what describes them), written atomically, read with `weights_only=True`; and the warm start
of a new run from another run's weights.

last.pt: model, opt, sched, epoch, step_in_epoch, best, rng, torch_rng, model_config, codec,
train_config, and from a data-parallel run also rank_rngs (see `train.loop`). best.pt: model,
model_config, codec, epoch, best, train_config. The model's tensors are stored on the CPU;
`load` maps every tensor there.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tracker.core.model import FAN

#: What best.pt keeps of a last.pt state: a third of the size.
BEST_KEYS = ("model", "model_config", "codec", "epoch", "best", "train_config")


def save(state: dict, path: Path) -> None:
    """Write `state` to `path` atomically: an interrupt never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_best(state: dict, path: Path) -> None:
    """Write the `BEST_KEYS` of a full training state to `path`, atomically."""
    save({k: state[k] for k in BEST_KEYS}, path)


def load(path: Path) -> dict:
    """A checkpoint's state, tensors on the CPU; plain tensors and containers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def init_from(model: FAN, path: Path) -> str:
    """Load another model's weights into `model` (the optimiser and schedule stay fresh) and
    say how many tensors were taken. `path` is a training checkpoint or a shipped `.pt`; every
    tensor whose name and shape match is taken, so a 2-stack model can start from a 1-stack
    one (its first stack)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init checkpoint {path} not found")
    s = load(path)
    state = s["model"] if "model" in s else s["state_dict"]
    own = model.state_dict()
    taken = {k: v.float() for k, v in state.items() if k in own}
    clash = [k for k, v in taken.items() if v.shape != own[k].shape]
    if clash or not taken:
        raise ValueError(f"{path}: its tensors ({len(clash)} of other shapes, e.g. {clash[:2]}) "
                         f"do not fit this run's model {model.config.to_dict()}")
    own.update(taken)
    model.load_state_dict(own)
    return f"init from {path}: {len(taken)} of {len(own)} tensors"
