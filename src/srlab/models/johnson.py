"""The transform network of Johnson et al. (2016) for super-resolution, as the perceptual-losses note builds it."""

from __future__ import annotations

import math

import torch
from torch import nn

from srlab.models.blocks import ResidualBlock


def _conv_bn_relu(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class JohnsonSR(nn.Module):
    """9x9 conv (64), 4 residual blocks (BN, ReLU), log2(scale) fractionally strided convs (4x4
    kernels, stride 2, as the note draws them: each output pixel meets the kernel evenly, so no
    checkerboard from uneven overlap), 9x9 conv to RGB, scaled tanh to [0, 1]. Scales 2, 4 and 8
    (the note's x4 and x8; x3 has no stride-2 path)."""

    takes_lr = True
    scales = (2, 4, 8)

    def __init__(self, scale: int, channels: int = 64, blocks: int = 4):
        super().__init__()
        self.scale = scale
        layers = _conv_bn_relu(3, channels, 9)
        layers += [ResidualBlock(channels, True, nn.ReLU(inplace=True)) for _ in range(blocks)]
        for _ in range(int(math.log2(scale))):
            layers += [
                nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(channels, 3, 9, padding=4))
        self.net = nn.Sequential(*layers)

    def forward(self, lr):
        return (torch.tanh(self.net(lr)) + 1) / 2
