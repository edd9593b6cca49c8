"""The prepared store on disk: LR/HR uint8 pairs as plain .npy files, plus a JSON index.

A folder holds, per split (train, val):

    {split}_hr.npy       N x H x W x 3 uint8, the HR side of each pair
    {split}_lr.npy       N x H/s x W/s x 3 uint8, its degraded LR side
    {split}_corners.npy  N x 2 int32, each pair's top-left corner (row, column) in its HR photo
    index.json           the layout, sizes, and which rows came from which photo

numpy alone reads it (`np.load(..., mmap_mode="r")`, `json.load`). Arrays are written row by row
as photos are cut, so writing them takes memory for one photo, not for the collection; they are
read memory-mapped, so training takes memory for its batches, not for the store.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.errors import SrlabError
from srlab.fileio import atomic_path

INDEX = "index.json"
FORMAT = "srlab-store/1"
KINDS = ("hr", "lr", "corners")
HEADER_BYTES = 128  # a .npy version 1.0 header, padded to a fixed size so it can be written last
_MAGIC = b"\x93NUMPY\x01\x00"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(SrlabError):
    """The disk (or quota) ran out while writing the store."""


class NpyWriter:
    """Append rows of one shape and dtype to a .npy file whose row count is known only at the end.

    The header is reserved first and written when the file is closed; the file appears under its
    name only then (atomically), and only if every write succeeded. Keeps an md5 of the rows.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.row_shape, self.dtype = Path(path), tuple(row_shape), np.dtype(dtype)
        self.rows, self.md5 = 0, hashlib.md5()
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._file = open(self._tmp, "wb")
        self._file.write(b"\0" * HEADER_BYTES)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {rows.shape[1:]}, expected {self.row_shape}")
        data = rows.tobytes()
        self._file.write(data)
        self.md5.update(data)
        self.rows += len(rows)

    def close(self) -> dict:
        """Finish the file; returns its index entry (file name, shape, dtype, md5 of the rows)."""
        self._file.seek(0)
        self._file.write(npy_header((self.rows, *self.row_shape), self.dtype))
        self._file.close()
        self._atomic.__exit__(None, None, None)
        shape = (self.rows, *self.row_shape)
        return {"file": self.path.name, "shape": list(shape), "dtype": self.dtype.str, "md5": self.md5.hexdigest(),
                "bytes": HEADER_BYTES + int(np.prod(shape)) * self.dtype.itemsize}

    def abort(self) -> None:
        """Drop the half-written file (nothing appears under the final name)."""
        self._file.close()
        self._atomic.__exit__(OSError, OSError("aborted"), None)


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A .npy version 1.0 header (numpy's documented format), padded with spaces to HEADER_BYTES."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    room = HEADER_BYTES - len(_MAGIC) - 2 - 1  # magic and version, the length field, the closing newline
    if len(text) > room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    body = text.ljust(room) + "\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body.encode("latin1")


@dataclass
class Pairs:
    """LR/HR pairs as NHWC uint8 arrays and their corners: in memory, or one split of a store,
    memory-mapped. The mappings are copy-on-write, so the arrays can back torch tensors without a copy; nothing
    ever writes to them. `release()` drops the pages read so far from this process's memory (they
    stay in the OS page cache), which keeps the resident size bounded over an epoch.
    """

    hr: np.ndarray
    lr: np.ndarray
    corners: np.ndarray
    _maps: tuple[mmap.mmap, ...] = ()

    def __len__(self) -> int:
        return len(self.hr)

    @property
    def nbytes(self) -> int:
        return self.hr.nbytes + self.lr.nbytes

    def release(self) -> None:
        for m in self._maps:
            m.madvise(mmap.MADV_DONTNEED)


def read_index(folder: Path) -> dict:
    """The store's index, or one line saying what to run when there is none or it is not ours."""
    path = Path(folder) / INDEX
    if not path.is_file():
        raise SrlabError(f"{folder}: no prepared store ({INDEX} missing; run `dvc repro prepare` first)")
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SrlabError(f"{path}: unreadable ({exc}); run `dvc repro -f prepare`") from None
    if index.get("format") != FORMAT:
        raise SrlabError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}; run `dvc repro -f prepare`")
    return index


def open_pairs(folder: Path, split: str) -> Pairs:
    """A split of the store at `folder`, memory-mapped."""
    folder = Path(folder)
    entry = read_index(folder)["splits"].get(split)
    if entry is None:
        raise SrlabError(f"{folder}: no {split} split in {INDEX}; run `dvc repro -f prepare`")
    arrays, maps = {}, []
    for kind in KINDS:
        arrays[kind], m = _map_npy(folder / entry[kind]["file"], entry[kind]["shape"])
        maps.append(m)
    return Pairs(arrays["hr"], arrays["lr"], arrays["corners"], tuple(m for m in maps if m is not None))


def _map_npy(path: Path, shape: list[int]) -> tuple[np.ndarray, mmap.mmap | None]:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0(f) if version == (1, 0) else np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
            found, fortran, dtype = header
            if list(found) != list(shape) or fortran:
                raise ValueError(f"shape {list(found)}, the index says {shape}")
            size = offset + int(np.prod(found)) * dtype.itemsize
            if path.stat().st_size < size:
                raise ValueError(f"{path.stat().st_size} bytes, {size} expected")
            if np.prod(found) == 0:
                return np.zeros(found, dtype), None
            m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    except (OSError, ValueError) as exc:  # missing, truncated, or not an array
        raise SrlabError(f"{path}: unreadable ({exc}); run `dvc repro -f prepare`") from None
    return np.frombuffer(m, dtype, count=int(np.prod(found)), offset=offset).reshape(found), m


def load_pairs(folder: Path, split: str) -> Pairs:
    """A split read whole into memory (small stores, tests); training maps it instead."""
    mapped = open_pairs(folder, split)
    return Pairs(np.array(mapped.hr), np.array(mapped.lr), np.array(mapped.corners))


class SplitWriter:
    """Writes one split's three arrays photo by photo and remembers which rows each photo gave."""

    def __init__(self, folder: Path, split: str, hr_size: int, scale: int):
        lr_size = hr_size // scale
        self.split, self.photos = split, []
        self.writers = {
            "hr": NpyWriter(folder / f"{split}_hr.npy", (hr_size, hr_size, 3), np.uint8),
            "lr": NpyWriter(folder / f"{split}_lr.npy", (lr_size, lr_size, 3), np.uint8),
            "corners": NpyWriter(folder / f"{split}_corners.npy", (2,), np.int32),
        }

    def add(self, photo: str, hr: np.ndarray, lr: np.ndarray, corners: np.ndarray) -> None:
        self.photos.append({"file": photo, "first": self.writers["hr"].rows, "count": len(hr)})
        for kind, rows in (("hr", hr), ("lr", lr), ("corners", corners)):
            self.writers[kind].append(rows)

    def close(self) -> dict:
        entry = {kind: w.close() for kind, w in self.writers.items()}
        return {"count": entry["hr"]["shape"][0], **entry, "photos": self.photos}

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()


def write_index(folder: Path, meta: dict, splits: dict) -> None:
    with atomic_path(Path(folder) / INDEX) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **meta, "splits": splits}, indent=1) + "\n")


def save_pairs(folder: Path, split: str, pairs: Pairs, meta: dict | None = None) -> None:
    """Write pairs made in memory as one split of a store (adding to an index already there): for
    tests and benchmarks."""
    folder = Path(folder)
    scale = pairs.hr.shape[1] // pairs.lr.shape[1]
    writer = SplitWriter(folder, split, pairs.hr.shape[1], scale)
    writer.add("arrays", pairs.hr, pairs.lr, pairs.corners)
    index = read_index(folder) if (folder / INDEX).is_file() else {"layout": "patches", "scale": scale,
                                                                  "hr_size": pairs.hr.shape[1], **(meta or {})}
    splits = index.pop("splits", {})
    index.pop("format", None)
    write_index(folder, index, {**splits, split: writer.close()})


def digest(folder: Path) -> str:
    """What identifies a store's content: its index, which holds the md5 of every array's rows."""
    return hashlib.md5((Path(folder) / INDEX).read_bytes()).hexdigest()


def raise_if_disk_full(exc: OSError, folder: Path, needed: int) -> None:
    """A full disk or quota becomes one line naming the folder and the size the store needs."""
    if exc.errno in DISK_FULL:
        raise DiskFull(f"{folder}: the disk is full ({exc.strerror}); the store needs about {gigabytes(needed)}") from None


def gigabytes(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB"
