"""Augmentation of training batches, on the training device: random aligned crops, the 8
symmetries of the square, and small rotations whose LR images are made again from the rotated HR."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from srlab.data.degrade import downscale, rotate
from srlab.data.loader import as_float
from srlab.params import DEGRADATIONS, Params


def augment(
    lr: torch.Tensor,
    hr: torch.Tensor,
    flips: torch.Tensor,
    corners: torch.Tensor | None,
    crop: int,
    scale: int,
    layout,
    remake: Callable | None = None,
) -> list[torch.Tensor]:
    """A uint8 batch as the model trains on it: each pair cropped at its corner (when there are
    corners), made again from its HR side by `remake` (a rotation), converted to float and
    flipped, LR and HR alike so the pairs stay aligned."""
    if corners is not None:
        corners = corners.to(lr.device)
        lr, hr = crop_at(lr, corners, crop // scale), crop_at(hr, corners * scale, crop)
    if remake is not None:
        lr, hr = remake(hr)
    flips = flips.to(lr.device)
    return [as_float(apply_flips(t, flips), layout) for t in (lr, hr)]  # flipped as bytes: a quarter of the traffic


def draw_corners(batch: int, patch: int, crop: int, scale: int, generator: torch.Generator) -> torch.Tensor:
    """2 x batch top-left corners of `crop`-pixel HR crops of `patch`-pixel patches, in LR pixels
    (so that the HR corner, `scale` times it, lands on the LR grid)."""
    return torch.randint(0, (patch - crop) // scale + 1, (2, batch), generator=generator)


def crop_at(x: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """The `size` x `size` window of each image of `x` (N x C x H x W) whose top-left corner is
    (corners[0, n], corners[1, n]), gathered in one indexing operation."""
    steps = torch.arange(size, device=x.device)
    rows, cols = corners[0, :, None] + steps, corners[1, :, None] + steps  # N x size each
    picked = x[torch.arange(len(x), device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)  # the indexed dims come first: N x size x size x C


def draw_rotations(p: Params, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    """One angle per sample, uniform in [-train.rotate_degrees, train.rotate_degrees], and the
    kernel that makes its LR image (one drawn per sample when data.degradation is mixed)."""
    batch = p.train.batch_size
    angles = (torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * p.train.rotate_degrees
    if p.data.degradation != "mixed":
        return angles, [p.data.degradation] * batch
    return angles, [
        DEGRADATIONS[i] for i in torch.randint(0, len(DEGRADATIONS), (batch,), generator=generator).tolist()
    ]


def rotation(p: Params, angles: torch.Tensor, kernels: list[str]) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """HR batch (N x 3 x H x W uint8) -> [LR, HR]: each HR image rotated by its angle (bicubic,
    edges reflected, same size) and its LR made from the rotated image with its kernel, on the CPU
    by the functions that prepared the store, so LR and HR stay an exact pair."""

    def remake(hr: torch.Tensor) -> list[torch.Tensor]:
        rotated = [rotate(img, float(a)) for img, a in zip(hr.permute(0, 2, 3, 1).cpu().numpy(), angles)]
        lrs = [downscale(img, p.data.scale, k, p.data.blur_sigma) for img, k in zip(rotated, kernels)]
        return [torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).to(hr.device) for x in (lrs, rotated)]

    return remake


def draw_flips(batch: int, generator: torch.Generator, kind: str = "all") -> torch.Tensor:
    """Per sample, whether to flip horizontally, flip vertically, transpose: one of the 8 symmetries
    of a square (`all`), a horizontal flip or not (`horizontal`), or nothing (`none`). The same
    draws whatever the kind, so every later draw of a run is the same too."""
    flips = torch.randint(0, 2, (3, batch), generator=generator).bool()
    keep = {"all": 3, "horizontal": 1, "none": 0}[kind]
    flips[keep:] = False
    return flips


def apply_flips(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """The same flips for an LR batch and its HR batch keep the pairs aligned."""
    x = torch.where(flips[0, :, None, None, None], x.flip(-1), x)
    x = torch.where(flips[1, :, None, None, None], x.flip(-2), x)
    return torch.where(flips[2, :, None, None, None], x.transpose(-1, -2), x)
