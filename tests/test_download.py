"""Downloads against a real HTTP server on 127.0.0.1: resume, checksums, errors, safe extraction."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from srlab.data import sources
from srlab.data.download import fetch, safe_extract
from srlab.errors import SrlabError


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files with Range support; `cut_after` bytes ends the first full transfer early."""

    cut_after: int | None = None
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        type(self).requests.append(start)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if type(self).cut_after is not None and not start:
            body = body[: type(self).cut_after]  # the connection drops mid-transfer
            type(self).cut_after = None
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    RangeHandler.cut_after, RangeHandler.requests = None, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_full_download_is_verified(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 4000
    (root / "a.bin").write_bytes(payload)
    dest = fetch(f"{url}/a.bin", tmp_path / "dl" / "a.bin", _md5(payload), backoff=0)
    assert dest.read_bytes() == payload
    fetch(f"{url}/a.bin", dest, _md5(payload), backoff=0)  # verified copy present: no request
    assert RangeHandler.requests == [0]


def test_interrupted_transfer_resumes_from_the_partial_file(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 8000
    (root / "a.bin").write_bytes(payload)
    RangeHandler.cut_after = 300_000
    dest = fetch(f"{url}/a.bin", tmp_path / "a.bin", _md5(payload), backoff=0)
    assert dest.read_bytes() == payload
    assert RangeHandler.requests == [0, 300_000]
    assert not (tmp_path / "a.bin.part").exists()


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path):
    root, url = server
    (root / "a.bin").write_bytes(b"tampered")
    with pytest.raises(SrlabError, match="checksum mismatch"):
        fetch(f"{url}/a.bin", tmp_path / "a.bin", _md5(b"original"), backoff=0)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_missing_file_is_one_line_without_retries(server, tmp_path):
    _, url = server
    with pytest.raises(SrlabError, match="HTTP 404"):
        fetch(f"{url}/nope.tar", tmp_path / "nope.tar", "0" * 32, backoff=0)
    assert RangeHandler.requests == []


def test_unreachable_host_says_how_to_work_offline(tmp_path):
    with pytest.raises(SrlabError, match="SRLAB_DATA_MIRROR"):
        fetch("http://127.0.0.1:9/x.tar", tmp_path / "x.tar", "0" * 32, retries=1, backoff=0, timeout=2)


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


def test_archive_with_parent_member_is_refused(tmp_path):
    archive = _tar(tmp_path / "evil.tar", {"ok/a.png": b"x", "../escape.txt": b"owned"})
    with pytest.raises(SrlabError, match="outside its folder"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()


def test_archive_with_symlink_out_is_refused(tmp_path):
    archive = _tar(tmp_path / "evil.tar", {"ok/a.png": b"x"}, links={"ok/link": "/etc/passwd"})
    with pytest.raises(SrlabError, match="refusing link member"):
        safe_extract(archive, tmp_path / "out")


def test_zip_with_absolute_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("/tmp/escape.txt", b"owned")
    with pytest.raises(SrlabError, match="outside its folder"):
        safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize(
    "name, image", [("Set5", "baby.png"), ("Set14", "lenna.png"), ("B100", "3096.png"), ("Urban100", "img_001.png")]
)
def test_each_test_set_downloads_from_the_official_layout(server, tmp_path, monkeypatch, photo, name, image):
    """A benchmark.tar built like EDSR's (all four sets, HR and LR folders), served locally: the
    set asked for ends up as a folder of its HR images, and eval.sets accepts it."""
    from srlab.params import parse_params

    root, url = server
    members = {
        f"benchmark/{s}/{kind}/{i}.png": _png(photo, i)
        for i, s in enumerate(sources.TEST_SETS)
        for kind in ("HR", "LR_bicubic/X2")
    }
    archive = _tar(root / "benchmark.tar", {**members, f"benchmark/{name}/HR/{image}": _png(photo, 9)})
    real = sources.TEST_SETS[name]
    assert (real.inner, real.mirror, real.filename) == (f"benchmark/{name}/HR", name, "benchmark.tar")
    remote = sources.RemoteArchive(f"{url}/benchmark.tar", _md5(archive.read_bytes()), real.inner, real.mirror)
    monkeypatch.setitem(sources.TEST_SETS, name, remote)
    monkeypatch.delenv("SRLAB_DATA_MIRROR", raising=False)
    found = sources.test_set_dir(name, tmp_path / "downloads")
    index = list(sources.TEST_SETS).index(name)
    assert sorted(p.name for p in found.iterdir()) == sorted([f"{index}.png", image])
    assert (found / image).read_bytes() == _png(photo, 9)
    assert parse_params({"eval": {"sets": [name]}}).eval.sets == (name,)


def test_download_test_sets_makes_a_mirror_once_from_the_checksummed_archive(
    server, tmp_path, monkeypatch, photo, capsys
):
    """What CI does on a machine with a network and no mirror: Set5 and Set14 out of one
    benchmark.tar, verified, as a folder SRLAB_DATA_MIRROR can point at; a second run asks nothing."""
    from srlab.cli import main

    root, url = server
    archive = _tar(
        root / "benchmark.tar",
        {
            "benchmark/Set5/HR/baby.png": _png(photo, 0),
            "benchmark/Set5/HR/bird.png": _png(photo, 1),
            "benchmark/Set14/HR/lenna.png": _png(photo, 2),
            "benchmark/Set14/LR_bicubic/X2/lennax2.png": _png(photo, 3),
        },
    )
    for name in ("Set5", "Set14"):
        remote = sources.RemoteArchive(f"{url}/benchmark.tar", _md5(archive.read_bytes()), f"benchmark/{name}/HR", name)
        monkeypatch.setitem(sources.TEST_SETS, name, remote)
    monkeypatch.delenv("SRLAB_DATA_MIRROR", raising=False)
    mirror = tmp_path / "cache" / "data"
    main(["download-test-sets", str(mirror)])
    assert sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*")) == [
        "Set14",
        "Set14/lenna.png",
        "Set5",
        "Set5/baby.png",
        "Set5/bird.png",
    ]  # the archive itself is gone
    assert (mirror / "Set5/bird.png").read_bytes() == _png(photo, 1)
    asked = len(RangeHandler.requests)
    main(["download-test-sets", str(mirror)])
    assert len(RangeHandler.requests) == asked  # both sets were there: no download
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(mirror))
    assert sources.test_set_dir("Set14", tmp_path / "dl") == mirror / "Set14"
    assert f"download-test-sets: the pipeline reads {mirror} when data.mirror names it" in capsys.readouterr().out


def test_mirror_folder_is_used_before_the_network(tmp_path, monkeypatch):
    (tmp_path / "Set14").mkdir()
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path))
    assert sources.test_set_dir("Set14", tmp_path / "downloads") == tmp_path / "Set14"
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path / "missing"))
    with pytest.raises(SrlabError, match="SRLAB_DATA_MIRROR=.*is not a folder"):
        sources.test_set_dir("Set14", tmp_path / "downloads")


def test_the_tracked_mirror_is_used_before_srlab_data_mirror_which_is_named_when_used(tmp_path, photo):
    """data.mirror (which DVC hashes) first, then $SRLAB_DATA_MIRROR (which it cannot see, and the
    stage says so); the manifest records which, by name; a data.mirror that is not a folder is one line."""
    from PIL import Image

    env_mirror, photos, out = tmp_path / "mirror", tmp_path / "photos", tmp_path / "raw"
    for folder in (env_mirror / "Set5", tmp_path / "tracked" / "Set5", photos):
        folder.mkdir(parents=True)
    Image.fromarray(photo).save(env_mirror / "Set5" / "baby.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "tracked" / "Set5" / "baby.png")
    for i in range(3):
        Image.fromarray(photo[i:]).save(photos / f"{i}.png")
    params = {"data": {"train_source": "folder", "train_dir": str(photos)}, "eval": {"sets": ["Set5"]}}
    args = ("--out", out, "--downloads", tmp_path / "dl")

    def run(data_mirror: Path):
        done = _stage(
            "download",
            {**params, "data": {**params["data"], "mirror": str(data_mirror)}},
            tmp_path,
            *args,
            env={"SRLAB_DATA_MIRROR": str(env_mirror)},
        )
        manifest = json.loads((out / "manifest.json").read_text()) if done.returncode == 0 else None
        return done, manifest

    done, manifest = run(tmp_path / "tracked")
    assert done.returncode == 0 and "DVC cannot see" not in done.stderr, done.stderr
    assert manifest["test"]["Set5"]["from"] == "data.mirror"
    assert (out / "test/Set5/baby.png").read_bytes() == (tmp_path / "tracked/Set5/baby.png").read_bytes()
    shutil.rmtree(tmp_path / "tracked" / "Set5")
    done, manifest = run(tmp_path / "tracked")
    assert done.returncode == 0 and manifest["test"]["Set5"]["from"] == "SRLAB_DATA_MIRROR"
    assert "Set5 from $SRLAB_DATA_MIRROR, which DVC cannot see;" in done.stderr
    assert (out / "test/Set5/baby.png").read_bytes() == (env_mirror / "Set5/baby.png").read_bytes()
    done, _ = run(tmp_path / "no such folder")
    assert (
        done.returncode == 1
        and done.stderr.strip() == f"download: error: data.mirror: {str(tmp_path / 'no such folder')!r} is not a folder"
    )


def _png(photo, seed: int, fmt: str = "PNG") -> bytes:
    """A distinct photo-like image: the fixture photo, rolled and flipped by `seed`."""
    import numpy as np
    from PIL import Image

    img = np.roll(photo, 7 * seed, axis=1)[:, :: (-1) ** seed]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buffer, format=fmt)
    return buffer.getvalue()


def _serve(monkeypatch, root: Path, url: str, name: str, archive: Path) -> None:
    old = getattr(sources, name)
    remote = sources.RemoteArchive(f"{url}/{archive.name}", _md5(archive.read_bytes()), old.inner, old.mirror)
    monkeypatch.setattr(sources, name, remote)


def test_voc2011_downloads_resumes_and_prepares(server, tmp_path, monkeypatch, photo):
    """VOC's trainval tar in its official layout; the transfer is cut half-way and resumed."""
    from srlab.data.patches import Cutting, Degradation, prepare_split

    root, url = server
    members = {f"TrainVal/VOCdevkit/VOC2011/JPEGImages/2008_{i:06d}.jpg": _png(photo, i, "JPEG") for i in range(6)}
    members["TrainVal/VOCdevkit/VOC2011/SegmentationClass/2008_000000.png"] = _png(photo, 9)  # not a photo
    members["TrainVal/VOCdevkit/VOC2011/Annotations/2008_000000.xml"] = b"<annotation/>"
    archive = _tar(root / "VOCtrainval_25-May-2011.tar", members)
    _serve(monkeypatch, root, url, "VOC2011", archive)
    monkeypatch.delenv("SRLAB_DATA_MIRROR", raising=False)
    RangeHandler.cut_after = archive.stat().st_size // 2

    train, val = sources.training_split("voc2011", "", 4, 2, seed=0, downloads=tmp_path / "dl")
    assert RangeHandler.requests == [0, archive.stat().st_size // 2]  # resumed, not restarted
    assert len(train) == 4 and len(val) == 2 and not set(train) & set(val)
    assert all(p.parent.name == "JPEGImages" for p in train + val)
    extracted = tmp_path / "dl" / "VOCtrainval_25-May-2011.tar.d" / "TrainVal/VOCdevkit/VOC2011"
    assert sorted(p.name for p in extracted.iterdir()) == ["JPEGImages"]  # annotations and masks stay in the tar
    again = sources.training_split("voc2011", "", 4, 2, seed=0, downloads=tmp_path / "dl")
    assert again == (train, val) and len(RangeHandler.requests) == 2  # verified copy reused
    entry, used, skipped = prepare_split(
        train, tmp_path / "store", "train", Cutting(2, 32, Degradation("bicubic"), count=3), 0
    )
    assert len(used) == 4 and not skipped and entry["hr"]["shape"] == [12, 32, 32, 3]


def test_div2k_keeps_its_official_split(server, tmp_path, monkeypatch, photo):
    root, url = server
    for name, numbers, folder in (
        ("DIV2K_TRAIN", range(1, 6), "DIV2K_train_HR"),
        ("DIV2K_VALID", range(801, 804), "DIV2K_valid_HR"),
    ):
        archive = root / f"{folder}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for n in numbers:
                zf.writestr(f"{folder}/{n:04d}.png", _png(photo, n))
        _serve(monkeypatch, root, url, name, archive)
    monkeypatch.delenv("SRLAB_DATA_MIRROR", raising=False)
    train, val = sources.training_split("div2k", "", 3, 2, seed=1, downloads=tmp_path / "dl")
    assert [p.parent.name for p in train] == ["DIV2K_train_HR"] * 3
    assert [p.parent.name for p in val] == ["DIV2K_valid_HR"] * 2
    other_seed = sources.training_split("div2k", "", 3, 2, seed=2, downloads=tmp_path / "dl")
    assert len(set(map(str, other_seed[0] + train))) > 3  # a different draw of the 5


def test_mirror_archive_with_a_wrong_checksum_is_refused(tmp_path, monkeypatch):
    (tmp_path / "DIV2K_valid_HR.zip").write_bytes(b"not the real archive")
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path))
    with pytest.raises(SrlabError, match="DIV2K_valid_HR.zip: checksum mismatch"):
        sources.archive_dir(sources.DIV2K_VALID, tmp_path / "dl")


def test_offline_without_a_mirror_is_one_line(tmp_path, monkeypatch):
    remote = sources.RemoteArchive(
        "http://127.0.0.1:9/DIV2K_train_HR.zip", "0" * 32, "DIV2K_train_HR", "DIV2K_train_HR"
    )
    monkeypatch.setattr(sources, "DIV2K_TRAIN", remote)
    monkeypatch.setattr(sources, "fetch", partial(fetch, retries=0, backoff=0, timeout=2))
    monkeypatch.delenv("SRLAB_DATA_MIRROR", raising=False)
    with pytest.raises(SrlabError, match=r"cannot download .*DIV2K_train_HR.zip.*SRLAB_DATA_MIRROR"):
        sources.training_split("div2k", "", 3, 2, seed=0, downloads=tmp_path / "dl")


def _stage(script: str, params: dict, tmp_path: Path, *args, env: dict | None = None):
    import os
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    if script == "download":  # data.mirror: an empty one, not the repository's data/mirror
        (tmp_path / "tracked").mkdir(exist_ok=True)
        params = {**params, "data": {"mirror": str(tmp_path / "tracked"), **params.get("data", {})}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, f"stages/{script}.py", "--params", str(tmp_path / "params.yaml"), *map(str, args)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_failed_download_stage_keeps_the_old_output_and_leaves_no_staging_folder(tmp_path, photo):
    from PIL import Image

    mirror, photos, out = tmp_path / "mirror", tmp_path / "photos", tmp_path / "raw"
    for folder in (mirror / "Set5", photos, out):
        folder.mkdir(parents=True)
    Image.fromarray(photo).save(mirror / "Set5" / "baby.png")
    (mirror / "benchmark.tar").write_bytes(b"not the archive")  # where Set14 comes from: a checksum mismatch
    for i in range(3):
        Image.fromarray(photo).save(photos / f"{i}.png")
    (out / "kept.txt").write_text("the previous run")
    params = {"data": {"train_source": "folder", "train_dir": str(photos)}, "eval": {"sets": ["Set5", "Set14"]}}
    done = _stage(
        "download",
        params,
        tmp_path,
        "--out",
        out,
        "--downloads",
        tmp_path / "dl",
        env={"SRLAB_DATA_MIRROR": str(mirror)},
    )
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0 and "checksum mismatch" in done.stderr
    assert (out / "kept.txt").read_text() == "the previous run"  # copied photos and Set5 went with the staging folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "params.yaml", "photos", "raw", "tracked"]


def test_a_failed_prepare_stage_keeps_the_old_store_and_leaves_no_staging_folder(tmp_path, photo):
    from PIL import Image

    raw, out = tmp_path / "raw", tmp_path / "patches"
    for split in ("train", "val"):
        (raw / split).mkdir(parents=True)
    Image.fromarray(photo).save(raw / "train" / "a.png")  # train is fine, so its arrays are written first
    Image.fromarray(photo[:10, :10]).save(raw / "val" / "tiny.png")
    out.mkdir()
    (out / "index.json").write_text("the previous store")
    done = _stage(
        "prepare",
        {"data": {"hr_size": 32, "patches_per_image": 4}},
        tmp_path,
        "--raw",
        raw,
        "--out",
        out,
        "--report",
        tmp_path / "prepare.json",
    )
    assert done.returncode == 1 and "val: no usable image among 1 (reasons in" in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert [p.name for p in out.iterdir()] == ["index.json"] and (
        out / "index.json"
    ).read_text() == "the previous store"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "patches", "prepare.json", "raw"]
    assert "10x10 is smaller than a 32px patch" in (tmp_path / "prepare.json").read_text()
