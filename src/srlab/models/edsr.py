"""EDSR (Lim et al., 2017), the baseline size: residual blocks without batch norm, residual scaling."""

from __future__ import annotations

from torch import nn

from srlab.models.blocks import ResidualBlock, conv, pixel_shuffle_upsampler


class EDSR(nn.Module):
    """conv 3x3, 16 residual blocks (conv-ReLU-conv, no BN, scaled by 0.1), conv with a long skip,
    pixel-shuffle upsampling, conv to RGB. Beyond the notes (docs/notes.md): the quality bar for the others."""

    takes_lr = True

    def __init__(self, scale: int, channels: int = 64, blocks: int = 16, res_scale: float = 0.1):
        super().__init__()
        self.scale = scale
        self.head = conv(3, channels)
        self.body = nn.Sequential(
            *[ResidualBlock(channels, False, nn.ReLU(inplace=True), res_scale) for _ in range(blocks)],
            conv(channels, channels),
        )
        self.tail = nn.Sequential(pixel_shuffle_upsampler(channels, scale, None), conv(channels, 3))

    def forward(self, lr):
        features = self.head(lr)
        return self.tail(features + self.body(features))
