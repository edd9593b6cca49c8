"""Frozen feature networks for perceptual and content losses, each by an init rule:
`imagenet` (torchvision's weights) | `random` (seeded, untrained) | the path of a state dict.

No ImageNet weights exist on machines without internet, so `random` keeps the pipeline runnable;
every metrics file names which backbone made its numbers. An ImageNet file is used only when its
SHA-256 starts with the prefix in torchvision's file name (`vgg16-397923af.pth`), which is what
torch.hub checks on download; every file's full SHA-256 goes into the run's provenance.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import (
    ResNet18_Weights,
    ResNet34_Weights,
    VGG16_Weights,
    VGG19_Weights,
    resnet18,
    resnet34,
    vgg16,
    vgg19,
)

from srlab.errors import SrlabError
from srlab.fileio import file_digest


@dataclass(frozen=True)
class Backbone:
    build: Callable[..., nn.Module]  # torchvision constructor
    weights: object  # torchvision WeightsEnum member for `imagenet`
    first_key: str  # a key every state dict of this network has

    @property
    def filename(self) -> str:  # the name torchvision caches the weights under
        return Path(self.weights.url).name

    @property
    def sha256_prefix(self) -> str:  # vgg16-397923af.pth -> 397923af, the published hash's start
        return self.filename.rsplit("-", 1)[1].split(".")[0]


BACKBONES = {
    "vgg16": Backbone(vgg16, VGG16_Weights.IMAGENET1K_V1, "features.0.weight"),
    "vgg19": Backbone(vgg19, VGG19_Weights.IMAGENET1K_V1, "features.0.weight"),
    "resnet18": Backbone(resnet18, ResNet18_Weights.IMAGENET1K_V1, "conv1.weight"),
    "resnet34": Backbone(resnet34, ResNet34_Weights.IMAGENET1K_V1, "conv1.weight"),
}
IMAGENET_FILE = BACKBONES["vgg16"].filename  # vgg16-397923af.pth


def describe(name: str, init: str, seed: int) -> str:
    """Which weights made a number: the init rule and, for a file, its full SHA-256."""
    if init == "random":
        return f"{name} random init (seed {seed}), not ImageNet-trained"
    if init == "imagenet":
        path, why = imagenet_file(BACKBONES[name])
        return f"{name} imagenet1k_v1 (torchvision, sha256 {sha256(path)})" if path else f"{name} imagenet1k_v1 ({why})"
    return f"{name} from {init} (sha256 {sha256(Path(init)) if Path(init).is_file() else 'unknown: no such file'})"


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
        if init == "imagenet":
            state = _imagenet_state(spec, param)
        else:
            _say_if_untracked(Path(init), param)
            state = state_from_file(Path(init), name, spec, param)
        model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model


TRACKED_WEIGHTS = Path("data/weights")  # a DVC dependency of every stage that reads loss.*_init


def _say_if_untracked(path: Path, param: str) -> None:
    """One line when a weights file lies outside data/weights: DVC will not see it change in place
    (its SHA-256 still goes into provenance and the resume fingerprint)."""
    if TRACKED_WEIGHTS.resolve() not in path.resolve().parents:
        print(
            f"{param}: {path} is outside {TRACKED_WEIGHTS}/, which DVC hashes; it will not see this file change",
            file=sys.stderr,
        )


def used_by(loss) -> list[tuple[str, str, str]]:
    """(network, its param, its init) of each backbone the terms of `loss` (LossParams) use: VGG16
    always (the perceptual term, and every run's curves), VGG19 and loss.resnet_model when weighted."""
    wanted = (
        ("vgg16", "loss.vgg_init", loss.vgg_init, True),
        ("vgg19", "loss.vgg19_init", loss.vgg19_init, loss.vgg19_weight > 0),
        (loss.resnet_model, "loss.resnet_init", loss.resnet_init, loss.resnet_weight > 0),
    )
    return [(name, param, init) for name, param, init, used in wanted if used]


def require_imagenet(loss, seed: int) -> None:
    """Load each ImageNet backbone `loss` uses once, so that weights which cannot be had (or whose
    hash is not the published one) stop the download stage, minutes before training needs them."""
    for name, param, init in used_by(loss):
        if init == "imagenet":
            backbone(name, init, seed, param)


def vgg16_features(init: str, seed: int) -> nn.Sequential:
    return backbone("vgg16", init, seed).features


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:  # hashed once per file version and process
    return file_digest(path, "sha256")


def sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


def imagenet_file(spec: Backbone) -> tuple[Path | None, str]:
    """(torchvision's ImageNet weights file for `spec`, "") from $SRLAB_DATA_MIRROR or torch's hub
    cache, checked against its published hash; or (None, why not). The reason names the places by
    their variables, not their paths, whether set or not: it goes into metrics, which must not change
    with the machine."""
    found = _on_disk(spec)
    if found is None:
        return None, f"no ImageNet weights ({spec.filename} in $SRLAB_DATA_MIRROR or $TORCH_HOME/hub/checkpoints)"
    problem = _hash_problem(spec, *found)
    return (None, problem) if problem else (found[1], "")


def _places() -> list[tuple[str, Path]]:
    mirror = os.environ.get("SRLAB_DATA_MIRROR")
    return ([("$SRLAB_DATA_MIRROR", Path(mirror))] if mirror else []) + [
        ("$TORCH_HOME/hub/checkpoints", Path(torch.hub.get_dir()) / "checkpoints")
    ]


def _on_disk(spec: Backbone) -> tuple[str, Path] | None:
    """(where, path) of the first file under torchvision's name in the places looked in, if any."""
    return next(
        ((where, place / spec.filename) for where, place in _places() if (place / spec.filename).is_file()), None
    )


def _hash_problem(spec: Backbone, where: str, path: Path) -> str:
    """Why the file under torchvision's name is not its ImageNet weights, or "" when it is."""
    digest = sha256(path)
    if digest.startswith(spec.sha256_prefix):
        return ""
    return (
        f"{where}/{spec.filename} is not torchvision's ImageNet {spec.build.__name__.upper()} "
        f"(sha256 {digest[:8]}..., expected {spec.sha256_prefix}...)"
    )


def _imagenet_state(spec: Backbone, param: str) -> dict:
    found = _on_disk(spec)
    if found:  # a file under the published name is used only if it is the published file
        problem = _hash_problem(spec, *found)
        if problem:
            raise SrlabError(f"{param}=imagenet: {problem}; delete it or use {param}=random")
        return state_from_file(found[1], spec.build.__name__, spec, param)
    try:
        return spec.weights.get_state_dict(progress=True, check_hash=True)  # torch.hub checks the same prefix
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
        raise SrlabError(
            f"{param}: {path} is not a torchvision {name.upper() if name.startswith('vgg') else name} state dict"
        )
    return state
