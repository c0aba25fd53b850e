"""Weight averaging (SWA, Izmailov et al. 2018): the mean of the weights a run passes through
late in training, which generalises better than any one of them. The mean's batch-norm
statistics belong to none of those weights, so they are recomputed on training batches.

The loop (`train.loop`) keeps the mean of the parameters as a dict of tensors beside the
model; buffers (batch-norm statistics) are not averaged.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

from tracker.core.model import FAN


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters by state-dict name, detached copies on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters()}


def fold_in(mean: dict[str, torch.Tensor] | None, n: int, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The running mean of `n` weights so far (None when n == 0) with `model`'s parameters
    added: mean + (w - mean) / (n + 1)."""
    w = parameters(model)
    if mean is None or n == 0:
        return w
    return {k: m + (w[k] - m) / (n + 1) for k, m in mean.items()}


@torch.no_grad()
def averaged_model(model: FAN, mean: dict[str, torch.Tensor], batches: Iterable[torch.Tensor]) -> FAN:
    """A new model with `model`'s architecture and buffers, the averaged parameters `mean`,
    and batch-norm statistics recomputed (a plain mean over `batches` of network inputs, in
    training mode); returned in eval mode on `model`'s device."""
    device = next(model.parameters()).device
    net = FAN(model.config).to(device)
    state = model.state_dict()
    state.update({k: v.to(device) for k, v in mean.items()})
    net.load_state_dict(state)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch weighs the same
    net.train()
    seen = 0
    for x in batches:
        net(x.to(device))
        seen += 1
    if norms and not seen:
        raise ValueError("no batches to recompute the batch-norm statistics on")
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return net.eval()
