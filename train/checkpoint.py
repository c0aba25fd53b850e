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


# -- weights in pieces --------------------------------------------------------------------------
#: Bytes a piece file spends beside its tensors' data, per tensor (pickled name, storage
#: record, zip entry) and in all (the zip's directory, the configs); `save_pieces` checks the
#: files it writes and packs tighter when these fall short.
PIECE_TENSOR_OVERHEAD = 512
PIECE_OVERHEAD = 8 * 1024


def half_weights(state: dict) -> dict:
    """A state dict with its floating tensors in fp16 where that keeps them finite (batch-norm
    statistics and anything beyond fp16's range stay fp32), on the CPU."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point() and not k.endswith(("running_mean", "running_var")):
            h = v.half()
            v = h if bool(torch.isfinite(h).all()) else v.float()
        out[k] = v.contiguous()
    return out


def split_pieces(state: dict, limit_bytes: int, info: dict, fill: float = 1.0) -> list[dict]:
    """`state`'s tensors grouped, in order, into pieces whose files should stay under
    `limit_bytes` (filled to `fill` of the room left beside the overheads):
    [{"part": i, "parts": n, "tensors": {name: tensor}, **info}, ...]; `info` (the model and
    codec configs, plain data) travels in every piece. ValueError when one tensor is too large."""
    room = (limit_bytes - PIECE_OVERHEAD) * fill
    pieces: list[dict] = [{}]
    used = 0
    for k, v in state.items():
        size = v.numel() * v.element_size() + PIECE_TENSOR_OVERHEAD
        if size > room:
            raise ValueError(f"{k}: {size} bytes, more than a piece of {limit_bytes} holds")
        if used + size > room and pieces[-1]:
            pieces.append({})
            used = 0
        pieces[-1][k] = v
        used += size
    return [dict(info, part=i, parts=len(pieces), tensors=t) for i, t in enumerate(pieces)]


def save_pieces(state: dict, folder: Path, stem: str, limit_bytes: int, info: dict) -> list[Path]:
    """Write `state` as `<stem>.part<i>.pt` files of under `limit_bytes` each into `folder`
    (earlier pieces of that stem are removed first)."""
    for old in Path(folder).glob(f"{stem}.part*.pt"):
        old.unlink()
    for fill in (1.0, 0.9, 0.75, 0.5):
        paths = []
        for p in split_pieces(state, limit_bytes, info, fill):
            path = Path(folder) / f"{stem}.part{p['part']}.pt"
            save(p, path)
            paths.append(path)
        if all(p.stat().st_size < limit_bytes for p in paths):
            return paths
        for p in paths:
            p.unlink()
    raise ValueError(f"{stem}: the weights do not split into files of under {limit_bytes} bytes")


def join_pieces(paths: list[Path]) -> dict:
    """A checkpoint of the shape `tracker.core.modelfile.load_torch` reads (model,
    model_config, codec, epoch, best, train_config) from the pieces of `save_pieces`, checked
    complete (every part 0..n-1 once) and consistent (the same configs in each)."""
    pieces = sorted((load(p) for p in paths), key=lambda p: p["part"])
    if not pieces:
        raise ValueError("no pieces given")
    n = pieces[0]["parts"]
    if [p["part"] for p in pieces] != list(range(n)) or any(p["parts"] != n for p in pieces):
        raise ValueError(f"pieces {[p['part'] for p in pieces]} of {n}: some are missing or twice")
    info = {k: v for k, v in pieces[0].items() if k not in ("part", "tensors")}
    for p in pieces[1:]:
        if {k: v for k, v in p.items() if k not in ("part", "tensors")} != info:
            raise ValueError(f"piece {p['part']} belongs to another model than piece 0")
    model = {}
    for p in pieces:
        model.update(p["tensors"])
    return {"model": model, "model_config": info["model_config"], "codec": info["codec"],
            "epoch": info.get("epoch", 0), "best": info.get("best", float("nan")),
            "train_config": info.get("train_config", {})}
