"""The model registry: a plain {name: class} dict and one builder (no import-time scanning)."""

from __future__ import annotations

from torch import nn

from srlab.models.srcnn import SRCNN
from srlab.params import ModelParams

MODELS = {"srcnn": SRCNN}


def build_model(params: ModelParams, scale: int) -> nn.Module:
    return MODELS[params.name](scale=scale, upsample=params.upsample, residual=params.residual)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
