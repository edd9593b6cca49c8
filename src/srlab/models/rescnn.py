"""ResCNN, the residual-CNN design note: features on the LR image, bilinear upsampling, then
residual blocks with batch norm at HR, trained with L1 / L2 / SSIM / perceptual mixes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from srlab.models.blocks import ResidualBlock, conv


class ResCNN(nn.Module):
    """conv 3x3 (128) on LR -> bilinear x scale -> conv 3x3 (64) -> 3 residual blocks (BN, ReLU) -> conv to RGB.

    The output is added to the bilinear upsampled input (a global skip), so the network learns
    the missing detail rather than the whole image.
    """

    takes_lr = True

    def __init__(self, scale: int, lr_channels: int = 128, channels: int = 64, blocks: int = 3):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(conv(3, lr_channels), nn.ReLU(inplace=True))
        self.merge = nn.Sequential(conv(lr_channels, channels), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResidualBlock(channels, True, nn.ReLU(inplace=True)) for _ in range(blocks)])
        self.tail = conv(channels, 3)

    def forward(self, lr):
        up = F.interpolate(lr, scale_factor=self.scale, mode="bilinear", align_corners=False)
        features = F.interpolate(self.head(lr), scale_factor=self.scale, mode="bilinear", align_corners=False)
        return up + self.tail(self.body(self.merge(features)))
