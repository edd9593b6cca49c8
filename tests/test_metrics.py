"""PSNR / SSIM as published tables compute them, checked against scikit-image and the references."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srlab.data.degrade import downscale, interpolate, mod_crop
from srlab.data.images import load_rgb
from srlab.metrics import psnr_y, rgb_to_y, shave, ssim_y


def _pair(rng, shape=(61, 75, 3), noise=12):
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("border", [0, 2, 4])
def test_psnr_and_ssim_agree_with_scikit_image(rng, border):
    for _ in range(3):
        out, ref = _pair(rng)
        y_out, y_ref = shave(rgb_to_y(out), border), shave(rgb_to_y(ref), border)
        expected_psnr = peak_signal_noise_ratio(y_ref, y_out, data_range=255)
        expected_ssim = structural_similarity(
            y_ref, y_out, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert psnr_y(out, ref, border) == pytest.approx(expected_psnr, abs=1e-4)
        assert ssim_y(out, ref, border) == pytest.approx(expected_ssim, abs=1e-6)


def test_y_channel_is_bt601():
    white, black = np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert rgb_to_y(red)[0, 0] == pytest.approx(16 + 65.481)


def test_identical_images_score_perfectly(rng):
    a, _ = _pair(rng)
    assert psnr_y(a, a, 2) == float("inf")
    assert ssim_y(a, a, 2) == pytest.approx(1.0)


# the data mirror's published bicubic baselines: PIL bicubic down then up, Y channel, `scale` border shaved
REFERENCE = {
    ("Set5", 2): 33.67,
    ("Set5", 3): 30.40,
    ("Set5", 4): 28.43,
    ("Set14", 2): 30.32,
    ("Set14", 3): 27.63,
    ("Set14", 4): 26.09,
}


@pytest.mark.parametrize("set_name, scale", sorted(REFERENCE))
def test_bicubic_baseline_reproduces_the_reference_numbers(mirror, set_name, scale):
    scores = []
    for path in sorted((mirror / set_name).glob("*.png")):
        hr = mod_crop(load_rgb(path)[0], scale)
        scores.append(psnr_y(interpolate(downscale(hr, scale, "bicubic"), scale, "bicubic"), hr, scale))
    assert np.mean(scores) == pytest.approx(REFERENCE[set_name, scale], abs=0.05)
