"""Training objectives: a weighted sum of named terms built from params, each logged as `l_<term>`.

Terms: mse, l1, ssim (1 - SSIM), perceptual (VGG16, several layers), vgg19 (relu5_4), resnet
(a ResNet18 or ResNet34 block's features) and adversarial (SRGAN). Only terms with a weight above 0 are built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.backbones import vgg16_features
from srlab.losses.content import AdversarialLoss, ContentLoss, SSIMLoss, resnet_features, vgg19_relu5_4
from srlab.losses.perceptual import VGGPerceptualLoss
from srlab.params import LayerWeights, LossParams


def build_vgg16_loss(vgg_init: str, seed: int, layers: LayerWeights) -> VGGPerceptualLoss:
    return VGGPerceptualLoss(vgg16_features(vgg_init, seed), layers.nonzero())


class _Pixel(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, output, target):
        return self.fn(output, target)


def build_terms(
    loss: LossParams,
    weights: dict[str, float],
    seed: int,
    perceptual: VGGPerceptualLoss,
    discriminator: nn.Module | None = None,
) -> dict[str, nn.Module]:
    """The modules of the terms that `weights` switches on (the VGG16 one is shared with scoring)."""
    makers = {
        "mse": lambda: _Pixel(F.mse_loss),
        "l1": lambda: _Pixel(F.l1_loss),
        "ssim": SSIMLoss,
        "perceptual": lambda: perceptual,
        "vgg19": lambda: ContentLoss(vgg19_relu5_4(loss.vgg19_init, seed)),
        "resnet": lambda: ContentLoss(resnet_features(loss.resnet_model, loss.resnet_block, loss.resnet_init, seed)),
        "adversarial": lambda: AdversarialLoss(discriminator),
    }
    return {name: makers[name]() for name, w in weights.items() if w > 0}


class SRLoss(nn.Module):
    """sum_t w_t * term_t(output, target). Returns the total and each term, named `l_<term>` for logs."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]):
        super().__init__()
        if not terms:
            raise ValueError("the objective needs at least one term with a weight above 0")
        self.terms = nn.ModuleDict(terms)
        self.weights = {name: weights[name] for name in terms}

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = {f"l_{name}": term(output, target) for name, term in self.terms.items()}
        total = sum(self.weights[name] * values[f"l_{name}"] for name in self.terms)
        return total, values
