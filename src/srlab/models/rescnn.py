"""ResCNN, the residual-CNN design note, as its layer table builds it: features on the LR image,
bilinear upsampling stages, residual blocks with batch norm, trained with L1 / L2 / SSIM /
perceptual mixes.

The note's table (x4):

    conv_1 .. conv_3   128 channels, on the LR image     (conv_2, conv_3) a residual block
    bilinear x2
    conv_4 .. conv_6   64 channels                       (conv_5, conv_6) a residual block
    bilinear x2
    conv_7 .. conv_9   64 channels                       (conv_8, conv_9) a residual block
    conv_10            to RGB

3x3 convolutions, batch norm after conv_2, 3, 5, 6, 8 and 9, a ReLU after every convolution.
x2 has one upsampling stage (after conv_3) and x3 one bilinear x3 stage; conv_7 .. conv_9 then run
at HR without a second upsampling, so every scale keeps the ten layers.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from srlab.models.blocks import conv


class _ReluBlock(nn.Module):
    """conv-BN-ReLU-conv-BN-ReLU added to its input (conv_2 and conv_3 of the note, and so on)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            conv(channels, channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return x + self.body(x)


def _group(c_in: int, c_out: int) -> nn.Sequential:
    """One row of the table: a conv with ReLU, then a residual block of two more."""
    return nn.Sequential(conv(c_in, c_out), nn.ReLU(inplace=True), _ReluBlock(c_out))


class ResCNN(nn.Module):
    takes_lr = True
    scales = (2, 3, 4)
    STAGES = {2: (2, 1), 3: (3, 1), 4: (2, 2)}  # bilinear factor after conv_3 and after conv_6

    def __init__(self, scale: int, lr_channels: int = 128, channels: int = 64):
        super().__init__()
        self.scale = scale
        self.first, self.second = self.STAGES[scale]
        self.lr_group = _group(3, lr_channels)  # conv_1 .. conv_3
        self.mid_group = _group(lr_channels, channels)  # conv_4 .. conv_6
        self.hr_group = _group(channels, channels)  # conv_7 .. conv_9
        self.to_rgb = nn.Sequential(conv(channels, 3), nn.ReLU(inplace=True))  # conv_10

    def forward(self, lr):
        x = _bilinear(self.lr_group(lr), self.first)
        x = _bilinear(self.mid_group(x), self.second)
        return self.to_rgb(self.hr_group(x))


def _bilinear(x, factor: int):
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
