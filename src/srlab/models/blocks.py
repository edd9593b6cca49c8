"""Building blocks shared by the residual networks: residual blocks and pixel-shuffle upsamplers."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class ResidualBlock(nn.Module):
    """conv-(BN)-act-conv-(BN), added to the input; `res_scale` < 1 is EDSR's stabiliser."""

    def __init__(self, channels: int, batch_norm: bool, act: nn.Module, res_scale: float = 1.0):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(conv(channels, channels), norm(), act, conv(channels, channels), norm())
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


def pixel_shuffle_upsampler(channels: int, scale: int, act: Callable[[], nn.Module] | None) -> nn.Sequential:
    """x2, x4 and x8 as repeated x2 steps, x3 in one step (sub-pixel convolution, Shi et al. 2016)."""
    steps = {2: [2], 3: [3], 4: [2, 2], 8: [2, 2, 2]}[scale]
    layers = []
    for factor in steps:
        layers += [conv(channels, channels * factor * factor), nn.PixelShuffle(factor)]
        if act is not None:
            layers.append(act())
    return nn.Sequential(*layers)
