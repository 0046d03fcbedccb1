"""Data-parallel training across the processes that ``torchrun`` starts (one per GPU, or per CPU process).

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every
process; :func:`launch_from_env` reads them and :func:`init_group` joins the process group (NCCL on
CUDA, Gloo on CPU). The trainer then:

- gives each process a disjoint shard of every epoch's order (``trainer._EpochSampler``, like
  ``torch.utils.data.DistributedSampler``: the order is padded by repeating its first samples so
  that every process takes the same number of steps);
- wraps the model in ``DistributedDataParallel``, which averages the gradients of the processes;
- normalises batch norm over the global batch (:func:`sync_batch_norm`), so that N processes with
  batch B take the same step as one process with batch N x B (per-process statistics would differ
  from the global batch's, and a student's small per-GPU batch makes them noisy);
- reports losses averaged over the processes (:func:`mean_over_ranks`); rank 0 alone writes files.

``torch.nn.SyncBatchNorm`` runs on CUDA only; :class:`GlobalBatchNorm2d` does the same with any
backend (one all-reduce of per-channel sums in the forward pass, one of their gradients in the
backward pass) and is used on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gaitdata.errors import GaitdataError


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun job (rank 0 of 1 when started without torchrun)."""

    rank: int
    local_rank: int
    world: int


def launch_from_env() -> Launch:
    """The rank, local rank and world size torchrun set (a plain run is rank 0 of 1)."""
    values = {}
    for name, default in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        raw = os.environ.get(name, default)
        try:
            values[name] = int(raw)
        except ValueError:
            raise GaitdataError(
                f"environment variable {name}={raw!r} is not an integer; launch multi-process training with "
                f"torchrun, which sets it, or unset it for a single process"
            ) from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise GaitdataError(
            f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a job; launch with torchrun"
        )
    return Launch(rank, values["LOCAL_RANK"], world)


def init_group(device: torch.device) -> bool:
    """Join the process group of this torchrun job (NCCL on CUDA, Gloo otherwise) and wait for every
    process; True when this call created the group (the caller destroys it with :func:`close_group`).

    Under torchrun the other ranks first wait, without a time limit, for rank 0 to arrive here (it
    may queue for the dataset root's lock for hours), so that the process group's timeout bounds
    only the training's own collectives."""
    if dist.is_initialized():
        return False
    _wait_for_rank0(launch_from_env())
    if device.type == "cuda":
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    dist.barrier()
    return True


def _wait_for_rank0(launch: Launch) -> None:
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":  # not torchrun's store: nothing to wait on
        return
    from datetime import timedelta

    forever = timedelta(days=365)
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=forever)
    key = f"gaitdata/train/rank0-ready/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if launch.rank == 0:
        store.set(key, "1")
    else:
        store.wait([key], forever)


def close_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the processes (returned as is in a single process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every process's ``obj``, in rank order, on rank 0 (None on the other ranks)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    rank = dist.get_rank()
    out: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes; the gradient of each input is the sum of every process's output gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch of every process together.

    In training mode inside a process group of more than one process, the per-channel sums of
    ``x - running_mean`` and of its square (float32) are summed over the processes; mean and
    (biased) variance of the global batch normalise the input, and the running statistics are
    updated with them (unbiased variance), identically on every process. The sums are differentiable,
    so the backward pass carries each process's share of the gradient through the others' inputs.
    Outside a process group, or in eval mode, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        shift = (
            self.running_mean.detach().float() if self.running_mean is not None else x.new_zeros(c, dtype=torch.float32)
        )
        xs = x.float() - shift[None, :, None, None]
        local = torch.cat([xs.sum((0, 2, 3)), (xs * xs).sum((0, 2, 3)), xs.new_full((1,), float(x.numel() // c))])
        total = _AllReduceSum.apply(local)
        n = total[-1]
        mean_s = total[:c] / n
        var = (total[c : 2 * c] / n - mean_s * mean_s).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked.item())
                mean = (mean_s + shift).detach()
                unbiased = var.detach() * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        y = (xs - mean_s[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batch_norm(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` with every BatchNorm2d normalising over the global batch (in place; parameters and buffers kept).

    CUDA: ``torch.nn.SyncBatchNorm``; other devices: :class:`GlobalBatchNorm2d`.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    _convert(net)
    return net


def _convert(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                device=child.weight.device if child.affine else None,
            )  # fmt: skip
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            _convert(child)
