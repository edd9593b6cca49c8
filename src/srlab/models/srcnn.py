"""SRCNN (Dong et al., 2014): upsample, then patch extraction, non-linear mapping, reconstruction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample(x: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    """Interpolation by `scale`: bicubic, bilinear or nearest (which takes no align_corners)."""
    corners = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(x, scale_factor=scale, mode=mode, **corners)


class SRCNN(nn.Module):
    """9-5-5 with 64 and 32 channels, padded so the output keeps the upsampled input's size.

    Takes the LR image and upsamples it itself (bicubic, bilinear or nearest), so training patches and
    test images go through exactly the same interpolation. With `residual`, the network predicts
    the difference to the upsampled image, which trains much faster in a short budget.
    """

    takes_lr = True

    def __init__(
        self, scale: int, upsample: str = "bicubic", residual: bool = True, channels=(64, 32), kernels=(9, 5, 5)
    ):
        super().__init__()
        self.scale, self.upsample, self.residual = scale, upsample, residual
        c1, c2 = channels
        k1, k2, k3 = kernels
        self.extract = nn.Conv2d(3, c1, k1, padding=k1 // 2)
        self.map = nn.Conv2d(c1, c2, k2, padding=k2 // 2)
        self.reconstruct = nn.Conv2d(c2, 3, k3, padding=k3 // 2)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        up = upsample(lr, self.scale, self.upsample)
        out = self.reconstruct(F.relu(self.map(F.relu(self.extract(up)))))
        return up + out if self.residual else out
