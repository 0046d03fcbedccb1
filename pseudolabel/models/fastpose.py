"""FastPose (AlphaPose's single-person pose estimator), written to load the official checkpoints.

Architecture (AlphaPose config ``256x192_res50_lr1e-3_1x``; checkpoint ``fast_res50_256x192.pth``):

* ``preact``: an SE-ResNet-50 without the classifier. Stem ``conv1`` 7x7/2 (3->64), ``bn1``, ReLU,
  max-pool 3x3/2; ``layer1..layer4`` of 3/4/6/3 bottlenecks (planes 64/128/256/512, expansion 4),
  stride on the 3x3 conv, projection shortcut ``downsample.0`` (1x1 conv) + ``downsample.1`` (BN).
  The first block of every stage (the one with the projection shortcut) carries a
  squeeze-excitation module ``se`` with reduction 1 (``se.fc.0`` Linear(C, C), ReLU, ``se.fc.2``
  Linear(C, C), sigmoid) applied to the residual branch before the addition.
* Head: ``suffle1`` (the official spelling) PixelShuffle(2): 2048 -> 512 channels at stride 16;
  ``duc1`` conv 3x3 512->1024 + ``bn`` + ReLU + PixelShuffle(2) -> 256 channels at stride 8;
  ``duc2`` conv 3x3 256->512 + ``bn`` + ReLU + PixelShuffle(2) -> 128 channels at stride 4;
  ``conv_out`` conv 3x3 128->K with bias. Raw heatmaps, no sigmoid.

A 256x192 crop gives 17x64x48 heatmaps. The state_dict has 348 entries (183 parameters and 165
batch-norm buffers) and the model 40,577,745 parameters, key for key the official layout.
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.1
STAGE_BLOCKS_R50 = (3, 4, 6, 3)
STAGE_PLANES = (64, 128, 256, 512)


class SqueezeExcitation(nn.Module):
    """Channel attention: global average -> Linear -> ReLU -> Linear -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 1) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4) bottleneck, optional SE on the residual branch."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
        se: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out, momentum=BN_MOMENTUM)
        self.se = SqueezeExcitation(out) if se else None
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.se is not None:
            y = self.se(y)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class SEResNet(nn.Module):
    """ResNet trunk (no pooling/classifier) with SE in the first block of each stage."""

    def __init__(self, blocks: tuple[int, int, int, int] = STAGE_BLOCKS_R50) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for i, (n, planes) in enumerate(zip(blocks, STAGE_PLANES, strict=True)):
            stride = 1 if i == 0 else 2
            out = planes * Bottleneck.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out, momentum=BN_MOMENTUM),
                )
            layers = [Bottleneck(inplanes, planes, stride, downsample, se=downsample is not None)]
            layers += [Bottleneck(out, planes) for _ in range(n - 1)]
            inplanes = out
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class DUC(nn.Module):
    """Dense up-sampling convolution: conv 3x3 -> BN -> ReLU -> PixelShuffle."""

    def __init__(self, inplanes: int, planes: int, upscale_factor: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


class FastPose(nn.Module):
    """SE-ResNet backbone + PixelShuffle/DUC head -> K heatmaps at 1/4 of the input resolution.

    ``FastPose()`` is the official ResNet-50 variant (``fast_res50_256x192.pth``).
    """

    def __init__(
        self, num_joints: int = 17, blocks: tuple[int, int, int, int] = STAGE_BLOCKS_R50, conv_dim: int = 128
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.preact = SEResNet(blocks)
        c = self.preact.out_channels // 4  # channels after the first pixel shuffle
        self.suffle1 = nn.PixelShuffle(2)
        self.duc1 = DUC(c, 2 * c, upscale_factor=2)
        self.duc2 = DUC(2 * c // 4, conv_dim * 4, upscale_factor=2)
        self.conv_out = nn.Conv2d(conv_dim, num_joints, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised crops -> (N, K, H/4, W/4) raw heatmaps."""
        return self.conv_out(self.duc2(self.duc1(self.suffle1(self.preact(x)))))


def build_fastpose_r50(num_joints: int = 17) -> FastPose:
    """The official FastPose ResNet-50 (AlphaPose ``fast_res50_256x192.pth`` layout), in eval mode."""
    return FastPose(num_joints=num_joints).eval()
