"""Single-layer content losses of the SRGAN note: VGG19 relu5_4 and a ResNet block's features, and 1 - SSIM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.backbones import backbone
from srlab.losses.perceptual import FrozenNetwork

VGG19_RELU5_4 = 36  # torchvision vgg19().features[:36] ends with relu5_4


def vgg19_relu5_4(init: str, seed: int) -> nn.Module:
    return backbone("vgg19", init, seed, param="loss.vgg19_init").features[:VGG19_RELU5_4]


def resnet_features(model: str, block: int, init: str, seed: int) -> nn.Module:
    """A ResNet up to the output of its `block`-th residual block, counted from the first block of
    layer1 (the SRGAN note's res_loss_18_4 is resnet18 block 4; docs/notes.md)."""
    net = backbone(model, init, seed, param="loss.resnet_init")
    blocks = [*net.layer1, *net.layer2, *net.layer3, *net.layer4]
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *blocks[:block])


class ContentLoss(FrozenNetwork):
    """MSE between the feature maps of a frozen network (one layer, as in the SRGAN note)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self.trunk(self.normalise(target))
        return F.mse_loss(self.trunk(self.normalise(output)), wanted)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


class SSIMLoss(nn.Module):
    """1 - mean SSIM over RGB channels (Gaussian window 11, sigma 1.5; Wang et al. 2004 constants)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", gaussian_window())

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        w = self.window.to(x.dtype)
        x = F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c1, c2 = 0.01**2, 0.03**2
        mu_x, mu_y = self._blur(output), self._blur(target)
        var_x = self._blur(output * output) - mu_x**2
        var_y = self._blur(target * target) - mu_y**2
        cov = self._blur(output * target) - mu_x * mu_y
        ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return 1 - ssim.mean()


class AdversarialLoss(nn.Module):
    """The generator's side of SRGAN: -log D(G(x)), as BCE against 'real'. The discriminator is
    trained by the loop with `discriminator_loss`."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.discriminator(output)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
