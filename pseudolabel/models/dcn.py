"""Modulated deformable convolution (DCNv2) as CenterNet's DLA-34 up-sampling uses it.

Layout of the ``DCN`` module (matches the parameter names of CenterNet checkpoints):

- ``weight`` (C_out, C_in, kh, kw) and ``bias`` (C_out): the convolution itself;
- ``conv_offset_mask``: an ordinary convolution with the same kernel/stride/padding producing
  ``3 * kh * kw`` channels per deformable group (27 for 3x3). The first two thirds are the
  offsets, interleaved per kernel tap as (dy, dx); the last third passes through a sigmoid and
  becomes the modulation mask.

The operator: for output pixel (i, j) and kernel tap k = (u, v), the input is sampled bilinearly at
``(i * stride - pad + u * dilation + dy_k, j * stride - pad + v * dilation + dx_k)`` (zero outside
the image, corner by corner), multiplied by ``mask_k`` and by ``weight[:, :, u, v]``, summed, plus
``bias``. ``torchvision.ops.deform_conv2d`` computes exactly this; when torchvision is not
importable (it is an optional extra, and PyPI's torchvision often does not match the installed
torch), :func:`deform_conv2d_torch` computes it with ``grid_sample`` in pure PyTorch. The fallback
is not an error: it gives the same numbers (tested against an explicit per-pixel reference and,
when available, against torchvision), only more slowly and with more memory.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d_torch(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pure-PyTorch modulated deformable convolution with torchvision's signature and layout.

    ``x`` (N, C, H, W); ``offset`` (N, 2*G*kh*kw, Ho, Wo) as (dy, dx) pairs per tap and group;
    ``weight`` (Co, C/groups... here C, kh, kw; grouped convolution is not supported);
    ``mask`` (N, G*kh*kw, Ho, Wo) or None (all ones).
    """
    n, c, h, w = x.shape
    co, ci, kh, kw = weight.shape
    if ci != c:
        raise ValueError(
            f"deform_conv2d: weight expects {ci} input channels, input has {c} (groups are not supported)"
        )
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    taps = kh * kw
    ho, wo = offset.shape[-2:]
    if offset.shape[1] % (2 * taps):
        raise ValueError(
            f"deform_conv2d: offset has {offset.shape[1]} channels, not a multiple of {2 * taps}"
        )
    groups = offset.shape[1] // (2 * taps)
    if c % groups:
        raise ValueError(f"deform_conv2d: {c} channels are not divisible into {groups} offset groups")
    if mask is None:
        mask = x.new_ones(n, groups * taps, ho, wo)

    dtype = x.dtype
    # sampling positions (pixel-index coordinates), (N, G, taps, Ho, Wo)
    off = offset.reshape(n, groups, taps, 2, ho, wo).to(dtype)
    base_y = torch.arange(ho, device=x.device, dtype=dtype) * sh - ph
    base_x = torch.arange(wo, device=x.device, dtype=dtype) * sw - pw
    ku = (torch.arange(kh, device=x.device, dtype=dtype) * dh).repeat_interleave(kw)  # tap -> row offset
    kv = (torch.arange(kw, device=x.device, dtype=dtype) * dw).repeat(kh)  # tap -> column offset
    py = base_y.view(1, 1, 1, ho, 1) + ku.view(1, 1, taps, 1, 1) + off[:, :, :, 0]
    px = base_x.view(1, 1, 1, 1, wo) + kv.view(1, 1, taps, 1, 1) + off[:, :, :, 1]
    # grid_sample(align_corners=False): normalised = (2 * index + 1) / size - 1
    gx = (2 * px + 1) / w - 1
    gy = (2 * py + 1) / h - 1
    grid = torch.stack((gx, gy), dim=-1)  # (N, G, taps, Ho, Wo, 2)
    grid = grid.reshape(n * groups, taps * ho, wo, 2)
    xg = x.reshape(n * groups, c // groups, h, w)
    sampled = F.grid_sample(xg, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # (N*G, C/G, taps*Ho, Wo) -> (N, G, C/G, taps, Ho*Wo)
    sampled = sampled.reshape(n, groups, c // groups, taps, ho * wo)
    sampled = sampled * mask.reshape(n, groups, 1, taps, ho * wo).to(dtype)
    cols = sampled.reshape(n, c * taps, ho * wo)  # channel-major, tap-minor: matches weight.flatten(1)
    out = torch.matmul(weight.reshape(co, c * taps).to(dtype), cols)
    if bias is not None:
        out = out + bias.to(dtype).view(1, co, 1)
    return out.reshape(n, co, ho, wo)


@functools.cache
def _torchvision_op() -> Callable | None:
    """torchvision.ops.deform_conv2d when torchvision imports cleanly, else None (no error)."""
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # missing, or built against another torch (its C++ ops fail to register)
        return None
    return deform_conv2d


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Dispatch to torchvision's op (``backend="auto"`` when importable, or ``"torchvision"``) or the fallback."""
    if backend not in ("auto", "torch", "torchvision"):
        raise ValueError(f"deform_conv2d backend must be auto, torch or torchvision, got {backend!r}")
    op = _torchvision_op() if backend != "torch" else None
    if backend == "torchvision" and op is None:
        from gaitdata.errors import MissingDependencyError

        raise MissingDependencyError(
            "backend='torchvision' asked for, but torchvision.ops is not importable with this torch; "
            "use backend='auto' (pure-PyTorch fallback) or install a torchvision built for your torch"
        )
    if op is not None:
        return op(x, offset, weight, bias, stride=_pair(stride), padding=_pair(padding),
                  dilation=_pair(dilation), mask=mask)  # fmt: skip
    return deform_conv2d_torch(x, offset, weight, bias, stride, padding, dilation, mask)


def deform_backend() -> str:
    """Which implementation ``backend='auto'`` uses here: ``"torchvision"`` or ``"torch"``."""
    return "torchvision" if _torchvision_op() is not None else "torch"


class DCN(nn.Module):
    """Modulated deformable conv v2 with its own offset/mask predictor (CenterNet's ``DCN`` layout)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        deformable_groups: int = 1,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.backend = backend
        # parameters first, then the offset/mask predictor: the checkpoint's key order
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(
            in_channels, deformable_groups * 3 * kh * kw, (kh, kw), stride=stride, padding=padding,
            dilation=dilation, bias=True,
        )  # fmt: skip
        stdv = 1.0 / math.sqrt(in_channels * kh * kw)
        nn.init.uniform_(self.weight, -stdv, stdv)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.conv_offset_mask(x)
        n_off = om.shape[1] * 2 // 3
        offset, mask = om[:, :n_off], torch.sigmoid(om[:, n_off:])
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             mask, backend=self.backend)  # fmt: skip
