"""Prepared patches: aligned LR/HR pairs, stored as uint8 arrays, read back bit for bit."""

import numpy as np
from PIL import Image

from srlab.data.degrade import downscale, mod_crop
from srlab.data.patches import build_split, crop_pairs, load_pairs, save_pairs


def test_pairs_are_aligned_crops_of_the_image_and_its_degraded_copy(photo, rng):
    pairs = crop_pairs(photo, 2, 32, 5, "bicubic", rng)
    assert pairs.hr.shape == (5, 32, 32, 3) and pairs.lr.shape == (5, 16, 16, 3)
    assert pairs.hr.dtype == pairs.lr.dtype == np.uint8
    hr_full = mod_crop(photo, 2)
    lr_full = downscale(hr_full, 2, "bicubic")
    for hr, lr in zip(pairs.hr, pairs.lr):
        ys, xs = np.where((np.lib.stride_tricks.sliding_window_view(lr_full, (16, 16, 3)) == lr).all(axis=(-1, -2, -3, -4)))
        y, x = ys[0], xs[0]
        assert np.array_equal(hr_full[2 * y : 2 * y + 32, 2 * x : 2 * x + 32], hr)


def test_round_trip_through_disk(tmp_path, photo, rng):
    pairs = crop_pairs(photo, 3, 24, 4, "bilinear", rng)
    save_pairs(tmp_path, "train", pairs)
    back = load_pairs(tmp_path, "train")
    assert np.array_equal(back.hr, pairs.hr) and np.array_equal(back.lr, pairs.lr)


def test_bad_and_small_images_are_skipped_with_reasons(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "good.png")
    Image.fromarray(photo[:20, :20]).save(tmp_path / "tiny.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    pairs, used, skipped = build_split(sorted(tmp_path.iterdir()), 2, 32, 3, "bicubic", 0, "test")
    assert [u["file"] for u in used] == ["good.png"] and len(pairs.hr) == 3
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert reasons == {"empty.jpg": "empty file", "tiny.png": "20x20 is smaller than a 32px patch"}


def test_same_seed_same_bytes(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "a.png")
    first, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, "bicubic", 7, "test")
    second, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, "bicubic", 7, "test")
    other, _, _ = build_split([tmp_path / "a.png"], 2, 32, 6, "bicubic", 8, "test")
    assert first.hr.tobytes() == second.hr.tobytes()
    assert first.hr.tobytes() != other.hr.tobytes()
