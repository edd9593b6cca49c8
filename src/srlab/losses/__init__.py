"""Training objectives built from params: pixel MSE plus an optional weighted perceptual term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.backbones import vgg16_features
from srlab.losses.perceptual import VGGPerceptualLoss
from srlab.params import LayerWeights


def build_perceptual(vgg_init: str, seed: int, layers: LayerWeights) -> VGGPerceptualLoss:
    return VGGPerceptualLoss(vgg16_features(vgg_init, seed), layers.nonzero())


class SRLoss(nn.Module):
    """MSE + vgg_weight * perceptual. Returns the total and each term, named `l_<term>` for logs."""

    def __init__(self, perceptual: VGGPerceptualLoss, vgg_weight: float):
        super().__init__()
        self.perceptual, self.vgg_weight = perceptual, vgg_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {"l_mse": F.mse_loss(output, target)}
        total = terms["l_mse"]
        if self.vgg_weight > 0:
            terms["l_perceptual"] = self.perceptual(output, target)
            total = total + self.vgg_weight * terms["l_perceptual"]
        return total, terms
