"""Frozen feature networks for perceptual losses, by `loss.vgg_init`: imagenet | random | a file.

No ImageNet weights exist on machines without internet, so `random` (a seeded, untrained VGG16)
keeps the pipeline runnable; every metrics file names which backbone made its numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG16_Weights, vgg16

from srlab.errors import SrlabError

IMAGENET = VGG16_Weights.IMAGENET1K_V1
IMAGENET_FILE = Path(IMAGENET.url).name  # vgg16-397923af.pth, the name torchvision caches it under


def describe_vgg(init: str, seed: int) -> str:
    if init == "imagenet":
        return "vgg16 imagenet1k_v1 (torchvision)"
    if init == "random":
        return f"vgg16 random init (seed {seed}), not ImageNet-trained"
    return f"vgg16 from {init}"


def vgg16_features(init: str, seed: int) -> nn.Sequential:
    """VGG16's convolutional part with the requested weights, in eval mode, frozen."""
    if init == "random":
        with torch.random.fork_rng(devices=[]):  # the backbone's seed must not shift training's RNG
            torch.manual_seed(seed)
            model = vgg16(weights=None)
    else:
        model = vgg16(weights=None)
        model.load_state_dict(_imagenet_state() if init == "imagenet" else _state_from_file(Path(init)))
    features = model.features.eval()
    features.requires_grad_(False)
    return features


def _imagenet_state() -> dict:
    mirror = os.environ.get("SRLAB_DATA_MIRROR")
    if mirror and (Path(mirror) / IMAGENET_FILE).is_file():
        return _state_from_file(Path(mirror) / IMAGENET_FILE)
    try:
        return IMAGENET.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # offline, proxy, hash: all mean "not available here"
        raise SrlabError(
            f"loss.vgg_init=imagenet: cannot get {IMAGENET_FILE} ({type(exc).__name__}: {exc}); "
            f"put it in $TORCH_HOME/hub/checkpoints or $SRLAB_DATA_MIRROR, or use loss.vgg_init=random"
        ) from None


def _state_from_file(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as exc:
        raise SrlabError(f"loss.vgg_init: cannot load {path} as VGG16 weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise SrlabError(f"loss.vgg_init: {path} is not a torchvision VGG16 state dict")
    return state
