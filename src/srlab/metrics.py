"""PSNR and SSIM the way published SR tables compute them.

Y channel of ITU-R BT.601 (16 + 65.481 R + 128.553 G + 24.966 B on [0, 1] RGB), a border of
`scale` pixels shaved, float64 in the 0..255 range, on uint8 images (outputs are clamped and
rounded first, as a saved image would be). SSIM: 11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03, 'valid' region. Agrees with scikit-image's structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255) and with BasicSR.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def psnr_y(output: np.ndarray, target: np.ndarray, border: int) -> float:
    a, b = shave(rgb_to_y(output), border), shave(rgb_to_y(target), border)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def psnr_rgb(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR over all three RGB channels, no border shaved: the SRGAN note's way (not comparable
    with published tables, which use psnr_y)."""
    mse = np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim_rgb(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM of each RGB channel (same window and constants as ssim_y), averaged; no border shaved."""
    a = torch.from_numpy(output.astype(np.float64)).permute(2, 0, 1)[:, None]
    b = torch.from_numpy(target.astype(np.float64)).permute(2, 0, 1)[:, None]
    return _ssim(a, b)


def _gaussian_blur(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """'valid' 11x11 Gaussian filter, applied as two 1-D passes (same result, 5x less work)."""
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return F.conv2d(F.conv2d(x, g.view(1, 1, size, 1)), g.view(1, 1, 1, size))


def ssim_y(output: np.ndarray, target: np.ndarray, border: int) -> float:
    a = torch.from_numpy(shave(rgb_to_y(output), border))[None, None]
    b = torch.from_numpy(shave(rgb_to_y(target), border))[None, None]
    return _ssim(a, b)


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_blur(a), _gaussian_blur(b)
    var_a = _gaussian_blur(a * a) - mu_a**2
    var_b = _gaussian_blur(b * b) - mu_b**2
    cov = _gaussian_blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
