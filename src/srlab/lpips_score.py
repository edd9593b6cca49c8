"""LPIPS (Zhang et al., 2018), the learned perceptual distance SR papers report beside PSNR/SSIM.

The `lpips` package's VGG variant: its calibrated linear layers ship inside its wheel, its VGG16
backbone must be torchvision's ImageNet weights. srlab never computes LPIPS on any other backbone:
the file is taken only when its SHA-256 starts with the prefix torchvision names it by, and where
it cannot be had the metrics say LPIPS was not computed, and why. It is never downloaded here: it
is looked for in $SRLAB_DATA_MIRROR and torch's hub cache ($TORCH_HOME/hub/checkpoints), where
`loss.vgg_init: imagenet` leaves it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from srlab.backbones import BACKBONES, imagenet_file, state_from_file
from srlab.inference import to_tensor

VGG16 = BACKBONES["vgg16"]


def imagenet_vgg16_file() -> tuple[Path | None, str]:
    """(the verified ImageNet VGG16 weights file, "") or (None, why there is none)."""
    path, why = imagenet_file(VGG16)
    return path, why.replace("no ImageNet weights", "no ImageNet VGG16 weights")


class LPIPS:
    """LPIPS-VGG between two uint8 RGB images (0 for identical ones; lower is closer)."""

    def __init__(self, weights: Path, device: torch.device):
        import lpips

        with warnings.catch_warnings():  # lpips still passes torchvision the old `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            self.net = lpips.LPIPS(
                net="vgg", pretrained=True, pnet_rand=True, verbose=False
            )  # linear layers from the wheel
        state = state_from_file(weights, "vgg16", VGG16, "eval.lpips")  # weights only, never unpickled code
        for block in self.net.net.children():  # slice1..slice5 hold torchvision's `features`, named by index
            for index, layer in block.named_children():
                prefix = f"features.{index}."
                layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self.net = self.net.eval().requires_grad_(False).to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, output: np.ndarray, target: np.ndarray) -> float:
        return float(self.net(to_tensor(output, self.device), to_tensor(target, self.device), normalize=True).mean())
