"""The prepared store on disk: LR/HR uint8 pairs as plain .npy files, plus a JSON index.

A folder holds, per split (train, val):

    {split}_hr.npy       N x H x W x 3 uint8, the HR side of each pair
    {split}_lr.npy       N x H/s x W/s x 3 uint8, its degraded LR side
    {split}_corners.npy  N x 2 int32, each pair's top-left corner (row, column) in its HR photo
    index.json           the layout and sizes, and per photo: its rows (first, count) and its md5

numpy alone reads it (`np.load(..., mmap_mode="r")`, `json.load`). Each photo's rows have a
place reserved in advance (from the photos' headers), so the processes that cut photos write them
straight into the files, in any order, and the files come out the same whatever the number of
processes; memory holds one photo per process. Training maps the files and reads only its batches.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
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
MOVE_CHUNK = 64 << 20  # bytes per read when rows close up behind a skipped photo


class DiskFull(SrlabError):
    """The disk (or quota) ran out while writing the store."""


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A .npy version 1.0 header (numpy's documented format), padded with spaces to HEADER_BYTES."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    room = HEADER_BYTES - len(_MAGIC) - 2 - 1  # magic and version, the length field, the closing newline
    if len(text) > room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    body = text.ljust(room) + "\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body.encode("latin1")


@dataclass(frozen=True)
class ArrayFile:
    """A .npy file being written: room for `capacity` rows, filled at any row by any process (each
    write maps the file anew, so the object pickles to a worker), finished with its real row count.
    It appears under its name only when finished; until then it is a hidden partial file."""

    path: Path
    capacity: int
    row_shape: tuple[int, ...]
    dtype: str

    @property
    def partial(self) -> Path:
        return self.path.with_name(f".{self.path.name}.partial")

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * np.dtype(self.dtype).itemsize

    def create(self) -> None:
        # the blocks are allocated now: a full disk is an error here, in the parent, rather than a
        # SIGBUS in the worker whose write through the mapping finds no block to fill
        size = HEADER_BYTES + self.capacity * self.row_bytes
        with open(self.partial, "wb") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)
            else:  # macOS: no posix_fallocate; the file is sparse and a full disk shows on writing
                f.truncate(size)

    def write(self, first: int, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape or first + len(rows) > self.capacity:
            raise ValueError(
                f"{self.path.name}: rows {first}..{first + len(rows)} of shape {rows.shape[1:]} do not fit"
            )
        # through a shared mapping, not write(): writes to one file take its inode lock in turn,
        # page faults in separate processes do not, so the workers copy in parallel
        target = np.memmap(self.partial, self.dtype, "r+", HEADER_BYTES + first * self.row_bytes, rows.shape)
        target[:] = rows
        del target  # unmapped: the pages stay in the page cache, dirty, until finish() syncs the file

    def move(self, source: int, dest: int, count: int) -> None:
        """Rows source.. to dest.. (dest < source), front to back, so overlapping ranges are safe."""
        with open(self.partial, "r+b") as f:
            step = max(1, MOVE_CHUNK // self.row_bytes)
            for done in range(0, count, step):
                n = min(step, count - done)
                f.seek(HEADER_BYTES + (source + done) * self.row_bytes)
                data = f.read(n * self.row_bytes)
                f.seek(HEADER_BYTES + (dest + done) * self.row_bytes)
                f.write(data)

    def finish(self, rows: int) -> dict:
        """Write the header for `rows` rows, cut the file there, sync it and give it its name."""
        size = HEADER_BYTES + rows * self.row_bytes
        with open(self.partial, "r+b") as f:
            f.write(npy_header((rows, *self.row_shape), self.dtype))
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.partial, self.path)
        return {
            "file": self.path.name,
            "shape": [rows, *self.row_shape],
            "dtype": np.dtype(self.dtype).str,
            "bytes": size,
        }

    def abort(self) -> None:
        self.partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class SplitFiles:
    """One split's three arrays, with room for `capacity` pairs."""

    hr: ArrayFile
    lr: ArrayFile
    corners: ArrayFile

    @classmethod
    def for_split(cls, folder: Path, split: str, hr_size: int, scale: int, capacity: int) -> SplitFiles:
        folder, lr_size = Path(folder), hr_size // scale
        return cls(
            ArrayFile(folder / f"{split}_hr.npy", capacity, (hr_size, hr_size, 3), "|u1"),
            ArrayFile(folder / f"{split}_lr.npy", capacity, (lr_size, lr_size, 3), "|u1"),
            ArrayFile(folder / f"{split}_corners.npy", capacity, (2,), "<i4"),
        )

    def create(self) -> None:
        self.hr.path.parent.mkdir(parents=True, exist_ok=True)
        for f in self.each():
            f.create()

    def each(self) -> tuple[ArrayFile, ...]:
        return self.hr, self.lr, self.corners

    def write(self, first: int, pairs: Pairs) -> None:
        for f, rows in zip(self.each(), (pairs.hr, pairs.lr, pairs.corners)):
            f.write(first, rows)

    def finish(self, photos: list[dict]) -> dict:
        """Close up the rows of skipped photos' reserved places, then finish each file. `photos`:
        the photos used, in order, each with the `first` row reserved for it and its `count`;
        returns the split's index entry, with each photo's final `first`."""
        placed, row = [], 0
        for photo in photos:
            if photo["first"] != row:
                for f in self.each():
                    f.move(photo["first"], row, photo["count"])
            placed.append({**photo, "first": row})
            row += photo["count"]
        entry = {"count": row}
        for kind, f in zip(KINDS, self.each()):
            entry[kind] = f.finish(row)
        return {**entry, "photos": placed}

    def abort(self) -> None:
        for f in self.each():
            f.abort()


@dataclass
class Pairs:
    """LR/HR pairs as NHWC uint8 arrays and their corners: in memory, or one split of a store,
    memory-mapped. The mappings are copy-on-write, so the arrays can back torch tensors without a
    copy; nothing ever writes to them. They are marked for random access, so the OS maps only what
    is read; `will_need(rows)` asks it to read rows ahead, and `release()` drops the pages read so
    far from this process's memory (they stay in the OS page cache): resident size stays bounded."""

    hr: np.ndarray
    lr: np.ndarray
    corners: np.ndarray
    _maps: tuple[tuple[mmap.mmap, int, int], ...] = ()  # (map, offset of row 0, bytes per row) of hr and lr

    def __len__(self) -> int:
        return len(self.hr)

    @property
    def nbytes(self) -> int:
        return self.hr.nbytes + self.lr.nbytes

    def will_need(self, rows) -> None:
        for m, offset, row_bytes in self._maps:
            for row in rows:
                start = offset + int(row) * row_bytes
                page = start - start % mmap.PAGESIZE
                m.madvise(mmap.MADV_WILLNEED, page, start + row_bytes - page)

    def release(self) -> None:
        for m, _, _ in self._maps:
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
        arrays[kind], mapped = _map_npy(folder / entry[kind]["file"], entry[kind]["shape"])
        if mapped is not None and kind != "corners":
            maps.append(mapped)
    return Pairs(arrays["hr"], arrays["lr"], arrays["corners"], tuple(maps))


def _map_npy(path: Path, shape: list[int]) -> tuple[np.ndarray, tuple | None]:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            found, fortran, dtype = read_header(f)
            offset, count = f.tell(), int(np.prod(found))
            if list(found) != list(shape) or fortran:
                raise ValueError(f"shape {list(found)}, the index says {shape}")
            size = offset + count * dtype.itemsize
            if path.stat().st_size < size:
                raise ValueError(f"{path.stat().st_size} bytes, {size} expected")
            if count == 0:
                return np.zeros(found, dtype), None
            m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    except (OSError, ValueError) as exc:  # missing, truncated, or not an array
        raise SrlabError(f"{path}: unreadable ({exc}); run `dvc repro -f prepare`") from None
    m.madvise(mmap.MADV_RANDOM)  # no read-ahead around each row: the process maps what it reads
    row_bytes = count // found[0] * dtype.itemsize
    return np.frombuffer(m, dtype, count=count, offset=offset).reshape(found), (m, offset, row_bytes)


def load_pairs(folder: Path, split: str) -> Pairs:
    """A split read whole into memory (small stores, tests); training maps it instead."""
    mapped = open_pairs(folder, split)
    return Pairs(np.array(mapped.hr), np.array(mapped.lr), np.array(mapped.corners))


def write_index(folder: Path, meta: dict, splits: dict) -> None:
    with atomic_path(Path(folder) / INDEX) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **meta, "splits": splits}, indent=1) + "\n")


def save_pairs(folder: Path, split: str, pairs: Pairs, meta: dict | None = None) -> None:
    """Write pairs made in memory as one split of a store (adding to an index already there): for
    tests and benchmarks."""
    folder = Path(folder)
    scale = pairs.hr.shape[1] // pairs.lr.shape[1]
    files = SplitFiles.for_split(folder, split, pairs.hr.shape[1], scale, len(pairs))
    files.create()
    files.write(0, pairs)
    content = hashlib.md5(pairs.hr.tobytes() + pairs.lr.tobytes()).hexdigest()  # so digest() sees the pairs
    entry = files.finish([{"file": "arrays", "md5": content, "first": 0, "count": len(pairs)}])
    index = (
        read_index(folder)
        if (folder / INDEX).is_file()
        else {"layout": "patches", "scale": scale, "hr_size": pairs.hr.shape[1], **(meta or {})}
    )
    splits = index.pop("splits", {})
    index.pop("format", None)
    write_index(folder, index, {**splits, split: entry})


def digest(folder: Path) -> str:
    """What identifies a store's content: its index, which names every photo with its md5 and rows
    (the pairs are a function of those, the params and the code)."""
    return hashlib.md5((Path(folder) / INDEX).read_bytes()).hexdigest()


def raise_if_disk_full(exc: OSError, folder: Path, needed: int) -> None:
    """A full disk or quota becomes one line naming the folder and the size the store needs."""
    if exc.errno in DISK_FULL:
        raise DiskFull(
            f"{folder}: the disk is full ({exc.strerror}); the store needs about {gigabytes(needed)}"
        ) from None


def gigabytes(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB"
