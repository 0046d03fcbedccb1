"""Channel pruning of a student: which channels can go, how to choose them under a budget, and how
to build the physically smaller network.

Two ways to choose:

- :func:`select_channels` (network slimming): one global threshold on the batch-norm scales
  |gamma| removes a fraction of all prunable channels. Training with ``slim_l1 > 0`` applies L1 to
  those scales (a decoupled soft threshold after each optimiser step), so that unimportant channels
  have small scales.
- :func:`select_budget`: a real budget in multiply-accumulates. Each group's units are ranked by an
  importance score (:func:`taylor_importance`: first-order Taylor estimate of the loss change when
  a channel's batch-norm output is removed, Molchanov et al. 2019; or |gamma|); blocks of
  ``round_to`` channels are removed greedily, cheapest importance per MAC saved first, until the
  network's MACs reach the target, never taking a group below its floor (``min_keep`` of its
  original width). :mod:`gaitdata.student.compression` runs it in rounds, each followed by
  fine-tuning with distillation from the fp32 model.

What is prunable (and what is not):

- ResNet basic blocks: the middle channels (conv1 -> conv2). The residual stream (block outputs,
  stem, downsample) is never pruned, so every addition still sees matching channels.
- MobileNetV2 blocks: the expanded channels (expand 1x1 -> depthwise 3x3 -> project 1x1); scored by
  the depthwise block's batch norm. The final backbone conv (``last``) as well.
- Heads: the output planes of every DUC / deconvolution stage. A DUC conv produces ``planes * r^2``
  channels that PixelShuffle folds into ``planes``: its channels are pruned in whole groups of
  r^2 (scored by the mean |gamma| of the group), so the conv's output stays a multiple of r^2. The
  backbone's ``last`` conv feeding the first PixelShuffle is grouped the same way (4 channels).

A removed channel whose scale is ~0 still emits the constant ``relu(beta)``; its contribution is
folded into the consumer (the next batch norm's running mean, or the output conv's bias), so
pruning changes the outputs as little as possible before fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gaitdata.errors import GaitdataError


@dataclass(frozen=True)
class Group:
    """One prunable channel group of a :class:`StudentNet`."""

    name: str  # key of StudentArch.widths
    chunk: int  # channels per prunable unit (r^2 for channels feeding a PixelShuffle, else 1)
    score_bn: str  # prefix of the batch norm whose |gamma| ranks the channels
    producers: tuple[tuple[str, int], ...]  # (state_dict key, dim) indexed by channel
    consumers: tuple[tuple[str, int], ...]  # (state_dict key, dim) indexed by unit (chunk)
    consumer_bias: tuple[str, str]  # ("bn", prefix) | ("bias", key) | ("none", "")


_BN = ("weight", "bias", "running_mean", "running_var")


def _bn_keys(prefix: str) -> list[tuple[str, int]]:
    return [(f"{prefix}.{k}", 0) for k in _BN]


def prunable_groups(model) -> list[Group]:
    """Every prunable group of a StudentNet, with the state_dict keys each one touches."""
    arch = model.arch
    groups: list[Group] = []
    bb = model.backbone
    if arch.backbone == "resnet":
        for si in range(len(arch.depths)):
            layer = getattr(bb, f"layer{si + 1}")
            for bi in range(len(layer)):
                p = f"backbone.layer{si + 1}.{bi}"
                groups.append(
                    Group(
                        f"l{si + 1}.b{bi}.mid", 1, f"{p}.conv1.1",
                        ((f"{p}.conv1.0.weight", 0), *_bn_keys(f"{p}.conv1.1")),
                        ((f"{p}.conv2.0.weight", 1),), ("bn", f"{p}.conv2.1"),
                    )
                )  # fmt: skip
        last = None
    else:
        for name, stage in bb.named_children():
            if not (name.startswith("s") and name[1:].isdigit()):
                continue
            for bi, block in enumerate(stage):
                if len(block.conv) != 3:  # no expansion: the hidden channels are the block's input
                    continue
                p = f"backbone.{name}.{bi}.conv"
                groups.append(
                    Group(
                        f"{name}.b{bi}.hidden", 1, f"{p}.1.1",
                        ((f"{p}.0.0.weight", 0), *_bn_keys(f"{p}.0.1"), (f"{p}.1.0.weight", 0), *_bn_keys(f"{p}.1.1")),
                        ((f"{p}.2.0.weight", 1),), ("bn", f"{p}.2.1"),
                    )
                )  # fmt: skip
        last = (
            "last",
            ((("backbone.last.0.weight", 0),) + tuple(_bn_keys("backbone.last.1"))),
            "backbone.last.1",
        )
    # head
    n = len([m for m in model.head if not _is_shuffle(m)])
    if arch.head == "duc":
        first_in = ("head.1.conv.weight", 1) if n else ("conv_out.weight", 1)
        first_bias = ("bn", "head.1.bn") if n else ("bias", "conv_out.bias")
        if last is not None:
            groups.append(Group("last", 4, last[2], last[1], (first_in,), first_bias))
        for i in range(n):
            p = f"head.{i + 1}"
            cons = (f"head.{i + 2}.conv.weight", 1) if i + 1 < n else ("conv_out.weight", 1)
            bias = ("bn", f"head.{i + 2}.bn") if i + 1 < n else ("bias", "conv_out.bias")
            r2 = model.head[i + 1].r ** 2
            groups.append(
                Group(
                    f"head.up{i}",
                    r2,
                    f"{p}.bn",
                    ((f"{p}.conv.weight", 0), *_bn_keys(f"{p}.bn")),
                    (cons,),
                    bias,
                )
            )
    else:
        if last is not None:
            groups.append(Group("last", 1, last[2], last[1], (("head.0.0.weight", 0),), ("none", "")))
        for i in range(n):
            p = f"head.{i}"
            cons = (f"head.{i + 1}.0.weight", 0) if i + 1 < n else ("conv_out.weight", 1)
            bias = ("none", "") if i + 1 < n else ("bias", "conv_out.bias")
            groups.append(
                Group(f"head.up{i}", 1, f"{p}.1", ((f"{p}.0.weight", 1), *_bn_keys(f"{p}.1")), (cons,), bias)
            )
    return groups


def _is_shuffle(m) -> bool:
    from torch import nn

    return isinstance(m, nn.PixelShuffle)


def prunable_bns(model) -> list:
    """The batch norms whose scales network slimming penalises (L1) and ranks."""
    mods = dict(model.named_modules())
    return [mods[g.score_bn] for g in prunable_groups(model)]


def channel_scores(model) -> dict[str, np.ndarray]:
    """Per group: |gamma| per prunable unit (mean over a chunk)."""
    sd = model.state_dict()
    out = {}
    for g in prunable_groups(model):
        gamma = sd[f"{g.score_bn}.weight"].detach().abs().float().cpu().numpy()
        out[g.name] = gamma.reshape(-1, g.chunk).mean(1)
    return out


def select_channels(model, ratio: float, min_keep: float = 0.1, round_to: int = 8) -> dict[str, np.ndarray]:
    """Units (chunks) to keep per group: one global |gamma| threshold removing ``ratio`` of all
    prunable channels (chunks weighted by their size); each group keeps >= ``min_keep`` of its units,
    and its kept channel count is rounded up to a multiple of ``round_to`` (odd widths run slower
    on CPU convolution kernels than the larger round ones)."""
    if not 0.0 <= ratio < 1.0:
        raise GaitdataError(f"prune ratio must be in [0, 1), got {ratio}")
    groups = {g.name: g for g in prunable_groups(model)}
    scores = channel_scores(model)
    flat = np.concatenate([np.repeat(s, groups[n].chunk) for n, s in scores.items()])
    thr = np.quantile(flat, ratio) if ratio > 0 else -np.inf
    keep = {}
    for name, s in scores.items():
        k = np.flatnonzero(s > thr) if ratio > 0 else np.arange(len(s))
        need = max(1, math.ceil(min_keep * len(s)), len(k))
        step = max(1, round_to // groups[name].chunk)
        need = min(len(s), math.ceil(need / step) * step)
        if len(k) != need:
            k = np.sort(np.argsort(-s, kind="stable")[:need])
        keep[name] = k
    return keep


def prune(model, keep: dict[str, np.ndarray]):
    """A new, physically smaller StudentNet keeping the given units of each group (weights copied)."""
    import torch

    from gaitdata.student.models import StudentNet

    groups = prunable_groups(model)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    widths = dict(model.widths)
    for g in groups:
        n_units = sd[f"{g.score_bn}.weight"].shape[0] // g.chunk
        units = np.sort(np.asarray(keep.get(g.name, np.arange(n_units)), dtype=np.int64))
        if len(units) == 0:
            raise GaitdataError(f"pruning would remove every channel of {g.name}; lower the ratio")
        removed = np.setdiff1d(np.arange(n_units), units)
        ch = torch.as_tensor(
            (units[:, None] * g.chunk + np.arange(g.chunk)[None, :]).reshape(-1), dtype=torch.long
        )
        idx_units = torch.as_tensor(units, dtype=torch.long)
        # fold the constant output relu(beta) of removed channels into the consumer
        if len(removed) and g.consumer_bias[0] != "none":
            beta = sd[f"{g.score_bn}.bias"].float()
            const = torch.relu(beta).reshape(n_units, g.chunk)  # what a removed unit still emits
            w_key, _ = g.consumers[0]
            w = sd[w_key].float()  # (out, in_units, kh, kw)
            rem = torch.as_tensor(removed, dtype=torch.long)
            if g.chunk == 1:
                delta = (w[:, rem].sum((2, 3)) * const[rem, 0]).sum(1)
            else:  # after PixelShuffle a unit is one plane; its r^2 sub-pixels average into it
                delta = (w[:, rem].sum((2, 3)) * const[rem].mean(1)).sum(1)
            kind, target = g.consumer_bias
            if kind == "bn":
                sd[f"{target}.running_mean"] -= delta.to(sd[f"{target}.running_mean"].dtype)
            else:
                sd[target] += delta.to(sd[target].dtype)
        for key, dim in g.producers:
            sd[key] = sd[key].index_select(dim, ch)
        for key, dim in g.consumers:
            sd[key] = sd[key].index_select(dim, idx_units)
        widths[g.name] = len(units) if g.name.startswith("head.") else len(ch)
    arch = replace(model.arch, widths=widths)
    new = StudentNet(arch)
    new.load_state_dict(sd, strict=True)
    return new.eval()


def slim_model(model, ratio: float = 0.5, min_keep: float = 0.1):
    """Select by global BN-scale threshold and prune; returns the smaller model."""
    return prune(model, select_channels(model, ratio, min_keep))


# ------------------------------------------------------------------------------------------------
# a MAC budget


def unit_macs(model) -> dict[str, float]:
    """MACs saved per removed unit of each group, measured by counting a copy one block narrower."""
    from gaitdata.student.models import StudentNet, count_flops

    base = count_flops(model)
    out = {}
    for g in prunable_groups(model):
        width = model.widths[g.name]
        unit_w = 1 if g.name.startswith("head.") else g.chunk  # head widths count units, others channels
        if width - unit_w < 1:
            out[g.name] = 0.0
            continue
        arch = replace(model.arch, widths={**model.widths, g.name: width - unit_w})
        out[g.name] = float(base - count_flops(StudentNet(arch)))
    return out


def taylor_importance(model, batches, loss_fn) -> dict[str, np.ndarray]:
    """Per group, per unit: |(gamma * dL/dgamma + beta * dL/dbeta)| of its scoring batch norm,
    averaged over ``batches`` (each ``loss_fn(model, batch)`` -> scalar loss); the first-order
    estimate of the loss change when the unit's output is removed."""
    import torch

    groups = prunable_groups(model)
    mods = dict(model.named_modules())
    acc = {g.name: np.zeros(mods[g.score_bn].weight.shape[0]) for g in groups}
    was = model.training
    model.eval()  # batch statistics of the running model, not of the batch
    n = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        with torch.no_grad():
            for g in groups:
                bn = mods[g.score_bn]
                t = bn.weight * bn.weight.grad + bn.bias * bn.bias.grad
                acc[g.name] += t.abs().cpu().numpy()
        n += 1
    model.zero_grad(set_to_none=True)
    model.train(was)
    return {g.name: (acc[g.name] / max(1, n)).reshape(-1, g.chunk).sum(1) for g in groups}


def select_budget(
    model,
    target_macs: float,
    importance: dict[str, np.ndarray],
    floors: dict[str, int],
    round_to: int = 8,
    normalize: bool = False,
) -> dict[str, np.ndarray]:
    """Units to keep per group so that the network has at most ``target_macs`` MACs.

    Blocks of ``round_to`` channels (whole pixel-shuffle groups in the head) are removed greedily,
    least ``importance`` per MAC saved first (Taylor importances estimate a loss change and compare
    across layers as they are; ``normalize`` divides each group's by its mean, for scores such as
    |gamma| whose scale differs from layer to layer), never below ``floors[group]`` units. Stops early when every group is at
    its floor (the budget is then not met: the caller checks the result's MACs).
    """
    from gaitdata.student.models import count_flops

    groups = {g.name: g for g in prunable_groups(model)}
    per_unit = unit_macs(model)
    keep = {n: np.arange(len(importance[n])) for n in groups}
    if normalize:
        norm = {n: importance[n] / max(float(np.mean(importance[n])), 1e-12) for n in groups}
    else:
        norm = {n: np.asarray(importance[n], np.float64) for n in groups}
    macs = float(count_flops(model))
    while macs > target_macs:
        best, best_score, best_block = None, np.inf, None
        for n, g in groups.items():
            step = max(1, round_to // g.chunk) if g.chunk > 1 else round_to
            k = keep[n]
            if len(k) - step < max(1, floors.get(n, 1)) or per_unit.get(n, 0) <= 0:
                continue
            order = k[np.argsort(norm[n][k], kind="stable")]
            block = order[:step]
            score = float(norm[n][block].sum()) / (per_unit[n] * step)
            if score < best_score:
                best, best_score, best_block = n, score, block
        if best is None:
            break
        keep[best] = np.setdiff1d(keep[best], best_block)
        macs -= per_unit[best] * len(best_block)
    return keep
