"""Files on disk: atomic writes (a reader sees the old file or the new one, never half of either)
and content checksums."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path, name: str = "*") -> None:
    """Delete the temporary files of `atomic_path` (for `name`, or any file) that a process killed
    mid-write left in `folder`."""
    pattern = f".{name if name == '*' else glob.escape(name)}.*.tmp"
    for stale in Path(folder).glob(pattern):
        stale.unlink(missing_ok=True)


@contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside `path` that replaces `path` only if the block succeeds;
    whatever happens, no staging folder is left behind (one left by a killed run is cleared first)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(path, ignore_errors=True)
        staging.replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def file_md5(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def file_digest(path: str | os.PathLike, algorithm: str, chunk: int = 1 << 20) -> str:
    """The hex digest of a file's content by `algorithm` (md5, sha256), read a chunk at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
