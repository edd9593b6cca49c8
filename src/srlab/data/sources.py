"""Where images come from: the embedded sample photos, a user's folder, VOC2011, DIV2K, and the test sets.

Remote datasets are looked up in the data mirrors first (an extracted folder with the name in
`mirror`, or the official archive file), then downloaded with a checksum and extracted safely. The
pipeline's mirror is `data.mirror` (data/mirror/), a dependency of the download stage, so DVC
hashes what is in it; $SRLAB_DATA_MIRROR, looked in next, is an environment variable DVC cannot see.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from srlab.backbones import require_imagenet
from srlab.data.download import fetch, safe_extract
from srlab.data.images import is_image_file
from srlab.errors import SrlabError
from srlab.fileio import file_md5, staged_folder, write_json
from srlab.params import TEST_SETS as TEST_SET_NAMES
from srlab.params import Params

MIRROR_VARIABLE = "SRLAB_DATA_MIRROR"


@dataclass(frozen=True)
class RemoteArchive:
    url: str
    md5: str
    inner: str  # folder inside the extracted archive that holds the HR images
    mirror: str  # name of the same folder, extracted, in a data mirror

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# EDSR's benchmark archive holds Set5, Set14, B100 and Urban100 with their HR ground truth.
_EDSR_BENCHMARK = ("https://cv.snu.ac.kr/research/EDSR/benchmark.tar", "4ace41d33c2384b97e6b320cd0afd6ba")
TEST_SETS = {
    name: RemoteArchive(*_EDSR_BENCHMARK, inner=f"benchmark/{name}/HR", mirror=name) for name in TEST_SET_NAMES
}

# The archive and md5 torchvision's VOCSegmentation(year="2011") uses; 11,540 JPEG photos.
VOC2011 = RemoteArchive(
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/VOCtrainval_25-May-2011.tar",
    "6c3384ef61512963050cb5d687e5bf1e",
    inner="TrainVal/VOCdevkit/VOC2011/JPEGImages",
    mirror="VOC2011",
)
# DIV2K's 2K-resolution ground truth: 800 training and 100 validation PNGs (NTIRE 2017).
DIV2K_TRAIN = RemoteArchive(
    "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
    "bdc2d9338d4e574fe81bf7d158758658",
    inner="DIV2K_train_HR",
    mirror="DIV2K_train_HR",
)
DIV2K_VALID = RemoteArchive(
    "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
    "9fcdda83005c5e5997799b69f955ff88",
    inner="DIV2K_valid_HR",
    mirror="DIV2K_valid_HR",
)

# Colour photos that scikit-image and matplotlib install with themselves: no network needed.
_SKIMAGE_SAMPLES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)


def sample_photos() -> list[Path]:
    import matplotlib
    import skimage

    skimage_dir = Path(skimage.__file__).parent / "data"
    paths = [skimage_dir / name for name in _SKIMAGE_SAMPLES]
    paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    return [p for p in paths if p.is_file()]


def folder_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not str(folder) or not folder.is_dir():
        raise SrlabError(f"data.train_dir: {str(folder)!r} is not a folder")
    return sorted(p for p in folder.rglob("*") if is_image_file(p))


def training_split(
    source: str, train_dir: str, n_train: int, n_val: int, seed: int, downloads: Path, mirror: Path | None = None
) -> tuple[list[Path], list[Path]]:
    """The train and val photos of `source`, drawn deterministically from `seed`.

    DIV2K keeps its official split (val from the valid archive); the others split one pool.
    """
    if source == "div2k":
        train = _nonempty(archive_images(DIV2K_TRAIN, downloads, mirror), "div2k train")
        val = _nonempty(archive_images(DIV2K_VALID, downloads, mirror), "div2k valid")
        return _draw(train, n_train, seed), _draw(val, n_val, seed)
    if source == "voc2011":
        pool = _nonempty(archive_images(VOC2011, downloads, mirror), "voc2011")
    elif source == "folder":
        pool = _nonempty(folder_images(train_dir), f"data.train_dir={train_dir!r}")
    else:
        pool = _nonempty(sample_photos(), "the sample photos")
    return split_train_val(pool, n_train, n_val, seed)


def _nonempty(paths: list[Path], where: str) -> list[Path]:
    if not paths:
        raise SrlabError(f"{where}: no image files found (looked for .png, .jpg, .jpeg and similar)")
    return paths


def _draw(paths: list[Path], n: int, seed: int) -> list[Path]:
    order = sorted(paths)
    random.Random(seed).shuffle(order)
    return sorted(order[:n])


def split_train_val(paths: list[Path], n_train: int, n_val: int, seed: int) -> tuple[list[Path], list[Path]]:
    """A seeded shuffle, then val first. With fewer images than asked, keep the train:val ratio."""
    order = sorted(paths)
    random.Random(seed).shuffle(order)
    if len(order) < 2:
        raise SrlabError(f"need at least 2 training images (one for validation), found {len(order)}")
    if len(order) < n_train + n_val:
        n_val = min(len(order) - 1, max(1, round(len(order) * n_val / (n_train + n_val))))
        n_train = len(order) - n_val
    return order[n_val : n_val + n_train], order[:n_val]


def mirror_dir() -> Path | None:
    value = os.environ.get(MIRROR_VARIABLE)
    if not value:
        return None
    if not Path(value).is_dir():
        raise SrlabError(f"{MIRROR_VARIABLE}={value!r} is not a folder")
    return Path(value)


def mirrors(tracked: Path | None = None) -> list[Path]:
    """The mirror folders to look in, first to last: `tracked` (the pipeline's data.mirror), then
    $SRLAB_DATA_MIRROR."""
    return [m for m in (tracked, mirror_dir()) if m is not None]


def test_set_dir(name: str, downloads: Path, mirror: Path | None = None) -> Path:
    """The folder of HR images of test set `name`, from a mirror or a verified download."""
    return archive_dir(TEST_SETS[name], downloads, mirror)


def archive_images(remote: RemoteArchive, downloads: Path, mirror: Path | None = None) -> list[Path]:
    return sorted(p for p in archive_dir(remote, downloads, mirror).rglob("*") if is_image_file(p))


def archive_dir(remote: RemoteArchive, downloads: Path, mirror: Path | None = None) -> Path:
    """The extracted image folder of `remote`: a mirror's copy (`mirror`, then $SRLAB_DATA_MIRROR),
    or a verified download."""
    folders = mirrors(mirror)
    for folder in folders:
        if (folder / remote.mirror).is_dir():
            return folder / remote.mirror
    archive = downloads / remote.filename
    mirrored = [folder / remote.filename for folder in folders if (folder / remote.filename).is_file()]
    if mirrored:
        archive = mirrored[0]
        if file_md5(archive) != remote.md5:
            raise SrlabError(f"{archive}: checksum mismatch (expected md5 {remote.md5})")
    else:
        fetch(remote.url, archive, remote.md5)
    extracted = downloads / (remote.filename + ".d")
    if not (extracted / remote.inner).is_dir():
        safe_extract(archive, extracted, only=remote.inner)  # VOC's tar is mostly annotations and masks
    if not (extracted / remote.inner).is_dir():
        raise SrlabError(f"{archive}: has no folder {remote.inner}")
    return extracted / remote.inner


def copy_images(paths: list[Path], dest: Path, numbered: bool) -> list[str]:
    """Copy image files byte for byte; numbered names keep files from nested folders apart."""
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for index, path in enumerate(paths):
        name = f"{index:05d}_{path.name}" if numbered else path.name
        shutil.copyfile(path, dest / name)
        names.append(name)
    return names


def fill_mirror(folder: Path, names: list[str]) -> list[Path]:
    """Make `folder` a data mirror of the test sets `names` (a folder of HR images each, as
    $SRLAB_DATA_MIRROR expects), from their checksummed official archive. Sets already there are
    kept; the archive is deleted once its sets are out, so the folder stays small enough to cache."""
    folder, downloads = Path(folder), Path(folder) / ".downloads"
    made = []
    for name in names:
        target = folder / TEST_SETS[name].mirror
        if not target.is_dir():
            images = _nonempty(archive_images(TEST_SETS[name], downloads), name)
            with staged_folder(target) as staging:
                copy_images(images, staging, numbered=False)
        made.append(target)
    shutil.rmtree(downloads, ignore_errors=True)
    return made


def download(p: Params, out: Path, downloads: Path) -> dict:
    """The download stage: the training photos (split into train / val) and the test sets copied
    byte for byte into `out`, with a manifest of where they came from; written into a staging
    folder swapped in at the end, so a failed run leaves no half a dataset. Returns the manifest."""
    require_imagenet(p.loss, p.seed)
    d = p.data
    tracked = Path(d.mirror)
    if not tracked.is_dir():
        raise SrlabError(f"data.mirror: {d.mirror!r} is not a folder")
    train, val = training_split(d.train_source, d.train_dir, d.train_images, d.val_images, p.seed, downloads, tracked)
    origins = {d.train_source: _origin(train[0], tracked)} if d.train_source in ("voc2011", "div2k") else {}
    with staged_folder(out) as staging:
        manifest = {
            "source": d.train_source if d.train_source != "folder" else f"folder {d.train_dir}",
            "train": copy_images(train, staging / "train", numbered=True),
            "val": copy_images(val, staging / "val", numbered=True),
            "test": {},
        }
        for name in p.eval.sets:
            found = test_set_dir(name, downloads, tracked)
            files = sorted(f for f in found.iterdir() if f.is_file())
            copy_images(files, staging / "test" / name, numbered=False)
            origins[name] = _origin(found, tracked) or TEST_SETS[name].url
            manifest["test"][name] = {"from": origins[name], "md5": {f.name: file_md5(f) for f in files}}
        write_json(staging / "manifest.json", manifest)
    untracked = [name for name, origin in origins.items() if origin == MIRROR_VARIABLE]
    if untracked:
        print(
            f"download: {', '.join(untracked)} from ${MIRROR_VARIABLE}, which DVC cannot see; "
            f"to have DVC track them, put them in data.mirror ({tracked})",
            file=sys.stderr,
        )
    return manifest


def _origin(found: Path, tracked: Path) -> str | None:
    """Which mirror `found` is in, by name, not path (the output must hash the same on every
    machine); None when it is not in one."""
    if tracked in found.parents:
        return "data.mirror"
    env = mirror_dir()
    return MIRROR_VARIABLE if env and env in found.parents else None
