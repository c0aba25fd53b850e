"""Data-parallel training under torchrun: the process's place in the run, the few collectives
the loop needs, and the module a training step calls.

    torchrun --standalone --nproc_per_node=N -m train --config runs/x/config.json

One process without torchrun's environment is the reference: `SINGLE`, whose collectives
return their argument, and the loop then runs exactly as it always has. Under torchrun each
rank trains on its slice of every global batch of `TrainConfig.batch` faces, with gloo on CPU
and NCCL on GPUs (one per local rank). Rank 0 alone writes the run folder; it decides when
to stop (the time limit) and broadcasts the decision, so that ranks never wait on a rank that
has left; it validates and broadcasts the metrics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tracker.core.model import FAN
from train import syncbn


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (`SINGLE`: the only one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1  # ranks on this machine
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks."""
        if not self.parallel:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def decide(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank."""
        if not self.parallel:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t)

    def broadcast(self, obj):
        """Rank 0's `obj` (any picklable object), on every rank."""
        if not self.parallel:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, 0, device=self.device)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every rank's `obj`, in rank order, on rank 0; None elsewhere."""
        if not self.parallel:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, 0)
        return out


SINGLE = Dist()


def from_env(timeout: timedelta = timedelta(minutes=30), cuda: bool | None = None) -> Dist:
    """This process's `Dist` from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    LOCAL_WORLD_SIZE; MASTER_ADDR and MASTER_PORT for the rendezvous); `SINGLE` without it.
    Under torchrun the device is GPU LOCAL_RANK when `cuda` (default: when one is available),
    else the CPU; with more than one rank this joins the process group, NCCL on GPUs and gloo
    on CPU, whose collectives fail after `timeout` instead of waiting for ever."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return SINGLE
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", rank))
    local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    cuda = torch.cuda.is_available() if cuda is None else cuda
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return Dist(rank, world, local_rank, local_world, device)


def shutdown(d: Dist) -> None:
    """Leave the process group `from_env` joined, if any."""
    if d.parallel and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_rank(threads: int, local_world: int) -> int:
    """Torch threads for one rank: `threads` (`TrainConfig.threads`) alone on a machine;
    with `local_world` ranks on it, at most its share of the cores (torchrun's own default,
    OMP_NUM_THREADS=1, would leave cores idle; `threads` each would oversubscribe them)."""
    if local_world <= 1:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(threads, cores // local_world))


class AllStacks(nn.Module):
    """A FAN whose forward returns every stack's (B, K, h, w) heatmaps (`FAN.forward_all`,
    for intermediate supervision). It is what a training step calls and what DDP wraps: every
    training forward must pass through DDP's own forward, or its gradient averaging is skipped."""

    def __init__(self, model: FAN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_all(x)


def training_module(model: FAN, d: Dist) -> nn.Module:
    """The module a training step calls for `model` (already on `d.device`): `AllStacks`, and
    with more than one rank, its batch norms synchronised over the global batch and the whole
    wrapped in DDP, which broadcasts rank 0's parameters and buffers now and averages the
    gradients in every backward. `model` stays the FAN that checkpoints and validation use."""
    net = AllStacks(model)
    if not d.parallel:
        return net
    syncbn.convert(model, d.device)
    # rank 0's buffers at the start; then synchronised BN keeps the running statistics equal on
    # every rank, and no forward needs to broadcast them
    return DistributedDataParallel(net, device_ids=[d.local_rank] if d.device.type == "cuda" else None,
                                   forward_sync_buffers=False)
