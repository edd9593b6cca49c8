"""LR/HR patch pairs materialised once as uint8 arrays, so training never decodes an image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srlab.data.degrade import KERNELS, downscale, mod_crop
from srlab.data.images import UnusableImage, load_rgb
from srlab.errors import SrlabError
from srlab.fileio import atomic_path


@dataclass
class PatchPairs:
    hr: np.ndarray  # N x H x W x 3 uint8
    lr: np.ndarray  # N x H/s x W/s x 3 uint8


@dataclass(frozen=True)
class Degradation:
    method: str  # one of KERNELS, or "mixed" to draw one of them per patch
    sigma: float = 1.0  # of the gaussian kernel


def crop_pairs(img: np.ndarray, scale: int, hr_size: int, count: int, degradation: Degradation, rng: np.random.Generator) -> PatchPairs:
    """Degrade the whole image once per kernel, then cut aligned patches (LR borders see real context)."""
    hr = mod_crop(img, scale)
    lr_size = hr_size // scale
    lr_h, lr_w = hr.shape[0] // scale, hr.shape[1] // scale
    ys = rng.integers(0, lr_h - lr_size + 1, size=count)
    xs = rng.integers(0, lr_w - lr_size + 1, size=count)
    if degradation.method == "mixed":
        kernels = [KERNELS[i] for i in rng.integers(0, len(KERNELS), size=count)]
    else:
        kernels = [degradation.method] * count
    lr_by_kernel = {k: downscale(hr, scale, k, degradation.sigma) for k in sorted(set(kernels))}
    return PatchPairs(
        hr=np.stack([hr[y * scale : y * scale + hr_size, x * scale : x * scale + hr_size] for y, x in zip(ys, xs)]),
        lr=np.stack([lr_by_kernel[k][y : y + lr_size, x : x + lr_size] for y, x, k in zip(ys, xs, kernels)]),
    )


def build_split(paths: list[Path], scale: int, hr_size: int, count: int, degradation: Degradation, seed: int, desc: str):
    """Patches of every usable image, and a report entry for each image used or skipped."""
    rng = np.random.default_rng(seed)
    pairs, used, skipped = [], [], []
    for path in tqdm(paths, desc=desc, unit="img", disable=None):
        try:
            img, note = load_rgb(path)
            if min(img.shape[:2]) < hr_size:
                raise UnusableImage(f"{img.shape[1]}x{img.shape[0]} is smaller than a {hr_size}px patch")
        except UnusableImage as exc:
            skipped.append({"file": path.name, "reason": str(exc)})
            continue
        pairs.append(crop_pairs(img, scale, hr_size, count, degradation, rng))
        used.append({"file": path.name, "size": [img.shape[1], img.shape[0]], "converted": note})
    if not pairs:
        return None, used, skipped
    return PatchPairs(np.concatenate([p.hr for p in pairs]), np.concatenate([p.lr for p in pairs])), used, skipped


def save_pairs(folder: Path, split: str, pairs: PatchPairs) -> None:
    for kind in ("hr", "lr"):
        with atomic_path(folder / f"{split}_{kind}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, getattr(pairs, kind))


def require_prepared(folder: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    """One clear line, before anything is written, when the prepare stage has not run."""
    missing = [f"{split}_{kind}.npy" for split in splits for kind in ("hr", "lr") if not (Path(folder) / f"{split}_{kind}.npy").is_file()]
    if missing:
        raise SrlabError(f"{folder}: no prepared {', '.join(missing)} (run `dvc repro prepare` first)")


def load_pairs(folder: Path, split: str) -> PatchPairs:
    require_prepared(folder, (split,))
    try:
        return PatchPairs(*(np.load(Path(folder) / f"{split}_{kind}.npy") for kind in ("hr", "lr")))
    except (OSError, ValueError) as exc:  # truncated or not an array
        raise SrlabError(f"{folder}: unreadable {split} patches ({exc}); run `dvc repro -f prepare`") from None
