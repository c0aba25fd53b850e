"""Batch norm over the global batch of a data-parallel run, on any device.

In training, batch norm normalises by the statistics of the batch it sees. Under DDP each rank
sees only its slice, so plain BN would train a different model than one process with the same
global batch; synchronised BN all-reduces the statistics so every rank normalises by the global
batch's mean and variance and updates its running statistics exactly as one process would.
`torch.nn.SyncBatchNorm` does that on GPUs only; `SyncBatchNorm2d` here does it with plain
collectives (gloo on CPU, or any backend). `convert` picks torch's on CUDA and this one
elsewhere.

Gradients: the backward all-reduces the sums of dy and dy * x_hat, so that each rank's input
gradient is that of the sum of all ranks' losses; the weight and bias gradients stay this
rank's own, which DDP then averages, as for every other parameter (the same split as
`torch.nn.SyncBatchNorm`).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

_DIMS = (0, 2, 3)  # every axis of (B, C, H, W) but the channel


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v[None, :, None, None]  # (C,) -> (1, C, 1, 1)


class _GlobalBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps: float, momentum: float):
        c = x.shape[1]
        # each rank's count, mean and sum of squared deviations, combined exactly (Chan et al.):
        # one collective, and no cancellation as in E[x^2] - E[x]^2
        mean_r = x.mean(_DIMS)  # (C,)
        m2_r = ((x - _per_channel(mean_r)) ** 2).sum(_DIMS)  # (C,)
        mine = torch.cat([x.new_tensor([x.numel() // c]), mean_r, m2_r]).double()  # (2C + 1,)
        ranks = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(ranks, mine)
        per = torch.stack(ranks)  # (world, 2C + 1)
        n_r, means, m2s = per[:, :1], per[:, 1:c + 1], per[:, c + 1:]
        n = n_r.sum()
        mean = (n_r * means).sum(0) / n
        var = (m2s.sum(0) + (n_r * (means - mean) ** 2).sum(0)) / n  # (C,), biased
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.to(x.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_((var * n / (n - 1)).to(x.dtype), alpha=momentum)  # unbiased
        mean, invstd = mean.to(x.dtype), torch.rsqrt(var + eps).to(x.dtype)
        xhat = (x - _per_channel(mean)) * _per_channel(invstd)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.n = float(n)
        return xhat * _per_channel(weight) + _per_channel(bias)

    @staticmethod
    def backward(ctx, dy):
        xhat, invstd, weight = ctx.saved_tensors
        c, n = dy.shape[1], ctx.n
        sums = torch.cat([dy.sum(_DIMS), (dy * xhat).sum(_DIMS)])  # (2C,)
        grad_bias, grad_weight = sums[:c].clone(), sums[c:].clone()  # this rank's; DDP averages
        dist.all_reduce(sums)
        mean_dy, mean_dy_xhat = sums[:c] / n, sums[c:] / n
        dx = (dy - _per_channel(mean_dy) - xhat * _per_channel(mean_dy_xhat)) * _per_channel(weight * invstd)
        return dx, grad_weight, grad_bias, None, None, None, None


class SyncBatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` (affine, with running statistics) that, in training under a process
    group of more than one rank, normalises (B, C, H, W) input by the global batch's statistics;
    otherwise exactly `nn.BatchNorm2d`. Same parameters, buffers and state_dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return _GlobalBatchNorm.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                      self.eps, momentum)


def convert(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every `nn.BatchNorm2d` inside `module` (in place; the root is returned) by a
    synchronised one sharing its parameters and buffers, so an optimiser built on the module
    stays valid: `torch.nn.SyncBatchNorm` on CUDA, `SyncBatchNorm2d` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            if not (child.affine and child.track_running_stats):
                raise ValueError(f"{name}: synchronised batch norm needs affine=True and running stats")
            sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum)
            sync.weight, sync.bias = child.weight, child.bias
            sync.running_mean, sync.running_var = child.running_mean, child.running_var
            sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            convert(child, device)
    return module
