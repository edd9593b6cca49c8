"""Frozen feature networks for perceptual and content losses, each by an init rule:
`imagenet` (torchvision's weights) | `random` (seeded, untrained) | the path of a state dict.

No ImageNet weights exist on machines without internet, so `random` keeps the pipeline runnable;
every metrics file names which backbone made its numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, VGG16_Weights, VGG19_Weights, resnet18, vgg16, vgg19

from srlab.errors import SrlabError


@dataclass(frozen=True)
class Backbone:
    build: Callable[..., nn.Module]  # torchvision constructor
    weights: object  # torchvision WeightsEnum member for `imagenet`
    first_key: str  # a key every state dict of this network has

    @property
    def filename(self) -> str:  # the name torchvision caches the weights under
        return Path(self.weights.url).name


BACKBONES = {
    "vgg16": Backbone(vgg16, VGG16_Weights.IMAGENET1K_V1, "features.0.weight"),
    "vgg19": Backbone(vgg19, VGG19_Weights.IMAGENET1K_V1, "features.0.weight"),
    "resnet18": Backbone(resnet18, ResNet18_Weights.IMAGENET1K_V1, "conv1.weight"),
}
IMAGENET_FILE = BACKBONES["vgg16"].filename  # vgg16-397923af.pth


def describe(name: str, init: str, seed: int) -> str:
    if init == "imagenet":
        return f"{name} imagenet1k_v1 (torchvision)"
    if init == "random":
        return f"{name} random init (seed {seed}), not ImageNet-trained"
    return f"{name} from {init}"


def describe_vgg(init: str, seed: int) -> str:
    return describe("vgg16", init, seed)


def backbone(name: str, init: str, seed: int, param: str = "loss.vgg_init") -> nn.Module:
    """The whole torchvision network `name` with the requested weights, in eval mode, frozen."""
    spec = BACKBONES[name]
    if init == "random":
        with torch.random.fork_rng(devices=[]):  # the backbone's seed must not shift training's RNG
            torch.manual_seed(seed)
            model = spec.build(weights=None)
    else:
        model = spec.build(weights=None)
        state = _imagenet_state(spec, param) if init == "imagenet" else state_from_file(Path(init), name, spec, param)
        model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model


def vgg16_features(init: str, seed: int) -> nn.Sequential:
    return backbone("vgg16", init, seed).features


def _imagenet_state(spec: Backbone, param: str) -> dict:
    mirror = os.environ.get("SRLAB_DATA_MIRROR")
    if mirror and (Path(mirror) / spec.filename).is_file():
        return state_from_file(Path(mirror) / spec.filename, spec.build.__name__, spec, param)
    try:
        return spec.weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # offline, proxy, hash: all mean "not available here"
        raise SrlabError(
            f"{param}=imagenet: cannot get {spec.filename} ({type(exc).__name__}: {exc}); "
            f"put it in $TORCH_HOME/hub/checkpoints or $SRLAB_DATA_MIRROR, or use {param}=random"
        ) from None


def state_from_file(path: Path, name: str, spec: Backbone, param: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as exc:
        raise SrlabError(f"{param}: cannot load {path} as {name} weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or spec.first_key not in state:
        raise SrlabError(f"{param}: {path} is not a torchvision {name.upper() if name.startswith('vgg') else name} state dict")
    return state
