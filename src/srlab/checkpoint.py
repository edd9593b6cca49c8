"""Checkpoints and model files: written atomically, read without running any pickled code.

Model files are `.safetensors`: the weights, and in the header `format`, `arch`, `scale` and
`meta` (everything else srlab knows of the model, as JSON), so `safetensors` alone reads them
(`safe_open(path, "pt").metadata()`). Training checkpoints (`last.pt`, `best_*.pt`), which also
hold optimiser and RNG states, and model files of earlier srlab versions are torch files, read
with `weights_only=True`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.models import MODELS
from srlab.params import ModelParams

MODEL_FORMAT = "srlab-model/1"
_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save(path: Path, payload: dict) -> None:
    """A training checkpoint (or a legacy `.pt` model file): any tensors and plain values."""
    # through a file object: given a path, torch names the archive's inner folder after the
    # (random) temporary file, and identical weights would hash differently in dvc.lock
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def save_model(path: Path, weights: dict[str, torch.Tensor], meta: dict) -> None:
    """A model file: `.safetensors` (a `.pt` name keeps the torch format of earlier versions)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        save(path, {"model": weights, "meta": meta})
        return
    header = {
        "format": MODEL_FORMAT,
        "arch": str(meta["arch"]),
        "scale": str(meta["scale"]),
        "meta": json.dumps(meta, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(safetensors_bytes(weights, header))


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors format (an 8-byte header length, a JSON header, the raw little-endian data),
    written here rather than by `safetensors.torch.save`, whose header lists the metadata in a
    random order: identical weights must give identical files, which dvc.lock hashes."""
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        if tensor.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {tensor.dtype} has no safetensors name here")
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the format recommends
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def load(path: Path) -> dict:
    """{"model": weights, "meta": ...} of a model file or a checkpoint, or one line saying why not."""
    if Path(path).suffix == ".safetensors":
        return _load_safetensors(Path(path))
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


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise SrlabError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            weights = {name: f.get_tensor(name) for name in f.keys()}
        if header.get("format") != MODEL_FORMAT:
            raise ValueError(f"format {header.get('format')!r}, expected {MODEL_FORMAT!r}")
        meta = json.loads(header["meta"])
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise SrlabError(
            f"{path}: not a loadable srlab model file "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return {"model": weights, "meta": meta}


def load_model(path: Path, scale: int | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a model file or a training checkpoint (last.pt, best_*.pt, epoch_*.pt)
    describes; refuse one made for another scale."""
    payload = load(path)
    meta = architecture(payload["meta"])
    if meta.get("arch") not in MODELS:
        raise SrlabError(f"{path}: unknown model {meta.get('arch')!r}")
    if scale is not None and meta.get("scale") != scale:
        raise SrlabError(f"{path}: trained for x{meta.get('scale')}, but data.scale is {scale}")
    from srlab.models import build_model

    model = build_model(
        ModelParams(name=meta["arch"], upsample=meta["upsample"], residual=meta["residual"]), meta["scale"]
    )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise SrlabError(f"{path}: weights do not fit {meta['arch']} ({str(exc).splitlines()[0]})") from None
    return model.eval(), meta


def architecture(meta: dict) -> dict:
    """`meta` with arch, scale, upsample and residual, which training checkpoints of earlier
    versions kept only inside their params."""
    if "arch" in meta or "params" not in meta:
        return meta
    params = meta["params"]
    return {
        **meta,
        "arch": params["model"]["name"],
        "scale": params["data"]["scale"],
        "upsample": params["model"]["upsample"],
        "residual": params["model"]["residual"],
    }


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
