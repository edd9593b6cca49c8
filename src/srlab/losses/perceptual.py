"""The VGG16 perceptual loss: weighted MSE between relu feature maps of output and target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# index of each relu in torchvision's vgg16().features
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGPerceptualLoss(nn.Module):
    """sum_l w_l * MSE(VGG_l(output), VGG_l(target)), inputs in [0, 1] normalised with ImageNet stats.

    The network is cut after the deepest layer with a non-zero weight, so unused layers cost nothing.
    """

    def __init__(self, features: nn.Sequential, layer_weights: dict[str, float]):
        super().__init__()
        self.layer_weights = {name: w for name, w in layer_weights.items() if w > 0}
        if not self.layer_weights:
            raise ValueError("at least one VGG layer needs a weight above 0")
        self.taps = {RELU_INDEX[name]: name for name in self.layer_weights}
        self.features = features[: max(self.taps) + 1].eval()  # slicing makes a new module in train mode
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()  # the backbone is a fixed measuring instrument, never trained
        return self

    def extract(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (img - self.mean) / self.std
        found = {}
        for index, layer in enumerate(self.features):
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
