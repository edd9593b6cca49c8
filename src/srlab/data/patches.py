"""LR/HR pairs cut from each photo once and streamed into the store, so training never decodes an image.

Two layouts (`data.layout`), one store format:
- `patches`: `data.patches_per_image` pairs at random positions, as the assignment note does;
- `tiles`: a grid of `data.hr_size` tiles every `data.tile_step` pixels, the last row and column
  flush with the edges, so every pixel of the photo is kept (BasicSR's sub-images). Training then
  draws a fresh random crop of `train.crop_size` from a tile every step.
With `data.val_crop`, the val split is instead one centre crop of that side per photo (`centre`),
as the SRGAN note validates.

Each photo is cut with its own random generator (seeded by the seed and its place in the sorted
list) and written by the process that cut it into rows reserved for it from the photos' headers,
so the store is byte-identical whatever the number of workers and whatever order they finish in,
and memory holds one photo per worker, never the collection.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from srlab.data.degrade import downscale, mod_crop
from srlab.data.images import UnusableImage, is_image_file, load_rgb
from srlab.data.store import Pairs, SplitFiles, gigabytes, raise_if_disk_full, write_index
from srlab.errors import SrlabError
from srlab.fileio import file_md5, staged_folder, write_json
from srlab.params import DEGRADATIONS, DataParams


@dataclass(frozen=True)
class Degradation:
    method: str  # one of DEGRADATIONS, or "mixed" to draw one of them per pair
    sigma: float = 1.0  # of the gaussian kernel


@dataclass(frozen=True)
class Cutting:
    """How prepare cuts a photo into pairs."""

    scale: int
    hr_size: int
    degradation: Degradation
    layout: str = "patches"  # patches | tiles | centre (one crop in the middle of the photo)
    count: int = 48  # patches: pairs per photo
    step: int = 0  # tiles: HR pixels between tile corners

    def pairs_in(self, width: int, height: int) -> int:
        """How many pairs a photo of this size gives (0 when it is smaller than one pair)."""
        if min(width, height) < self.hr_size:
            return 0
        if self.layout == "patches":
            return self.count
        if self.layout == "centre":
            return 1
        lr_size, lr_step = self.hr_size // self.scale, self.step // self.scale
        return len(_grid(height // self.scale, lr_size, lr_step)) * len(_grid(width // self.scale, lr_size, lr_step))

    def row_bytes(self) -> int:
        lr_size = self.hr_size // self.scale
        return 3 * (self.hr_size**2 + lr_size**2) + 8


def cut_pairs(img: np.ndarray, cutting: Cutting, rng: np.random.Generator) -> Pairs:
    """Degrade the whole photo once per kernel, then cut aligned pairs (LR borders see real context)."""
    scale, hr_size = cutting.scale, cutting.hr_size
    hr = mod_crop(img, scale)
    lr_size = hr_size // scale
    lr_h, lr_w = hr.shape[0] // scale, hr.shape[1] // scale
    if cutting.layout == "tiles":
        lr_step = cutting.step // scale
        ys, xs = (
            a.ravel() for a in np.meshgrid(_grid(lr_h, lr_size, lr_step), _grid(lr_w, lr_size, lr_step), indexing="ij")
        )
    elif cutting.layout == "centre":
        ys, xs = np.array([(lr_h - lr_size) // 2]), np.array([(lr_w - lr_size) // 2])
    else:
        ys = rng.integers(0, lr_h - lr_size + 1, size=cutting.count)
        xs = rng.integers(0, lr_w - lr_size + 1, size=cutting.count)
    method, n = cutting.degradation.method, len(ys)
    kernels = (
        [DEGRADATIONS[i] for i in rng.integers(0, len(DEGRADATIONS), size=n)] if method == "mixed" else [method] * n
    )
    lr_by_kernel = {k: downscale(hr, scale, k, cutting.degradation.sigma) for k in sorted(set(kernels))}
    return Pairs(
        hr=np.stack([hr[y * scale : y * scale + hr_size, x * scale : x * scale + hr_size] for y, x in zip(ys, xs)]),
        lr=np.stack([lr_by_kernel[k][y : y + lr_size, x : x + lr_size] for y, x, k in zip(ys, xs, kernels)]),
        corners=np.stack([ys * scale, xs * scale], axis=1).astype(np.int32),
    )


def crop_pairs(
    img: np.ndarray, scale: int, hr_size: int, count: int, degradation: Degradation, rng: np.random.Generator
) -> Pairs:
    """`count` pairs at random positions of one photo."""
    return cut_pairs(img, Cutting(scale, hr_size, degradation, "patches", count), rng)


def _grid(length: int, size: int, step: int) -> list[int]:
    """Corners every `step` along `length`, plus one flush with the end, so the tiles cover it."""
    corners = list(range(0, length - size + 1, step))
    if corners and corners[-1] != length - size:
        corners.append(length - size)
    return corners


def _cut_one(task: tuple) -> tuple[dict, dict | None]:
    """A worker's job: decode, check and cut one photo, and write its pairs at the rows reserved for
    it. Returns its report entry and, when it was used, its place in the store."""
    index, path, cutting, seed, files, first, reserved = task
    try:
        img, note = load_rgb(path)
        if min(img.shape[:2]) < cutting.hr_size:
            raise UnusableImage(f"{img.shape[1]}x{img.shape[0]} is smaller than a {cutting.hr_size}px patch")
        if cutting.pairs_in(img.shape[1], img.shape[0]) != reserved:  # a header that lied about the size
            raise UnusableImage(f"decoded as {img.shape[1]}x{img.shape[0]}, not the size its header gives")
    except UnusableImage as exc:
        return {"file": path.name, "reason": str(exc)}, None
    pairs = cut_pairs(img, cutting, np.random.default_rng([seed, index]))
    files.write(first, pairs)
    return (
        {"file": path.name, "size": [img.shape[1], img.shape[0]], "converted": note},
        {"file": path.name, "first": first, "count": len(pairs), "md5": file_md5(path)},
    )


def header_pairs(paths: list[Path], cutting: Cutting) -> list[int]:
    """How many pairs each photo will give, from its header alone (no decoding): the rows reserved
    for it. 0 for a file that is not an image; the worker then says why."""
    counts = []
    for path in paths:
        try:
            with warnings.catch_warnings(), Image.open(path) as im:
                warnings.simplefilter("ignore")  # a decompression bomb: the worker refuses it and says so
                counts.append(cutting.pairs_in(*im.size))  # EXIF rotation swaps the sides: same count
        except Exception:
            counts.append(0)
    return counts


def prepare_split(
    paths: list[Path],
    folder: Path,
    split: str,
    cutting: Cutting,
    seed: int,
    workers: int = 1,
    counts: list[int] | None = None,
) -> tuple[dict | None, list[dict], list[dict]]:
    """Cut every usable photo's pairs into `folder`'s {split}_*.npy with `workers` processes; returns
    the split's index entry (None when no photo was usable) and the report entries of the photos
    used and skipped. `counts`: the pairs reserved per photo (header_pairs, when already read)."""
    counts = header_pairs(paths, cutting) if counts is None else counts
    firsts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    files = SplitFiles.for_split(folder, split, cutting.hr_size, cutting.scale, firsts[-1])
    tasks = [(i, path, cutting, seed, files, firsts[i], counts[i]) for i, path in enumerate(paths)]
    used, skipped, placed = [], [], []
    try:
        files.create()
        for report, place in tqdm(
            _in_workers(_cut_one, tasks, workers), total=len(tasks), desc=split, unit="img", disable=None
        ):
            (used if place else skipped).append(report)
            if place:
                placed.append(place)
        if not used:
            files.abort()
            return None, used, skipped
        return files.finish(placed), used, skipped
    except OSError as exc:
        files.abort()
        raise_if_disk_full(exc, folder, sum(counts) * cutting.row_bytes())
        raise
    except BaseException:
        files.abort()
        raise


def _in_workers(fn, tasks: list, workers: int):
    """fn(task) for each task, in order: in a pool of `workers` processes (fork: cheap, and the
    parent holds no threads or torch state here), or in this process for one worker or one task."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(fn, tasks)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(fn, tasks, chunksize=1)


def check_room(folder: Path, needed: int) -> None:
    """One line, before anything is written, when the disk cannot hold the store."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise SrlabError(f"{folder}: the store needs about {gigabytes(needed)} and the disk has {gigabytes(free)} free")


def refuse_smaller_than(paths: list[Path], side: int, param: str) -> None:
    """One line naming the first photo smaller than a `side` px crop (from its header)."""
    for path in paths:
        try:
            with warnings.catch_warnings(), Image.open(path) as im:
                warnings.simplefilter("ignore")
                size = im.size
        except Exception:
            continue  # not an image: the worker skips it and says why in the report
        if min(size) < side:
            raise SrlabError(f"{param}: {side} px is larger than {path} ({size[0]}x{size[1]})")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def prepare(d: DataParams, seed: int, raw: Path, out: Path, report_path: Path) -> tuple[dict, int]:
    """The prepare stage: the train and val photos under `raw` cut into the store `out` (swapped
    in whole at the end), and a report of every image written to `report_path`; returns the report
    and the number of worker processes (not in the report: the store does not depend on it)."""
    cutting = Cutting(
        d.scale, d.hr_size, Degradation(d.degradation, d.blur_sigma), d.layout, d.patches_per_image, d.step()
    )
    cuttings = {
        "train": cutting,
        "val": replace(cutting, layout="centre", hr_size=d.val_crop) if d.val_crop else cutting,
    }
    workers = d.workers or default_workers()
    meta = {
        "layout": d.layout,
        "scale": d.scale,
        "hr_size": d.hr_size,
        "lr_size": d.hr_size // d.scale,
        "degradation": d.degradation,
    }
    meta.update({"patches_per_image": d.patches_per_image} if d.layout == "patches" else {"tile_step": d.step()})
    if d.degradation in ("gaussian", "mixed"):
        meta["blur_sigma"] = d.blur_sigma
    if d.val_crop:
        meta["val_crop"] = d.val_crop
    photos = {split: sorted(f for f in (raw / split).iterdir() if is_image_file(f)) for split in ("train", "val")}
    if d.val_crop:
        refuse_smaller_than(photos["val"], d.val_crop, "data.val_crop")
    counts = {split: header_pairs(paths, cuttings[split]) for split, paths in photos.items()}
    check_room(out.parent, sum(sum(counts[s]) * cuttings[s].row_bytes() for s in counts))

    report, splits = dict(meta), {}
    with staged_folder(out) as staging:
        for offset, (split, paths) in enumerate(photos.items()):
            entry, used, skipped = prepare_split(
                paths, staging, split, cuttings[split], seed + offset, workers, counts[split]
            )
            report[split] = {
                "images": len(used),
                "skipped": len(skipped),
                "patches": entry["count"] if entry else 0,
                "used": used,
                "skipped_files": skipped,
            }
            if entry is None:
                write_json(report_path, report)
                raise SrlabError(f"{raw / split}: no usable image among {len(paths)} (reasons in {report_path})")
            splits[split] = entry
        write_index(staging, meta, splits)
    report["bytes"] = sum(e[kind]["bytes"] for e in splits.values() for kind in ("hr", "lr", "corners"))
    write_json(report_path, report)
    return report, workers
