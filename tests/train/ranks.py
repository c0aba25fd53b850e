"""Run a function on several ranks of a gloo process group on this machine, as torchrun
would: one spawned process per rank, the rendezvous on a free loopback port."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch.multiprocessing as mp

from train.distributed import Dist, from_env, shutdown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), GLOO_SOCKET_IFNAME="lo")
    d: Dist = from_env(timeout=timedelta(seconds=60), cuda=False)
    try:
        fn(d, *args)
    finally:
        shutdown(d)


def spawn(fn, world: int, *args) -> None:
    """`fn(dist, *args)` on `world` ranks (CPU, gloo); raises what any rank raised. `fn` must be
    a module-level function (it is pickled by name)."""
    mp.spawn(_entry, (world, free_port(), fn, args), nprocs=world, join=True)
