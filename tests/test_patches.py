"""Prepared pairs: aligned LR/HR crops streamed into a store that numpy alone reads back, bit for bit,
the same whatever the number of workers; tiles that cover each photo; a full disk is one line."""

import errno
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from srlab.data import store
from srlab.data.degrade import downscale, mod_crop
from srlab.data.patches import Cutting, Degradation, check_room, crop_pairs, cut_pairs, prepare_split
from srlab.errors import SrlabError
from srlab.fileio import file_md5
from srlab.params import DEGRADATIONS


def _photos(folder, photo, count=4):
    """`count` different photos: flips and crops of the fixture photo."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = np.flip(photo, axis=1) if i % 2 else photo
        paths.append(folder / f"{i:02d}.png")
        Image.fromarray(np.ascontiguousarray(img[i:, i:])).save(paths[-1])
    return paths


def _locate(lr_full: np.ndarray, patch: np.ndarray) -> tuple[int, int] | None:
    windows = np.lib.stride_tricks.sliding_window_view(lr_full, patch.shape)[:, :, 0]
    ys, xs = np.where((windows == patch).all(axis=(-1, -2, -3)))
    return (ys[0], xs[0]) if len(ys) else None


def test_pairs_are_aligned_crops_of_the_image_and_its_degraded_copy_at_their_corners(photo, rng):
    pairs = crop_pairs(photo, 2, 32, 5, Degradation("bicubic"), rng)
    assert pairs.hr.shape == (5, 32, 32, 3) and pairs.lr.shape == (5, 16, 16, 3) and pairs.corners.shape == (5, 2)
    assert pairs.hr.dtype == pairs.lr.dtype == np.uint8
    hr_full = mod_crop(photo, 2)
    lr_full = downscale(hr_full, 2, "bicubic")
    for hr, lr, (y, x) in zip(pairs.hr, pairs.lr, pairs.corners):
        assert np.array_equal(hr_full[y : y + 32, x : x + 32], hr)
        assert np.array_equal(lr_full[y // 2 : y // 2 + 16, x // 2 : x // 2 + 16], lr)


def test_tiles_cover_every_pixel_of_the_photo_and_stay_aligned(photo):
    cutting = Cutting(2, 40, Degradation("bicubic"), layout="tiles", step=20)
    tiles = cut_pairs(photo, cutting, np.random.default_rng(0))
    hr_full = mod_crop(photo, 2)  # 96 x 120
    assert len(tiles.hr) == cutting.pairs_in(photo.shape[1], photo.shape[0]) == 4 * 5
    covered = np.zeros(hr_full.shape[:2], bool)
    lr_full = downscale(hr_full, 2, "bicubic")
    for hr, lr, (y, x) in zip(tiles.hr, tiles.lr, tiles.corners):
        assert np.array_equal(hr_full[y : y + 40, x : x + 40], hr)
        assert np.array_equal(lr_full[y // 2 : y // 2 + 20, x // 2 : x // 2 + 20], lr)
        covered[y : y + 40, x : x + 40] = True
    assert covered.all()
    assert sorted({int(y) for y in tiles.corners[:, 0]}) == [0, 20, 40, 56]  # the last row flush with the bottom edge


def test_the_store_round_trips_through_disk_and_numpy_alone_reads_it(tmp_path, photo, rng):
    pairs = crop_pairs(photo, 3, 24, 4, Degradation("bilinear"), rng)
    store.save_pairs(tmp_path, "train", pairs)
    back = store.load_pairs(tmp_path, "train")
    mapped = store.open_pairs(tmp_path, "train")
    for kind in ("hr", "lr", "corners"):
        assert np.array_equal(getattr(back, kind), getattr(pairs, kind))
        assert np.array_equal(getattr(mapped, kind), getattr(pairs, kind))
    index = json.loads((tmp_path / "index.json").read_text())  # the documented format, without srlab
    entry = index["splits"]["train"]
    assert np.array_equal(np.load(tmp_path / entry["hr"]["file"], mmap_mode="r"), pairs.hr)
    content = hashlib.md5(pairs.hr.tobytes() + pairs.lr.tobytes()).hexdigest()  # so a checkpoint knows its data
    assert entry["photos"] == [{"file": "arrays", "md5": content, "first": 0, "count": 4}]


def test_an_array_file_filled_out_of_order_and_closed_up_is_a_plain_npy_file(tmp_path):
    f = store.ArrayFile(tmp_path / "a.npy", 9002, (2, 3), "<i4")
    f.create()
    for first in reversed(range(0, 9002, 7)):  # workers finish in any order
        f.write(first, np.full((7, 2, 3), first // 7, np.int32))
    f.move(7007, 7000, 1995)  # the rows of a photo that turned out unusable (block 1000) closed up
    entry = f.finish(8995)
    back = np.load(tmp_path / "a.npy")
    assert (
        back.shape == (8995, 2, 3)
        and entry["shape"] == [8995, 2, 3]
        and entry["bytes"] == (tmp_path / "a.npy").stat().st_size
    )
    assert back[6999, 0, 0] == 999 and back[7000, 0, 0] == 1001 and back[-1, 0, 0] == 1285
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]  # no partial file left
    assert len(store.npy_header((10**15, 480, 480, 3), np.uint8)) == store.HEADER_BYTES


def test_an_undecodable_photo_leaves_no_gap_in_the_store(tmp_path, photo):
    paths = _photos(tmp_path / "photos", photo, count=3)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 3])  # a truncated PNG: its header still says 120x96
    cutting = Cutting(2, 32, Degradation("bicubic"), count=5)
    entry, used, skipped = prepare_split(paths, tmp_path / "store", "train", cutting, 3)
    assert [s["file"] for s in skipped] == ["01.png"] and "cannot decode" in skipped[0]["reason"]
    assert [(p["file"], p["first"], p["count"]) for p in entry["photos"]] == [("00.png", 0, 5), ("02.png", 5, 5)]
    store.write_index(tmp_path / "store", {}, {"train": entry})
    back = store.load_pairs(tmp_path / "store", "train")
    third = cut_pairs(np.asarray(Image.open(paths[2]).convert("RGB")), cutting, np.random.default_rng([3, 2]))
    assert len(back) == 10 and np.array_equal(back.hr[5:], third.hr) and np.array_equal(back.lr[5:], third.lr)


def test_bad_and_small_images_are_skipped_with_reasons(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "good.png")
    Image.fromarray(photo[:20, :20]).save(tmp_path / "tiny.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cutting = Cutting(2, 32, Degradation("bicubic"), count=3)
    entry, used, skipped = prepare_split(sorted(tmp_path.iterdir()), tmp_path / "store", "train", cutting, 0)
    assert [u["file"] for u in used] == ["good.png"] and entry["count"] == 3
    assert [(p["file"], p["first"], p["count"]) for p in entry["photos"]] == [("good.png", 0, 3)]
    assert entry["photos"][0]["md5"] == file_md5(tmp_path / "good.png")  # what names the photo's content in the index
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert reasons == {"empty.jpg": "empty file", "tiny.png": "20x20 is smaller than a 32px patch"}


def _store_bytes(folder):
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


@pytest.mark.parametrize("layout", ["patches", "tiles"])
def test_the_store_is_byte_identical_with_one_or_two_workers_and_changes_with_the_seed(tmp_path, photo, layout):
    paths = _photos(tmp_path / "photos", photo, count=5)
    cutting = Cutting(2, 32, Degradation("mixed"), layout=layout, count=6, step=16)
    stores = {}
    for name, workers, seed in (("one", 1, 7), ("two", 2, 7), ("again", 2, 7), ("other", 1, 8)):
        entry, used, _ = prepare_split(paths, tmp_path / name, "train", cutting, seed, workers)
        assert len(used) == 5 and entry["count"] == sum(p["count"] for p in entry["photos"])
        stores[name] = _store_bytes(tmp_path / name)
    assert stores["one"] == stores["two"] == stores["again"]
    assert stores["other"] != stores["one"]  # the mixed kernels (and the patches' positions) follow the seed
    assert sorted(stores["one"]) == ["train_corners.npy", "train_hr.npy", "train_lr.npy"]


def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, photo, monkeypatch):
    paths = _photos(tmp_path / "photos", photo, count=3)
    writes = []

    def write_until_full(self, first, rows):
        writes.append(first)
        if len(writes) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, first, rows)

    real_write = store.ArrayFile.write
    monkeypatch.setattr(store.ArrayFile, "write", write_until_full)
    cutting = Cutting(2, 64, Degradation("bicubic"), count=300)  # 3 x 300 pairs of 15,368 bytes
    with pytest.raises(
        store.DiskFull, match=r"out: the disk is full \(No space left on device\); the store needs about 0.01 GB"
    ):
        prepare_split(paths, tmp_path / "out", "train", cutting, 0)
    assert list((tmp_path / "out").iterdir()) == []  # neither the arrays nor their partial files


def test_a_store_too_large_for_the_disk_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 90, 10**9))
    check_room(tmp_path / "data" / "patches", 10**9)  # exactly fits
    with pytest.raises(SrlabError, match=r"patches: the store needs about 2.00 GB and the disk has 1.00 GB free"):
        check_room(tmp_path / "data" / "patches", 2 * 10**9)


def test_an_old_or_missing_store_is_one_line_saying_what_to_run(tmp_path):
    with pytest.raises(SrlabError, match=r"no prepared store \(index.json missing; run `dvc repro prepare` first\)"):
        store.open_pairs(tmp_path, "train")
    (tmp_path / "index.json").write_text('{"format": "something else"}')
    with pytest.raises(SrlabError, match="expected 'srlab-store/1'; run `dvc repro -f prepare`"):
        store.open_pairs(tmp_path, "train")


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
        for kernel in DEGRADATIONS:
            at = _locate(downscale(hr_full, 3, kernel, 1.0), lr)
            if at and np.array_equal(hr_full[3 * at[0] : 3 * at[0] + 24, 3 * at[1] : 3 * at[1] + 24], hr):
                found.add(kernel)
                break
        else:
            raise AssertionError("an LR patch matches no kernel at its HR position")
    assert found == {"bicubic", "bilinear", "gaussian", "nearest"}


def test_sunhays80_prepares_to_the_same_bytes_with_one_and_two_workers(mirror, tmp_path):
    """The real training photos at the default patch settings (a re-run must give the same bytes)."""
    from srlab.data.images import is_image_file

    if not (mirror / "SunHays80").is_dir():  # a mirror of the downloaded test sets alone (GitHub CI)
        pytest.skip(f"no SunHays80 in the data mirror {mirror}")
    photos = sorted(p for p in (mirror / "SunHays80").iterdir() if is_image_file(p))
    cutting = Cutting(2, 64, Degradation("mixed"), count=48)
    _, used, skipped = prepare_split(photos, tmp_path / "one", "train", cutting, 0, workers=1)
    prepare_split(photos, tmp_path / "two", "train", cutting, 0, workers=2)
    assert len(used) == len(photos) == 80 and not skipped
    assert _store_bytes(tmp_path / "one") == _store_bytes(tmp_path / "two")


def test_a_disk_too_small_for_the_reserved_rows_is_one_line_before_any_photo_is_cut(tmp_path, photo, monkeypatch):
    """The rows are allocated up front, so a full disk is an error in prepare, never a SIGBUS in a
    worker writing through its mapping."""
    import os

    paths = _photos(tmp_path / "photos", photo, count=2)

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(store.DiskFull, match=r"out: the disk is full \(No space left on device\)"):
        prepare_split(paths, tmp_path / "out", "train", Cutting(2, 32, Degradation("bicubic"), count=3), 0)
    assert list((tmp_path / "out").iterdir()) == []


def test_bilinear_and_gaussian_degradations_match_independent_references(photo):
    """bilinear is PIL's antialiased bilinear resize; gaussian blurs each colour channel on its own
    (scipy's 2-D Gaussian, reflected edges) and then resizes with PIL's bicubic. The channels are
    made different first, so a blur that mixed them, or ran across them, would show."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    hr = mod_crop(photo, 4).copy()
    hr[..., 1] = 255 - hr[..., 1]  # channels far apart
    hr[: hr.shape[0] // 2, :, 2] = 0
    h, w = hr.shape[0] // 4, hr.shape[1] // 4
    reference = np.asarray(Image.fromarray(hr).resize((w, h), Image.Resampling.BILINEAR))
    assert np.array_equal(downscale(hr, 4, "bilinear"), reference)
    for sigma in (0.8, 1.6):
        channels = [gaussian_filter(hr[..., c].astype(np.float64), sigma, mode="reflect") for c in range(3)]
        blurred = np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)
        reference = np.asarray(Image.fromarray(blurred).resize((w, h), Image.Resampling.BICUBIC))
        got = downscale(hr, 4, "gaussian", sigma=sigma)
        assert np.abs(got.astype(int) - reference).max() <= 1, sigma  # float32 against float64 rounding
        assert (got != reference).mean() < 0.01, sigma


def test_val_crop_makes_the_val_split_one_centre_crop_per_photo_and_refuses_a_smaller_photo(tmp_path, photo):
    """The SRGAN note validates on centre crops of its validation photos (data.val_crop)."""
    from srlab.data.patches import prepare
    from srlab.params import DataParams

    raw = tmp_path / "raw"
    _photos(raw / "train", photo, count=2)
    val = _photos(raw / "val", photo, count=3)  # 120x96, 119x95, 118x94
    d = DataParams(scale=2, hr_size=32, patches_per_image=4, val_crop=80, workers=1)
    report, _ = prepare(d, 0, raw, tmp_path / "store", tmp_path / "report.json")
    assert (report["train"]["patches"], report["val"]["patches"]) == (8, 3)
    assert store.read_index(tmp_path / "store")["val_crop"] == 80
    crops = store.load_pairs(tmp_path / "store", "val")
    assert crops.hr.shape == (3, 80, 80, 3) and crops.lr.shape == (3, 40, 40, 3)
    for path, hr, lr, (y, x) in zip(val, crops.hr, crops.lr, crops.corners):
        full = mod_crop(np.asarray(Image.open(path)), 2)
        assert (y, x) == (
            (full.shape[0] // 2 - 40) // 2 * 2,
            (full.shape[1] // 2 - 40) // 2 * 2,
        )  # the middle, on the grid
        assert np.array_equal(full[y : y + 80, x : x + 80], hr)
        assert np.array_equal(downscale(full, 2, "bicubic")[y // 2 : y // 2 + 40, x // 2 : x // 2 + 40], lr)
    assert store.load_pairs(tmp_path / "store", "train").hr.shape == (8, 32, 32, 3)  # training's pairs as before

    before = _store_bytes(tmp_path / "store")
    with pytest.raises(SrlabError) as err:
        prepare(
            DataParams(scale=2, hr_size=32, val_crop=96, workers=1), 0, raw, tmp_path / "store", tmp_path / "r.json"
        )
    assert str(err.value) == f"data.val_crop: 96 px is larger than {val[1]} (119x95)"
    assert _store_bytes(tmp_path / "store") == before  # nothing written
