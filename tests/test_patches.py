"""Prepared patches: aligned LR/HR pairs, stored as uint8 arrays, read back bit for bit."""

import numpy as np
from PIL import Image

from srlab.data.degrade import downscale, mod_crop
from srlab.data.patches import Degradation, build_split, crop_pairs, load_pairs, save_pairs


def test_pairs_are_aligned_crops_of_the_image_and_its_degraded_copy(photo, rng):
    pairs = crop_pairs(photo, 2, 32, 5, Degradation("bicubic"), rng)
    assert pairs.hr.shape == (5, 32, 32, 3) and pairs.lr.shape == (5, 16, 16, 3)
    assert pairs.hr.dtype == pairs.lr.dtype == np.uint8
    hr_full = mod_crop(photo, 2)
    lr_full = downscale(hr_full, 2, "bicubic")
    for hr, lr in zip(pairs.hr, pairs.lr):
        ys, xs = np.where((np.lib.stride_tricks.sliding_window_view(lr_full, (16, 16, 3)) == lr).all(axis=(-1, -2, -3, -4)))
        y, x = ys[0], xs[0]
        assert np.array_equal(hr_full[2 * y : 2 * y + 32, 2 * x : 2 * x + 32], hr)


def test_round_trip_through_disk(tmp_path, photo, rng):
    pairs = crop_pairs(photo, 3, 24, 4, Degradation("bilinear"), rng)
    save_pairs(tmp_path, "train", pairs)
    back = load_pairs(tmp_path, "train")
    assert np.array_equal(back.hr, pairs.hr) and np.array_equal(back.lr, pairs.lr)


def test_bad_and_small_images_are_skipped_with_reasons(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "good.png")
    Image.fromarray(photo[:20, :20]).save(tmp_path / "tiny.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    pairs, used, skipped = build_split(sorted(tmp_path.iterdir()), 2, 32, 3, Degradation("bicubic"), 0, "test")
    assert [u["file"] for u in used] == ["good.png"] and len(pairs.hr) == 3
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert reasons == {"empty.jpg": "empty file", "tiny.png": "20x20 is smaller than a 32px patch"}


def test_same_seed_same_bytes(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "a.png")
    first, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, Degradation("bicubic"), 7, "test")
    second, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, Degradation("bicubic"), 7, "test")
    other, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, Degradation("bicubic"), 8, "test")
    assert first.hr.tobytes() == second.hr.tobytes()
    assert first.hr.tobytes() != other.hr.tobytes()


def _locate(lr_full: np.ndarray, patch: np.ndarray) -> tuple[int, int] | None:
    windows = np.lib.stride_tricks.sliding_window_view(lr_full, patch.shape)[:, :, 0]
    ys, xs = np.where((windows == patch).all(axis=(-1, -2, -3)))
    return (ys[0], xs[0]) if len(ys) else None


def test_gaussian_blurs_before_the_bicubic_step(photo):
    hr = mod_crop(photo, 4)
    blurred = downscale(hr, 4, "gaussian", sigma=1.0)
    plain = downscale(hr, 4, "bicubic")
    assert blurred.shape == plain.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
    assert np.abs(blurred.astype(int) - plain).mean() > 0.5  # the blur is visible
    stronger = downscale(hr, 4, "gaussian", sigma=2.0)
    # more blur, less detail: lower variance of the Laplacian-like difference
    assert np.diff(stronger.astype(float), axis=1).std() < np.diff(blurred.astype(float), axis=1).std()


def test_mixed_draws_one_kernel_per_patch(photo):
    pairs = crop_pairs(photo, 3, 24, 30, Degradation("mixed", sigma=1.0), np.random.default_rng(0))
    hr_full = mod_crop(photo, 3)
    found = set()
    for hr, lr in zip(pairs.hr, pairs.lr):
        for kernel in ("bicubic", "bilinear", "gaussian"):
            at = _locate(downscale(hr_full, 3, kernel, 1.0), lr)
            if at and np.array_equal(hr_full[3 * at[0] : 3 * at[0] + 24, 3 * at[1] : 3 * at[1] + 24], hr):
                found.add(kernel)
                break
        else:
            raise AssertionError("an LR patch matches no kernel at its HR position")
    assert found == {"bicubic", "bilinear", "gaussian"}


def test_sunhays80_prepares_to_the_same_bytes_twice(mirror):
    """The real training photos at the default patch settings (issue #4: byte-identical reruns)."""
    from srlab.data.images import is_image_file

    photos = sorted(p for p in (mirror / "SunHays80").iterdir() if is_image_file(p))
    first, used, skipped = build_split(photos, 2, 64, 48, Degradation("mixed"), 0, "train")
    second, _, _ = build_split(photos, 2, 64, 48, Degradation("mixed"), 0, "train")
    assert len(used) == len(photos) == 80 and not skipped
    assert first.hr.tobytes() == second.hr.tobytes() and first.lr.tobytes() == second.lr.tobytes()
