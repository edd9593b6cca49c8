"""Degradations that turn an HR image into its LR input, and the matching upsamplers.

PIL's resize is antialiased when it shrinks, which is what MATLAB's imresize does, and what the
published bicubic baselines of SR papers were computed with.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.ndimage import rotate as _rotate

RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}  # nearest: see docs/notes.md, the residual CNN


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of `scale` (LR size is then exact)."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]


def resize(img: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((width, height), RESAMPLE[method]))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """An exact Gaussian per channel (PIL's GaussianBlur approximates it with box filters)."""
    blurred = gaussian_filter(img.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def downscale(hr: np.ndarray, scale: int, method: str, sigma: float = 1.0) -> np.ndarray:
    """HR (already mod-cropped) to LR: bicubic, bilinear, nearest (every scale-th pixel), or
    gaussian (blur by `sigma`, then bicubic)."""
    if method == "gaussian":
        hr, method = gaussian_blur(hr, sigma), "bicubic"
    return resize(hr, hr.shape[1] // scale, hr.shape[0] // scale, method)


def interpolate(lr: np.ndarray, scale: int, method: str) -> np.ndarray:
    return resize(lr, lr.shape[1] * scale, lr.shape[0] * scale, method)


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotated about its centre by `degrees` (counter-clockwise), bicubic, same size, the corners
    filled by reflecting the image rather than with black."""
    turned = _rotate(img.astype(np.float32), degrees, axes=(1, 0), reshape=False, order=3, mode="reflect")
    return np.clip(np.rint(turned), 0, 255).astype(np.uint8)
