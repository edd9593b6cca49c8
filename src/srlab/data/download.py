"""Downloads a user can trust: resumable, verified before use, retried, and safely extracted.

A finished file only appears under its final name after its checksum matched; an interrupted
transfer leaves `<name>.part`, which the next call resumes with an HTTP Range request.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from srlab.errors import SrlabError
from srlab.fileio import file_md5

CHUNK = 1 << 20


def fetch(url: str, dest: Path, md5: str, retries: int = 4, backoff: float = 1.0, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` unless a verified copy is there; resume a `.part` left behind."""
    dest = Path(dest)
    if dest.exists() and file_md5(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:  # 4xx will not get better by asking again
                raise SrlabError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            if attempt == retries:
                reason = getattr(exc, "reason", exc)
                raise SrlabError(
                    f"cannot download {url} ({reason}); offline? put {dest.name} or its extracted "
                    f"folder in a directory and set SRLAB_DATA_MIRROR to it"
                ) from None
        time.sleep(backoff * 2**attempt)
    actual = file_md5(part)
    if actual != md5:
        part.unlink()  # a corrupt partial would be resumed forever: start clean next time
        raise SrlabError(f"{url}: checksum mismatch (md5 {actual}, expected {md5}); the file was removed")
    part.replace(dest)
    return dest


def _transfer(url: str, part: Path, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            return
        raise
    with response:
        resumed = response.status == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=have if resumed else 0,
                unit="B",
                unit_scale=True,
                desc=PurePosixPath(url).name,
                disable=None,
                leave=False,
            ) as bar,
        ):
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def safe_extract(archive: Path, dest: Path, only: str | None = None) -> Path:
    """Extract a tar or zip archive into `dest`, refusing members that would land outside it.
    With `only` (a folder inside the archive), just the members under it are written."""
    archive, dest = Path(archive), Path(dest)
    wanted = lambda name: only is None or (name.rstrip("/") + "/").startswith(only.rstrip("/") + "/")
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(archive, info.filename)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise SrlabError(f"{archive}: refusing symbolic link member {info.filename!r}")
                for info in _progress([i for i in zf.infolist() if wanted(i.filename)], archive):
                    zf.extract(info, staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(archive, member.name)
                    if member.issym() or member.islnk():
                        raise SrlabError(f"{archive}: refusing link member {member.name!r} -> {member.linkname!r}")
                    if not (member.isfile() or member.isdir()):
                        raise SrlabError(f"{archive}: refusing special member {member.name!r}")
                for member in _progress([m for m in tf.getmembers() if wanted(m.name)], archive):
                    tf.extract(member, staging, filter="data")
        else:
            raise SrlabError(f"{archive}: not a tar or zip archive")
        if dest.exists():
            shutil.rmtree(dest)
        staging.replace(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _progress(members: list, archive: Path):
    return tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None, leave=False)


def _check_member(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise SrlabError(f"{archive}: refusing member {name!r}, which would be written outside its folder")
