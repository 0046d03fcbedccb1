"""CenterNet multi-pose network: DLA-34 backbone, DLA up-sampling with deformable convolutions, heads.

Written from the architecture description of CenterNet's ``pose_dla_dcn`` model (Zhou et al.,
"Objects as Points", 2019; Yu et al., "Deep Layer Aggregation", 2018) so that the official
``multi_pose_dla_3x.pth`` loads with identical keys and shapes:

- ``base``: DLA-34. ``base_layer`` (conv 7x7 3->16, BN, ReLU), ``level0`` (conv 3x3 16->16),
  ``level1`` (conv 3x3/2 16->32), then ``level2..level5`` as aggregation trees of BasicBlocks
  (levels 1, 2, 2, 1; channels 64, 128, 256, 512; each stage halves the resolution). A tree
  node's ``root`` concatenates (second child output, first child output, carried children) and
  fuses them with a 1x1 conv + BN + ReLU. ``base.fc`` (the ImageNet classifier) is not part of
  the model; checkpoints that carry it are accepted (see :func:`centernet_filter_fn`).
- ``dla_up``: three ``IDAUp`` stages (``ida_0..2``) that merge stride 32 -> 16 -> 8 -> 4;
  ``ida_up`` merges the three stride-4 outputs. Each merge step: ``proj_i`` (DeformConv to the
  target width), ``up_i`` (depthwise transposed conv, kernel 2f, stride f, padding f/2, no bias,
  bilinear init) and ``node_i`` (DeformConv after adding the previous level).
- heads on the 64-channel stride-4 map, each ``conv3x3(64->256, bias) -> ReLU -> conv1x1``:
  hm 1, wh 2, hps 34, reg 2, hm_hp 17, hp_offset 2 (raw logits; decoding lives in
  :mod:`pseudolabel.models.centernet_io`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from torch import nn

from pseudolabel.models.dcn import DCN

DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
MULTI_POSE_HEADS: dict[str, int] = {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}
HEAD_CONV = 256
DOWN_RATIO = 4
BN_MOMENTUM = 0.1


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is None:
            residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv over the concatenated inputs, BN, (optional residual), ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, residual: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, bias=False,
                              padding=(kernel_size - 1) // 2)  # fmt: skip
        self.bn = _bn(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(torch.cat(xs, 1)))
        if self.residual:
            out = out + xs[0]
        return self.relu(out)


class Tree(nn.Module):
    """A DLA aggregation tree of ``levels`` depth (hierarchical deep aggregation)."""

    def __init__(
        self, levels: int, in_channels: int, out_channels: int, stride: int = 1, level_root: bool = False,
        root_dim: int = 0, root_kernel_size: int = 1, dilation: int = 1, root_residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        self.tree1: nn.Module
        self.tree2: nn.Module
        if levels == 1:
            self.tree1 = BasicBlock(in_channels, out_channels, stride, dilation=dilation)
            self.tree2 = BasicBlock(out_channels, out_channels, 1, dilation=dilation)
        else:
            self.tree1 = Tree(
                levels - 1,
                in_channels,
                out_channels,
                stride,
                root_dim=0,
                root_kernel_size=root_kernel_size,
                dilation=dilation,
                root_residual=root_residual,
            )
            self.tree2 = Tree(levels - 1, out_channels, out_channels, root_dim=root_dim + out_channels,
                              root_kernel_size=root_kernel_size, dilation=dilation, root_residual=root_residual)  # fmt: skip
        if levels == 1:
            self.root = Root(root_dim, out_channels, root_kernel_size, root_residual)
        self.level_root = level_root
        self.levels = levels
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        # the checkpoint holds ``project`` wherever the width changes, even where (levels > 1) its
        # output is not used because the first subtree computes its own residual
        self.project = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=1, bias=False), _bn(out_channels))
            if in_channels != out_channels
            else None
        )

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        children: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            residual = self.project(bottom) if self.project is not None else bottom
            x1 = self.tree1(x, residual)
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)  # a subtree: computes its own residual (this level's project is unused)
        children.append(x1)
        return self.tree2(x1, children=children)


def _conv_level(inplanes: int, planes: int, convs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(convs):
        mods += [
            nn.Conv2d(inplanes, planes, 3, stride=stride if i == 0 else 1, padding=dilation, bias=False,
                      dilation=dilation),
            _bn(planes),
            nn.ReLU(inplace=True),
        ]  # fmt: skip
        inplanes = planes
    return nn.Sequential(*mods)


class DLA(nn.Module):
    """DLA backbone (DLA-34 by default); returns the six level outputs (strides 1, 2, 4, 8, 16, 32)."""

    def __init__(
        self, levels: tuple[int, ...] = DLA34_LEVELS, channels: tuple[int, ...] = DLA34_CHANNELS
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, stride=1, padding=3, bias=False),
            _bn(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.level0 = _conv_level(channels[0], channels[0], levels[0])
        self.level1 = _conv_level(channels[0], channels[1], levels[1], stride=2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.base_layer(x)
        out = []
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            out.append(x)
        return out


class DeformConv(nn.Module):
    """DCN 3x3 followed by BN + ReLU; ``actf`` is registered before ``conv`` (checkpoint order)."""

    def __init__(self, chi: int, cho: int) -> None:
        super().__init__()
        self.actf = nn.Sequential(_bn(cho), nn.ReLU(inplace=True))
        self.conv = DCN(chi, cho, kernel_size=3, stride=1, padding=1, dilation=1, deformable_groups=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.actf(self.conv(x))


def _bilinear_up_init(up: nn.ConvTranspose2d) -> None:
    """Bilinear interpolation kernel in every (depthwise) channel, as CenterNet initialises ``up``."""
    w = up.weight.data
    k = w.size(2)
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    coords = torch.arange(k, dtype=torch.float64)
    line = 1 - (coords / f - c).abs()
    w.copy_((line[:, None] * line[None, :]).to(w.dtype).expand_as(w))


class IDAUp(nn.Module):
    """Iterative deep aggregation: brings ``layers[startp+1:endp]`` to the width ``o`` and the
    resolution of ``layers[startp]``, merging each into the previous (in place in the list)."""

    def __init__(self, o: int, channels: list[int], up_f: list[int]) -> None:
        super().__init__()
        for i in range(1, len(channels)):
            f = int(up_f[i])
            setattr(self, f"proj_{i}", DeformConv(int(channels[i]), o))
            up = nn.ConvTranspose2d(
                o, o, f * 2, stride=f, padding=f // 2, output_padding=0, groups=o, bias=False
            )
            _bilinear_up_init(up)
            setattr(self, f"up_{i}", up)
            setattr(self, f"node_{i}", DeformConv(o, o))

    def forward(self, layers: list[torch.Tensor], startp: int, endp: int) -> None:
        for i in range(startp + 1, endp):
            j = i - startp
            layers[i] = getattr(self, f"up_{j}")(getattr(self, f"proj_{j}")(layers[i]))
            layers[i] = getattr(self, f"node_{j}")(layers[i] + layers[i - 1])


class DLAUp(nn.Module):
    def __init__(self, startp: int, channels: list[int], scales: list[int]) -> None:
        super().__init__()
        self.startp = startp
        channels = list(channels)
        in_channels = list(channels)
        scales = list(scales)
        for i in range(len(channels) - 1):
            j = len(channels) - i - 2  # the level this stage merges into (from the deepest upwards)
            setattr(
                self, f"ida_{i}", IDAUp(channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]])
            )
            scales[j + 1 :] = [scales[j]] * (len(scales) - j - 1)
            in_channels[j + 1 :] = [channels[j]] * (len(channels) - j - 1)

    def forward(self, layers: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [layers[-1]]
        for i in range(len(layers) - self.startp - 1):
            getattr(self, f"ida_{i}")(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


class CenterNetDLA(nn.Module):
    """DLA-34 + DLAUp + IDAUp + heads (CenterNet ``DLASeg``). Input (N, 3, H, W) with H, W multiples
    of 32; output: dict head -> (N, C, H/4, W/4) raw logits."""

    def __init__(self, heads: Mapping[str, int] | None = None, head_conv: int = HEAD_CONV) -> None:
        super().__init__()
        heads = dict(MULTI_POSE_HEADS if heads is None else heads)
        self.heads = heads
        self.first_level = int(math.log2(DOWN_RATIO))
        self.last_level = 5
        self.base = DLA()
        ch = list(self.base.channels)
        fl, ll = self.first_level, self.last_level
        self.dla_up = DLAUp(fl, ch[fl:], [2**i for i in range(len(ch) - fl)])
        self.ida_up = IDAUp(ch[fl], ch[fl:ll], [2**i for i in range(ll - fl)])
        for name, classes in heads.items():
            head = nn.Sequential(
                nn.Conv2d(ch[fl], head_conv, 3, padding=1, bias=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(head_conv, classes, 1, stride=1, padding=0, bias=True),
            )
            if "hm" in name:  # heatmap heads start at sigmoid ~ 0.1 (focal-loss prior)
                nn.init.constant_(head[-1].bias, -2.19)
            else:
                for m in head.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.normal_(m.weight, std=0.001)
                        nn.init.zeros_(m.bias)
            self.add_module(name, head)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(
                f"CenterNetDLA input height and width must be multiples of 32, got {tuple(x.shape[-2:])}"
            )
        levels = self.dla_up(self.base(x))
        y = [levels[i].clone() for i in range(self.last_level - self.first_level)]
        self.ida_up(y, 0, len(y))
        return {name: getattr(self, name)(y[-1]) for name in self.heads}


def build_centernet_dla34(heads: Mapping[str, int] | None = None) -> CenterNetDLA:
    """The multi-pose network of ``multi_pose_dla_3x.pth`` (random initialisation)."""
    return CenterNetDLA(heads)


# ---- checkpoint layout ---------------------------------------------------------------------------
_MODULE_PREFIX = re.compile(r"^module\.")
UNUSED_KEY_PREFIXES = ("base.fc.",)  # ImageNet classifier kept in CenterNet checkpoints


def centernet_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Pure checkpoint filter (timm ``checkpoint_filter_fn`` style) for CenterNet checkpoints.

    Unwraps ``{'state_dict': ...}`` when given the whole checkpoint, strips ``module.``, drops
    the unused ImageNet classifier ``base.fc`` and adds BN ``num_batches_tracked`` counters that
    pre-0.4.1 checkpoints lack; every other key is left untouched (the strict
    comparison with the model happens in :func:`pseudolabel.checkpoints.check_state_dict`).
    """
    sd = state_dict
    inner = sd.get("state_dict") if isinstance(sd, Mapping) else None
    if isinstance(inner, Mapping):
        sd = inner
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k = _MODULE_PREFIX.sub("", str(k))
        if k.startswith(UNUSED_KEY_PREFIXES):
            continue
        out[k] = v
    # checkpoints saved before PyTorch 0.4.1 lack BN ``num_batches_tracked`` (unused at inference):
    # PyTorch itself fills it in for such files, so do the same before the strict key comparison
    for k in list(out):
        if k.endswith(".running_mean"):
            nbt = k[: -len("running_mean")] + "num_batches_tracked"
            out.setdefault(nbt, torch.tensor(0, dtype=torch.long))
    return out


def infer_task(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Guess the CenterNet task a (remapped) state dict was trained for, from its head keys."""
    heads = {k.split(".", 1)[0] for k in state_dict if not k.startswith(("base.", "dla_up.", "ida_up."))}
    if "hps" in heads or "hm_hp" in heads:
        return "multi_pose"
    if "dep" in heads or "rot" in heads or "dim" in heads:
        return "ddd"
    if "hm_t" in heads or "hm_l" in heads:
        return "exdet"
    if "hm" in heads and "wh" in heads:
        n = state_dict.get("hm.2.weight")
        classes = int(n.shape[0]) if n is not None else -1
        return f"ctdet ({classes} classes)" if classes > 0 else "ctdet"
    return "unknown"
