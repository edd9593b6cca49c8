"""Typed parameters: params.yaml is read once, checked completely, and handed out as dataclasses.

Every key has a default here and in params.yaml (DVC's `-S` refuses keys the file lacks). A bad key,
type or value stops with one line naming it, what was given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srlab.errors import SrlabError

SOURCES = ("sample", "folder", "voc2011", "div2k")
# one fixed kernel: what evaluate can use too; nearest is what the residual-CNN note's grader used
DEGRADATIONS = ("bicubic", "bilinear", "gaussian", "nearest")
TRAIN_DEGRADATIONS = DEGRADATIONS + ("mixed",)  # mixed: one of the above drawn per patch
UPSAMPLERS = ("bicubic", "bilinear", "nearest")
DEVICES = ("auto", "cpu", "cuda")
TEST_SETS = ("Set5", "Set14", "B100", "Urban100")  # all from EDSR's benchmark.tar
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
BACKBONE_INITS = ("imagenet", "random")  # or the path of a state dict
RESNET_BLOCKS = {"resnet18": 8, "resnet34": 16}  # residual blocks of each ResNet the content loss can use
MODELS = ("srcnn", "srcnn915", "rescnn", "srresnet", "johnson", "edsr")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
PRECISIONS = ("fp32", "bf16")  # of the models' convolutions, in training and inference


def _rule(**kwargs) -> dict:
    return {"metadata": kwargs}


@dataclass(frozen=True)
class DataParams:
    train_source: str = field(default="sample", **_rule(choices=SOURCES))
    train_dir: str = "data/photos"  # a dependency of the download stage in dvc.yaml: DVC hashes the folder
    mirror: str = "data/mirror"  # likewise: datasets used in place of downloads, looked in before $SRLAB_DATA_MIRROR
    train_images: int = field(default=1000, **_rule(min=1))
    val_images: int = field(default=200, **_rule(min=1))
    scale: int = field(default=2, **_rule(choices=(2, 3, 4, 8)))
    hr_size: int = field(default=64, **_rule(min=8))
    layout: str = field(default="patches", **_rule(choices=("patches", "tiles")))  # see srlab.data.patches
    patches_per_image: int = field(default=48, **_rule(min=1))  # patches: pairs at random positions per photo
    tile_step: int = field(default=0, **_rule(min=0))  # tiles: HR pixels between tiles; 0: half of hr_size
    val_crop: int = field(default=0, **_rule(min=0))  # >0: the val split is one centre crop per photo, this side
    workers: int = field(
        default=0, **_rule(min=0)
    )  # prepare's processes; 0: one per core (the output does not depend on it)
    degradation: str = field(default="bicubic", **_rule(choices=TRAIN_DEGRADATIONS))
    blur_sigma: float = field(default=1.0, **_rule(min_exclusive=0.0))  # of the gaussian degradation

    def problem(self) -> str | None:
        if self.hr_size % self.scale:
            return f"hr_size: {self.hr_size} is not a multiple of scale ({self.scale})"
        if self.val_crop % self.scale:
            return f"val_crop: {self.val_crop} is not a multiple of scale ({self.scale})"
        if self.layout == "tiles" and (self.step() % self.scale or self.step() > self.hr_size or self.step() == 0):
            return (
                f"tile_step: {self.step()} must be a multiple of scale ({self.scale}), above 0 and at most "
                f"hr_size ({self.hr_size}) so that the tiles cover each photo"
            )
        return None

    def step(self) -> int:
        """The tiles' stride: tile_step, or half a tile rounded down to the LR grid."""
        return self.tile_step or self.hr_size // 2 // self.scale * self.scale


@dataclass(frozen=True)
class ModelParams:
    name: str = field(default="srcnn", **_rule(choices=MODELS))
    upsample: str = field(default="bicubic", **_rule(choices=UPSAMPLERS))
    residual: bool = True
    discriminator: str = field(
        default="pooled", **_rule(choices=("pooled", "dense", "note"))
    )  # SRGAN's: see models/srresnet.py


@dataclass(frozen=True)
class TrainParams:
    epochs: int = field(default=10, **_rule(min=1))
    perceptual_epochs: int = field(default=3, **_rule(min=1))
    perceptual_init: str = field(default="mse", **_rule(choices=("mse", "scratch")))
    batch_size: int = field(default=16, **_rule(min=1))
    lr: float = field(default=3e-4, **_rule(min_exclusive=0.0))
    lr_schedule: str = field(
        default="constant", **_rule(choices=("constant", "cosine"))
    )  # cosine: to 0 at the last step
    warmup_steps: int = field(default=0, **_rule(min=0))  # linear warm-up from lr / warmup_steps, each stage
    device: str = field(default="auto", **_rule(choices=DEVICES))
    precision: str = field(default="auto", **_rule(choices=("auto", *PRECISIONS)))  # auto: bf16 on CUDA that has it
    # auto: channels_last on CUDA and for bf16 on CPU (oneDNN's bf16 kernels are NHWC), else contiguous
    memory_format: str = field(default="auto", **_rule(choices=MEMORY_FORMATS))
    compile: bool = False  # torch.compile the model (minutes of compiling; pays off on long GPU runs)
    crop_size: int = field(
        default=0, **_rule(min=0)
    )  # HR side of a random crop of each patch, drawn every step; 0: whole patches
    epoch_samples: int = field(
        default=0, **_rule(min=0)
    )  # pairs drawn per epoch (a random subset, new each epoch); 0: all
    # exponential moving average of the weights, used for validation, the best checkpoints and the
    # model file; 0 switches it off (SR toolboxes use 0.999 on long runs; see srlab.ema)
    ema_decay: float = field(default=0.0, **_rule(min=0.0, max_exclusive=1.0))
    save_every: int = field(
        default=0, **_rule(min=0)
    )  # also keep epoch_<N>.pt every N epochs (resumable); 0: last.pt only
    discriminator_lr: float = field(default=0.0, **_rule(min=0.0))  # SRGAN's discriminator; 0: train.lr
    # random rotation of each HR crop by up to this many degrees, its LR made again from it with
    # data.degradation (so the pair stays exact); 0: off. Costs CPU time every step.
    rotate_degrees: float = field(default=0.0, **_rule(min=0.0, max=45.0))
    # the flips drawn per sample: all 8 symmetries of a square (flips and transposes), horizontal
    # flips only (the SRGAN note's), or none
    flips: str = field(default="all", **_rule(choices=("all", "horizontal", "none")))


@dataclass(frozen=True)
class LayerWeights:
    relu1_2: float = field(default=0.0, **_rule(min=0.0))
    relu2_2: float = field(default=1.0, **_rule(min=0.0))
    relu3_3: float = field(default=0.0, **_rule(min=0.0))
    relu4_3: float = field(default=0.0, **_rule(min=0.0))

    def nonzero(self) -> dict[str, float]:
        return {name: w for name, w in dataclasses.asdict(self).items() if w > 0}

    def problem(self) -> str | None:
        return None if self.nonzero() else "every layer weight is 0; at least one must be above 0"


@dataclass(frozen=True)
class LossParams:
    # pixel terms: both training stages
    mse_weight: float = field(default=1.0, **_rule(min=0.0))
    l1_weight: float = field(default=0.0, **_rule(min=0.0))
    ssim_weight: float = field(default=0.0, **_rule(min=0.0))
    # feature and adversarial terms: train_perceptual only
    vgg_weight: float = field(default=1.0, **_rule(min=0.0))
    vgg_layers: LayerWeights = field(default_factory=LayerWeights)
    vgg_init: str = field(default="random", **_rule(choices_or_file=BACKBONE_INITS))
    vgg19_weight: float = field(default=0.0, **_rule(min=0.0))
    vgg19_init: str = field(default="random", **_rule(choices_or_file=BACKBONE_INITS))
    resnet_weight: float = field(default=0.0, **_rule(min=0.0))
    resnet_init: str = field(default="random", **_rule(choices_or_file=BACKBONE_INITS))
    resnet_model: str = field(default="resnet18", **_rule(choices=tuple(RESNET_BLOCKS)))
    # the features after this residual block, counted from the first (6: the end of ResNet18's layer3)
    resnet_block: int = field(default=6, **_rule(min=1))
    adversarial_weight: float = field(default=0.0, **_rule(min=0.0))
    # false: train_perceptual leaves the pixel terms out (SRGAN's content + adversarial objective,
    # Johnson's feature loss alone); train_mse always uses them
    pixel_in_perceptual: bool = True

    def problem(self) -> str | None:
        if self.resnet_block > RESNET_BLOCKS[self.resnet_model]:
            return (
                f"resnet_block: {self.resnet_block} is past the last of {self.resnet_model}'s "
                f"{RESNET_BLOCKS[self.resnet_model]} residual blocks"
            )
        if not any(w > 0 for w in self.pixel_weights().values()):
            return "mse_weight, l1_weight and ssim_weight are all 0; train_mse needs at least one above 0"
        if not any(w > 0 for w in self.second_stage_weights().values()):
            return (
                "pixel_in_perceptual is false and vgg_weight, vgg19_weight, resnet_weight and adversarial_weight "
                "are all 0: train_perceptual would train on nothing"
            )
        return None

    def pixel_weights(self) -> dict[str, float]:
        """train_mse's terms (and, unless left out, part of train_perceptual's)."""
        return {"mse": self.mse_weight, "l1": self.l1_weight, "ssim": self.ssim_weight}

    def second_stage_weights(self) -> dict[str, float]:
        """train_perceptual's terms: the feature and adversarial ones, and the pixel ones unless left out."""
        pixel = self.pixel_weights() if self.pixel_in_perceptual else {k: 0.0 for k in self.pixel_weights()}
        return {
            **pixel,
            "perceptual": self.vgg_weight,
            "vgg19": self.vgg19_weight,
            "resnet": self.resnet_weight,
            "adversarial": self.adversarial_weight,
        }


@dataclass(frozen=True)
class EvalParams:
    sets: tuple[str, ...] = field(default=("Set5", "Set14"), **_rule(items=TEST_SETS))
    degradation: str = field(default="bicubic", **_rule(choices=DEGRADATIONS))
    histogram_match: bool = False  # also score each model's output after colour histogram matching
    self_ensemble: bool = False  # also score <model>_x8: outputs averaged over the 8 flips and rotations of the input
    lpips: str = field(
        default="auto", **_rule(choices=("auto", "off"))
    )  # auto: LPIPS-VGG when torchvision's ImageNet VGG16 is on disk
    rgb: bool = False  # also score rgb_psnr / rgb_ssim: RGB, no border shaved (the SRGAN note's way)
    vgg_layers: LayerWeights = field(default_factory=LayerWeights)
    precision: str = field(default="fp32", **_rule(choices=PRECISIONS))  # the models' convolutions only
    # published checkpoints (files in data/published/, read by spandrel) scored beside srlab's models
    models: tuple[str, ...] = field(default=(), **_rule(files=True))


@dataclass(frozen=True)
class PlotParams:
    crop: int = field(default=160, **_rule(min=16))


@dataclass(frozen=True)
class Params:
    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    loss: LossParams = field(default_factory=LossParams)
    eval: EvalParams = field(default_factory=EvalParams)
    plots: PlotParams = field(default_factory=PlotParams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def problem(self) -> str | None:
        crop, data = self.train.crop_size, self.data
        if crop and (crop % data.scale or crop > data.hr_size):
            return (
                f"train.crop_size: {crop} must be a multiple of data.scale ({data.scale}) "
                f"and at most data.hr_size ({data.hr_size}), or 0"
            )
        return None

    def trained_size(self) -> int:
        """The HR side of what the model trains on: the crop, or the whole prepared patch."""
        return self.train.crop_size or self.data.hr_size


def load_params(path: str | Path = "params.yaml", overrides: Iterable[str] = ()) -> Params:
    """Read, override (`key.sub=value`, value parsed as YAML) and validate the parameters."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise SrlabError(f"{path}: no such parameter file") from None
    except yaml.YAMLError as exc:
        raise SrlabError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SrlabError(f"{path}: expected a mapping of parameters at the top level")
    apply_overrides(raw, overrides)
    return parse_params(raw, source=str(path))


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """`key.sub=value` items (value parsed as YAML) written into the raw params tree."""
    for item in overrides:
        _apply_override(raw, item)
    return raw


def parse_params(raw: dict, source: str = "params") -> Params:
    try:
        return _build(Params, raw, prefix="")
    except SrlabError as exc:
        raise SrlabError(f"{source}: {exc}") from None


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SrlabError(f"--set {item!r}: expected key=value, e.g. loss.vgg_weight=0.3")
    *parents, leaf = key.strip().split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SrlabError(f"--set {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise SrlabError(f"{prefix.rstrip('.') or 'top level'}: expected a section (mapping), got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), fields, n=1)
            suggestion = f"; did you mean {prefix}{hint[0]}?" if hint else f"; known keys: {', '.join(fields)}"
            raise SrlabError(f"{prefix}{key}: unknown parameter{suggestion}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key, default = prefix + name, _default(f)
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), raw[name], key + ".")
        else:
            values[name] = _check_value(key, raw[name], default, f.metadata)
    section = cls(**values)
    problem = section.problem() if hasattr(section, "problem") else None  # rules across a section's keys
    if problem:
        raise SrlabError(f"{prefix.rstrip('.')}: {problem}" if prefix else problem)
    return section


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _check_value(key: str, value: Any, default: Any, rules) -> Any:
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise SrlabError(f"{key}: expected true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SrlabError(f"{key}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SrlabError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif kind is str:
        if isinstance(value, bool) and "off" in rules.get("choices", ()):
            value = "on" if value else "off"  # YAML 1.1 (DVC's -S, PyYAML) reads a bare off as false
        if not isinstance(value, str):
            raise SrlabError(f"{key}: expected a string, got {value!r}")
    elif kind is tuple:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, tuple):  # params stored in a checkpoint come back as tuples
            value = list(value)
        if rules.get("files"):  # file names, any or none
            if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
                raise SrlabError(f"{key}: expected a list of file names, got {value!r}")
            return tuple(value)
        if not isinstance(value, list) or not value:
            raise SrlabError(f"{key}: expected a non-empty list, got {value!r}")
        for item in value:
            _check_choice(key, item, rules.get("items", ()))
        return tuple(value)
    if "choices" in rules:
        _check_choice(key, value, rules["choices"])
    if "choices_or_file" in rules and value not in rules["choices_or_file"] and not Path(value).is_file():
        named = " nor ".join(repr(c) for c in rules["choices_or_file"])
        raise SrlabError(f"{key}: {value!r} is neither {named} nor an existing file")
    if "min" in rules and value < rules["min"]:
        raise SrlabError(f"{key}: must be at least {rules['min']}, got {value!r}")
    if "max" in rules and value > rules["max"]:
        raise SrlabError(f"{key}: must be at most {rules['max']}, got {value!r}")
    if "min_exclusive" in rules and value <= rules["min_exclusive"]:
        raise SrlabError(f"{key}: must be greater than {rules['min_exclusive']}, got {value!r}")
    if "max_exclusive" in rules and value >= rules["max_exclusive"]:
        raise SrlabError(f"{key}: must be less than {rules['max_exclusive']}, got {value!r}")
    return value


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value in choices:
        return
    hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    allowed = ", ".join(str(c) for c in choices)
    raise SrlabError(f"{key}: {value!r} is not one of {allowed}{suggestion}")
