"""Student SPPEs of the FastPose family: a small backbone + pixel-shuffle (DUC) or deconvolution head.

Every network is built from an explicit :class:`StudentArch` (frozen, JSON-serialisable): the
backbone kind, the channel width of every prunable group and the head. Network slimming rewrites the
widths and builds a physically smaller model from the same description, so a pruned checkpoint
is just another ``StudentArch`` plus its weights.

Layout (FastPose, scaled down)::

    image (3, H, W) -> backbone (C, H/s, W/s) -> PixelShuffle(2) -> [DUC: conv3x3 -> BN -> ReLU ->
    PixelShuffle(2)] x n -> conv3x3 -> K heatmaps at (H/4, W/4)

with ``s`` the backbone's output stride (16 or 32) and ``n = log2(s/4) - 1``. The deconvolution head
(SimpleBaseline style) replaces shuffle + DUC by ``log2(s/4)`` stride-2 transposed convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from gaitdata.errors import GaitdataError

# ------------------------------------------------------------------------------------------------
# architecture description


@dataclass(frozen=True)
class StudentArch:
    """Everything needed to rebuild a student network (weights aside).

    ``widths`` maps each prunable channel group to its width; missing entries take the defaults of
    the backbone at ``width_mult``. Group names are stable, e.g. ``stem``, ``l2.b0.mid``, ``head.duc0``.
    """

    backbone: str  # "resnet" | "mobilenetv2"
    depths: tuple[int, ...]  # blocks per stage
    width_mult: float = 1.0
    head: str = "duc"  # "duc" | "deconv"
    head_channels: tuple[int, ...] = (128, 64)  # per up-sampling stage after the shuffle / deconv
    input_size: tuple[int, int] = (256, 192)  # (height, width)
    num_keypoints: int = 17
    output_stride: int = 32  # of the backbone: 16 or 32
    widths: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in ("resnet", "mobilenetv2"):
            raise GaitdataError(f"unknown backbone {self.backbone!r}; valid: resnet, mobilenetv2")
        if self.head not in ("duc", "deconv"):
            raise GaitdataError(f"unknown head {self.head!r}; valid: duc, deconv")
        if self.output_stride not in (16, 32):
            raise GaitdataError(f"output_stride must be 16 or 32, got {self.output_stride}")
        n_up = int(math.log2(self.output_stride // 4))
        need = n_up - 1 if self.head == "duc" else n_up
        if len(self.head_channels) < need:
            raise GaitdataError(
                f"head {self.head} at output stride {self.output_stride} needs {need} head_channels, "
                f"got {self.head_channels}"
            )
        h, w = self.input_size
        if h % self.output_stride or w % self.output_stride:
            raise GaitdataError(
                f"input size {h}x{w} is not divisible by the backbone output stride {self.output_stride}; "
                f"use a multiple of {self.output_stride} (e.g. 256x192, 128x96) or output_stride=16"
            )

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // 4, self.input_size[1] // 4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["depths"] = list(self.depths)
        d["head_channels"] = list(self.head_channels)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentArch:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise GaitdataError(f"student architecture has unknown fields {sorted(unknown)}")
        d = dict(d)
        d["depths"] = tuple(d["depths"])
        d["head_channels"] = tuple(d.get("head_channels", (128, 64)))
        d["input_size"] = tuple(d.get("input_size", (256, 192)))
        d["widths"] = {str(k): int(v) for k, v in d.get("widths", {}).items()}
        return cls(**d)


def _round(c: float, divisor: int = 8, minimum: int = 8) -> int:
    return max(minimum, int(c + divisor / 2) // divisor * divisor)


def default_widths(arch: StudentArch) -> dict[str, int]:
    """Width of every prunable group before slimming (``arch.widths`` overrides these)."""
    m = arch.width_mult
    w: dict[str, int] = {}
    if arch.backbone == "resnet":
        w["stem"] = _round(64 * m)
        for si, n in enumerate(arch.depths):
            for bi in range(n):
                w[f"l{si + 1}.b{bi}.mid"] = _round(64 * 2**si * m)
    else:
        for si, (_t, _c, n, _s) in enumerate(_mbv2_stages(arch)):
            for bi in range(n):
                t = _t
                cin = _mbv2_stage_out(arch, si - 1) if bi == 0 else _mbv2_stage_out(arch, si)
                if t != 1:
                    w[f"s{si}.b{bi}.hidden"] = cin * t
        w["last"] = _round(640 * m)
    for i, c in enumerate(arch.head_channels):
        w[f"head.up{i}"] = int(c)
    return w


# MobileNetV2 stages: expansion t, channels c, blocks n, stride s (the standard table; stride of the
# last two stages is set by output_stride)
_MBV2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _mbv2_stages(arch: StudentArch) -> list[tuple[int, int, int, int]]:
    stages = []
    for i, (t, c, n, s) in enumerate(_MBV2):
        n = arch.depths[i] if i < len(arch.depths) else n
        if i == 5 and arch.output_stride == 16:
            s = 1
        stages.append((t, c, n, s))
    return stages


def _mbv2_stage_out(arch: StudentArch, si: int) -> int:
    if si < 0:
        return _round(32 * arch.width_mult)
    return _round(_MBV2[si][1] * arch.width_mult)


# ------------------------------------------------------------------------------------------------
# building blocks


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block; the middle channel count (``mid``) is the prunable group."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = ConvBNReLU(cin, mid, 3, stride)
        self.conv2 = ConvBNReLU(mid, cout, 3, 1, relu=False)
        self.downsample = ConvBNReLU(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)
        self.add = _Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.add(self.conv2(self.conv1(x)), identity))


class InvertedResidual(nn.Module):
    """MobileNetV2 block; the expanded (``hidden``) channels are the prunable group."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int, expand: bool):
        super().__init__()
        layers: list[nn.Module] = []
        if expand:
            layers.append(ConvBNReLU(cin, hidden, 1))
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNReLU(hidden, cout, 1, relu=False),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout
        self.add = _Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.add(y, x) if self.use_res else y


class _Add(nn.Module):
    """A residual addition as a module (quantisation swaps it for a quantised add)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class DUC(nn.Module):
    """Dense up-sampling convolution: conv3x3 (out = planes * r^2) -> BN -> ReLU -> PixelShuffle(r)."""

    def __init__(self, cin: int, planes: int, r: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(cin, planes * r * r, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(planes * r * r)
        self.relu = nn.ReLU(inplace=True)
        self.shuffle = nn.PixelShuffle(r)
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.relu(self.bn(self.conv(x))))


class Deconv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


# ------------------------------------------------------------------------------------------------
# the network


class StudentNet(nn.Module):
    """A top-down SPPE: (B, 3, H, W) normalised crops -> (B, K, H/4, W/4) raw heatmaps."""

    def __init__(self, arch: StudentArch):
        super().__init__()
        self.arch = arch
        w = {**default_widths(arch), **arch.widths}
        self.widths = w
        if arch.backbone == "resnet":
            self.backbone, cout = self._resnet(arch, w)
        else:
            self.backbone, cout = self._mbv2(arch, w)
        n_up = int(math.log2(arch.output_stride // 4))
        head: list[nn.Module] = []
        if arch.head == "duc":
            if cout % 4:
                raise GaitdataError(f"DUC head needs backbone channels divisible by 4, got {cout}")
            head.append(nn.PixelShuffle(2))
            c = cout // 4
            for i in range(n_up - 1):
                head.append(DUC(c, w[f"head.up{i}"]))
                c = w[f"head.up{i}"]
        else:
            c = cout
            for i in range(n_up):
                head.append(Deconv(c, w[f"head.up{i}"]))
                c = w[f"head.up{i}"]
        self.head = nn.Sequential(*head)
        self.conv_out = nn.Conv2d(c, arch.num_keypoints, 3, 1, 1)
        self._init()

    @staticmethod
    def _resnet(arch: StudentArch, w: dict[str, int]) -> tuple[nn.Module, int]:
        m = arch.width_mult
        layers: dict[str, nn.Module] = {
            "stem": ConvBNReLU(3, w["stem"], 7, 2),
            "pool": nn.MaxPool2d(3, 2, 1),
        }
        cin = w["stem"]
        for si, n in enumerate(arch.depths):
            cout = _round(64 * 2**si * m)
            stride = 1 if si == 0 else 2
            if si == 3 and arch.output_stride == 16:
                stride = 1
            blocks = []
            for bi in range(n):
                blocks.append(BasicBlock(cin, w[f"l{si + 1}.b{bi}.mid"], cout, stride if bi == 0 else 1))
                cin = cout
            layers[f"layer{si + 1}"] = nn.Sequential(*blocks)
        if len(arch.depths) != 4:
            raise GaitdataError(f"resnet backbone needs 4 stage depths, got {arch.depths}")
        return nn.Sequential(_ordered(layers)), cin

    @staticmethod
    def _mbv2(arch: StudentArch, w: dict[str, int]) -> tuple[nn.Module, int]:
        layers: dict[str, nn.Module] = {"stem": ConvBNReLU(3, _mbv2_stage_out(arch, -1), 3, 2)}
        cin = _mbv2_stage_out(arch, -1)
        for si, (t, _c, n, s) in enumerate(_mbv2_stages(arch)):
            cout = _mbv2_stage_out(arch, si)
            blocks = []
            for bi in range(n):
                hidden = w.get(f"s{si}.b{bi}.hidden", cin)
                blocks.append(InvertedResidual(cin, hidden, cout, s if bi == 0 else 1, expand=t != 1))
                cin = cout
            layers[f"s{si}"] = nn.Sequential(*blocks)
        layers["last"] = ConvBNReLU(cin, w["last"], 1)
        return nn.Sequential(_ordered(layers)), w["last"]

    def _init(self) -> None:
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.conv_out.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.head(self.backbone(x)))


def _ordered(layers: dict[str, nn.Module]):
    from collections import OrderedDict

    return OrderedDict(layers)


# ------------------------------------------------------------------------------------------------
# registry


_REGISTRY: dict[str, Callable[..., StudentArch]] = {}


def register_student(name: str, factory: Callable[..., StudentArch] | None = None):
    """Register a student architecture factory (usable as a decorator). Factories take keyword
    overrides of :class:`StudentArch` fields and return the architecture."""

    def deco(f: Callable[..., StudentArch]) -> Callable[..., StudentArch]:
        if name in _REGISTRY and _REGISTRY[name] is not f:
            raise ValueError(f"student {name!r} is already registered")
        _REGISTRY[name] = f
        return f

    return deco(factory) if factory is not None else deco


def list_students() -> list[str]:
    return sorted(_REGISTRY)


def student_arch(name: str, **kw: Any) -> StudentArch:
    """The architecture a registered name stands for, with keyword overrides applied."""
    if name not in _REGISTRY:
        raise GaitdataError(f"unknown student model {name!r}; valid students: {', '.join(list_students())}")
    return _REGISTRY[name](**kw)


def create_student(name: str, **kw: Any) -> StudentNet:
    """Create a student network by registered name; keyword arguments override :class:`StudentArch` fields,
    e.g. ``create_student("fastpose_res18_w050", input_size=(128, 96), width_mult=0.25)``."""
    return StudentNet(student_arch(name, **kw))


def _preset(**base: Any) -> Callable[..., StudentArch]:
    def factory(**kw: Any) -> StudentArch:
        for k in ("input_size", "depths", "head_channels"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        d = {**base, **{k: v for k, v in kw.items() if v is not None}}
        h, w = d.get("input_size", (256, 192))
        os_ = d.get("output_stride", 32)
        if "output_stride" not in kw and (h % os_ or w % os_) and not (h % 16 or w % 16):
            # small inputs such as 192x144 or 64x48: stop the backbone at stride 16, one up-stage less
            d["output_stride"] = 16
            if "head_channels" not in kw:
                hc = tuple(d.get("head_channels", (128, 64)))
                d["head_channels"] = hc[1:] if len(hc) > 1 else hc
        return StudentArch(**d)

    return factory


DEFAULT_STUDENT = "fastpose_res18_w050"

for _name, _base in {
    # ResNet-18 basic blocks, FastPose DUC head
    "fastpose_res18": dict(backbone="resnet", depths=(2, 2, 2, 2), width_mult=1.0, head_channels=(256, 128)),
    "fastpose_res18_w050": dict(
        backbone="resnet", depths=(2, 2, 2, 2), width_mult=0.5, head_channels=(64, 32)
    ),
    "fastpose_res10_w050": dict(
        backbone="resnet", depths=(1, 1, 1, 1), width_mult=0.5, head_channels=(64, 32)
    ),
    "fastpose_res10_w025": dict(
        backbone="resnet", depths=(1, 1, 1, 1), width_mult=0.25, head_channels=(64, 32)
    ),
    "fastpose_res18_w050_192x144": dict(
        backbone="resnet",
        depths=(2, 2, 2, 2),
        width_mult=0.5,
        head_channels=(64,),
        input_size=(192, 144),
        output_stride=16,
    ),
    "fastpose_res18_w050_128x96": dict(
        backbone="resnet", depths=(2, 2, 2, 2), width_mult=0.5, head_channels=(64, 32), input_size=(128, 96)
    ),
    # MobileNetV2 backbones, DUC head
    "fastpose_mbv2_w100": dict(backbone="mobilenetv2", depths=(), width_mult=1.0, head_channels=(128, 64)),
    "fastpose_mbv2_w050": dict(backbone="mobilenetv2", depths=(), width_mult=0.5, head_channels=(96, 48)),
    "fastpose_mbv2_w050_128x96": dict(
        backbone="mobilenetv2", depths=(), width_mult=0.5, head_channels=(96, 48), input_size=(128, 96)
    ),
    # deconvolution heads (SimpleBaseline style)
    "deconv_res18_w050": dict(
        backbone="resnet", depths=(2, 2, 2, 2), width_mult=0.5, head="deconv", head_channels=(128, 128, 128)
    ),
    "deconv_mbv2_w050": dict(
        backbone="mobilenetv2", depths=(), width_mult=0.5, head="deconv", head_channels=(96, 96, 96)
    ),
}.items():
    register_student(_name, _preset(**_base))


# ------------------------------------------------------------------------------------------------
# cost


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, int] | None = None) -> int:
    """Multiply-accumulate operations (MACs) of one forward pass on a single crop.

    Counts Conv2d, ConvTranspose2d and Linear layers with forward hooks (the operations that
    dominate; BN/ReLU/add are ignored, as is usual for FLOP tables). FLOPs = 2 x MACs if wanted.
    """
    if input_size is None:
        arch = getattr(model, "arch", None)
        if arch is None:
            raise ValueError("count_flops: give input_size for models without an .arch")
        input_size = arch.input_size
    total = [0]

    def conv_hook(mod: nn.Conv2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total[0] += int(out.numel() // out.shape[0] * k)

    def deconv_hook(mod: nn.ConvTranspose2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = inp[0]
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.out_channels // mod.groups)
        total[0] += int(x.numel() // x.shape[0] * k)

    def linear_hook(mod: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        total[0] += int(out.numel() // out.shape[0] * mod.in_features)

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.ConvTranspose2d):
            handles.append(mod.register_forward_hook(deconv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 3, *input_size, dtype=p.dtype, device=p.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]
