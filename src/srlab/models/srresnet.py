"""SRResNet and the SRGAN discriminator (Ledig et al., 2017), as the SRResNet/SRGAN note trains them."""

from __future__ import annotations

from torch import nn

from srlab.errors import SrlabError
from srlab.models.blocks import ResidualBlock, conv, pixel_shuffle_upsampler


class SRResNet(nn.Module):
    """9x9 conv + PReLU, 16 residual blocks (BN, PReLU), conv + BN with a long skip,
    pixel-shuffle upsampling (x2, x3, x4), 9x9 conv to RGB."""

    takes_lr = True

    def __init__(self, scale: int, channels: int = 64, blocks: int = 16):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(conv(3, channels, 9), nn.PReLU(channels))
        self.body = nn.Sequential(*[ResidualBlock(channels, True, nn.PReLU(channels)) for _ in range(blocks)])
        self.body_end = nn.Sequential(conv(channels, channels), nn.BatchNorm2d(channels))
        self.upsample = pixel_shuffle_upsampler(channels, scale, lambda: nn.PReLU(channels))
        self.tail = conv(channels, 3, 9)

    def forward(self, lr):
        features = self.head(lr)
        return self.tail(self.upsample(features + self.body_end(self.body(features))))


# (channels, stride) of each conv + BN + LeakyReLU block after the input conv (3 -> 64, stride 1)
PAPER_BLOCKS = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))  # Ledig et al.: /16
NOTE_BLOCKS = ((64, 2), (128, 1), (128, 2), (256, 1), (512, 1), (512, 2))  # the SRGAN note's list: /8


class Discriminator(nn.Module):
    """SRGAN's discriminator: an input conv (64 channels) and LeakyReLU 0.2, then conv + BN +
    LeakyReLU 0.2 blocks (`PAPER_BLOCKS`, or the note's `NOTE_BLOCKS`). Returns one logit per
    image (the sigmoid is in the loss). Two heads:

    - `pooled`: global average pool and 1x1 convs (1024, then 1), so any patch size works;
    - `dense`, the paper's: the features flattened, Dense(1024), LeakyReLU 0.2, Dense(1), for
      `size`-pixel HR crops only (a multiple of the blocks' downsampling).
    """

    def __init__(self, head: str = "pooled", size: int = 96, blocks=PAPER_BLOCKS, name: str = "dense"):
        super().__init__()
        channels = blocks[0][0]
        layers, c_in = [conv(3, channels), nn.LeakyReLU(0.2, inplace=True)], channels
        for c_out, stride in blocks:
            layers += [conv(c_in, c_out, stride=stride), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        down = 2 ** sum(stride == 2 for _, stride in blocks)
        if head == "dense":
            if size % down:
                raise SrlabError(
                    f"model.discriminator: {name} needs HR crops of a multiple of {down} pixels, not {size}"
                )
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(c_in * (size // down) ** 2, 16 * channels),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(16 * channels, 1),
            )
        else:
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(c_in, 16 * channels, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(16 * channels, 1, 1),
            )

    def forward(self, x):
        return self.head(self.features(x)).flatten()
