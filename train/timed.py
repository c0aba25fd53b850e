"""One phase of training for a wall-clock budget (`run_phase`): Adam, a learning rate scheduled
over the *time* budget (`lr_factor`: linear warm-up, then a cosine down to a floor), so the
phase ends on a low rate wherever the machine's speed puts it, and an evaluation every
`eval_every` seconds. Used by `train.sprint` for the teacher and the student alike.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from tracker.core.model import FAN


@dataclass(frozen=True)
class Schedule:
    warmup: float = 0.03  # share of the phase's time
    final_lr: float = 0.02  # share of the peak rate at the end
    eval_every: float = 60.0  # seconds


def lr_factor(frac: float, warmup: float, final: float) -> float:
    """The schedule over a phase's time, `frac` in [0, 1]: linear warm-up, then cosine to `final`."""
    if frac < warmup:
        return max(frac / warmup, 0.01)
    q = min((frac - warmup) / max(1 - warmup, 1e-9), 1.0)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * q))


def run_phase(name: str, model: FAN, loss_fn: Callable[[int], torch.Tensor], batch: int, lr: float,
              seconds: float, schedule: Schedule, report: Callable[[dict], None],
              evaluate_fn: Callable[[], dict]) -> dict:
    """Train `model` on `loss_fn(batch)` for `seconds` of wall clock with Adam and the time
    schedule; `report` gets a row (time, steps, faces, lr, loss, speed, validation) every
    `schedule.eval_every` seconds and at the end. A step that runs out of device memory in the
    first steps halves the batch; a loss that is no longer finite at an evaluation takes the
    weights back to the last evaluation's and halves the peak rate. Returns the last row."""
    cuda = next(model.parameters()).is_cuda

    def adam() -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if cuda else {}))

    opt = adam()
    model.train()
    start = time.time()
    last_eval, next_eval = start, start + schedule.eval_every
    steps = faces = steps_since = 0
    loss_sum = torch.zeros((), device=next(model.parameters()).device)
    good = copy_state(model)
    row: dict = {}
    while True:
        now = time.time()
        frac = (now - start) / seconds
        done = frac >= 1
        if done or now >= next_eval:
            if cuda:
                torch.cuda.synchronize()
            row = {"phase": name, "minute": round((time.time() - start) / 60, 3), "steps": steps,
                   "faces": faces, "batch": batch, "lr": opt.param_groups[0]["lr"],
                   "loss": float(loss_sum) / max(steps_since, 1),
                   "faces_per_s": round(steps_since * batch / max(time.time() - last_eval, 1e-9), 1)}
            if math.isfinite(row["loss"]):
                good = copy_state(model)
            else:  # diverged: back to the last good weights, at half the rate
                model.load_state_dict(good)
                lr /= 2
                opt = adam()
                row["diverged"] = f"weights restored, peak rate halved to {lr:g}"
            row.update(evaluate_fn())
            report(row)
            loss_sum.zero_()
            steps_since, last_eval = 0, time.time()
            next_eval = last_eval + schedule.eval_every
            if done:
                return row
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(frac, schedule.warmup, schedule.final_lr)
        try:
            loss = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        except torch.cuda.OutOfMemoryError:
            if steps > 2 or batch < 2:
                raise
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batch //= 2
            print(f"{name}: out of device memory, batch halved to {batch}", flush=True)
            continue
        loss_sum += loss.detach()
        steps += 1
        steps_since += 1
        faces += batch


def copy_state(model: FAN) -> dict:
    """A copy of `model`'s weights and buffers, on their device."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
