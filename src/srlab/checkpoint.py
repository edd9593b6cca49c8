"""Checkpoints and model files: written atomically, read with weights_only so no pickle runs code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.models import MODELS
from srlab.params import ModelParams


def save(path: Path, payload: dict) -> None:
    # through a file object: given a path, torch names the archive's inner folder after the
    # (random) temporary file, and identical weights would hash differently in dvc.lock
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def load(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SrlabError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # a hostile pickle, a truncated file, a text file: all end here
        raise SrlabError(
            f"{path}: not a loadable srlab checkpoint ({type(exc).__name__}); "
            "only files of tensors and plain values are read, never arbitrary pickles"
        ) from None
    if not isinstance(payload, dict) or "model" not in payload or "meta" not in payload:
        raise SrlabError(f"{path}: not an srlab checkpoint (no model/meta entries)")
    return payload


def load_model(path: Path, scale: int | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a file describes; refuse one made for another scale."""
    payload = load(path)
    meta = payload["meta"]
    if meta.get("arch") not in MODELS:
        raise SrlabError(f"{path}: unknown model {meta.get('arch')!r}")
    if scale is not None and meta.get("scale") != scale:
        raise SrlabError(f"{path}: trained for x{meta.get('scale')}, but data.scale is {scale}")
    from srlab.models import build_model

    model = build_model(ModelParams(name=meta["arch"], upsample=meta["upsample"], residual=meta["residual"]), meta["scale"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise SrlabError(f"{path}: weights do not fit {meta['arch']} ({str(exc).splitlines()[0]})") from None
    return model.eval(), meta


def initialise_from(model: nn.Module, path: Path, arch: str, scale: int) -> list[str]:
    """Start `model` (an `arch` for x`scale`) from a model file's weights. The same arch and scale:
    every tensor. The same arch for another scale: every tensor whose name and shape match, as EDSR
    starts its x3 and x4 models from x2; the others (the upsampler) keep their fresh values and are
    returned. Another arch is refused."""
    source, meta = load_model(path)
    if meta["arch"] != arch:
        raise SrlabError(f"{path}: holds {meta['arch']} weights, which cannot start a {arch} model")
    if meta["scale"] == scale:
        model.load_state_dict(source.state_dict())
        return []
    weights, own = source.state_dict(), model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise SrlabError(f"{path}: none of its x{meta['scale']} weights fit the x{scale} {arch}")
    model.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))
