"""Running a trained model on whole images, in overlapping tiles so memory stays bounded."""

from __future__ import annotations

import numpy as np
import torch

from srlab.device import autocast
from srlab.params import PRECISIONS

CHANNELS_LAST = torch.channels_last  # NHWC: faster convolutions on CPU (oneDNN) and GPU (cuDNN)
TILE = 256  # LR pixels per tile side: a 1080p frame at x2 is a few dozen tiles
OVERLAP = 16  # LR context around each tile; more than any srlab model's receptive radius


def to_tensor(img: np.ndarray, device) -> torch.Tensor:
    t = torch.tensor(img).permute(2, 0, 1)[None].to(device).float().div_(255.0)  # copy: PIL arrays are read-only
    return t.contiguous(memory_format=CHANNELS_LAST)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """Clamp and round as a saved image would be; scores are computed on this."""
    return t[0].clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def _to_float(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).float().cpu().numpy()


def histogram_match(sr: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Match each colour channel's histogram of `sr` to `reference` (e.g. the LR input), rounded.
    One channel at a time: with `channel_axis`, skimage writes its float result into a uint8 array,
    which truncates (0.5 darker on average)."""
    from skimage.exposure import match_histograms

    matched = np.stack([match_histograms(sr[..., c], reference[..., c]) for c in range(sr.shape[-1])], axis=-1)
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


@torch.no_grad()
def super_resolve(
    model: torch.nn.Module,
    lr: np.ndarray,
    device,
    scale: int | None = None,
    tile: int | None = None,
    overlap: int = OVERLAP,
    raw: bool = False,
    precision: str = "fp32",
) -> np.ndarray:
    """The HR image of uint8 `lr` (H x W x 3): uint8, or unclamped float32 in [0, 1] when `raw`.

    With `tile`, the model sees at most (tile + 2 * overlap)^2 LR pixels at a time and only the
    centre of each result is kept, so tiled and whole-image outputs agree wherever the overlap
    covers the model's receptive field. `precision` bf16 runs the model in bfloat16 (autocast).
    """
    convert = _to_float if raw else to_uint8
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    with autocast(precision, device):
        return _tiled(model, lr, device, scale, tile, overlap, lambda t: convert(t.float()), raw)


def _tiled(model, lr, device, scale, tile, overlap, convert, raw) -> np.ndarray:
    h, w = lr.shape[:2]
    if tile is None or (h <= tile and w <= tile):
        return convert(model(to_tensor(lr, device)))
    s = scale or model.scale
    out = np.empty((h * s, w * s, 3), np.float32 if raw else np.uint8)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
            yb, xb = min(y1 + overlap, h), min(x1 + overlap, w)
            piece = model(to_tensor(lr[ya:yb, xa:xb], device))
            keep = piece[..., (y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s]
            out[y0 * s : y1 * s, x0 * s : x1 * s] = convert(keep)
    return out


def self_ensemble(
    model: torch.nn.Module,
    lr: np.ndarray,
    device,
    tile: int | None = None,
    overlap: int = OVERLAP,
    precision: str = "fp32",
) -> np.ndarray:
    """The mean of the model's outputs over the 8 flips and rotations of `lr`, each transform
    undone (the geometric self-ensemble of Timofte et al. 2016, EDSR+): 8x the compute, no training."""
    total = None
    for quarter_turns in range(4):
        for mirrored in (False, True):
            x = np.rot90(lr, quarter_turns)
            x = x[:, ::-1] if mirrored else x
            y = super_resolve(
                model, np.ascontiguousarray(x), device, tile=tile, overlap=overlap, raw=True, precision=precision
            )
            y = y[:, ::-1] if mirrored else y
            y = np.rot90(y, -quarter_turns)
            total = y if total is None else total + y
    return np.clip(np.rint(total / 8 * 255.0), 0, 255).astype(np.uint8)
