"""The VGG16 perceptual loss (weighted MSE between relu feature maps of output and target), and the
frozen, ImageNet-normalised network every feature loss is built on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# index of each relu in torchvision's vgg16().features
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenNetwork(nn.Module):
    """A fixed measuring network fed [0, 1] images normalised with ImageNet stats. Never trained,
    and its batch-norm statistics never move, whatever mode the objective around it is put in."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()
        return self

    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


class VGGPerceptualLoss(FrozenNetwork):
    """sum_l w_l * MSE(VGG_l(output), VGG_l(target)).

    The network is cut after the deepest layer with a non-zero weight, so unused layers cost nothing.
    """

    def __init__(self, features: nn.Sequential, layer_weights: dict[str, float]):
        weights = {name: w for name, w in layer_weights.items() if w > 0}
        if not weights:
            raise ValueError("at least one VGG layer needs a weight above 0")
        taps = {RELU_INDEX[name]: name for name in weights}
        super().__init__(features[: max(taps) + 1])
        self.layer_weights, self.taps = weights, taps

    def extract(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalise(img)
        found = {}
        for index, layer in enumerate(self.trunk):
            x = layer(x)
            if index in self.taps:
                found[self.taps[index]] = x
        return found

    def distance(self, output_features: dict, target_features: dict) -> torch.Tensor:
        return sum(w * F.mse_loss(output_features[n], target_features[n]) for n, w in self.layer_weights.items())

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the target side needs no graph
            target_features = self.extract(target)
        return self.distance(self.extract(output), target_features)
