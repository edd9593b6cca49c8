"""Prepare and training memory at the design notes' own data sizes: peak RSS and wall time, measured.

    SRLAB_DATA_MIRROR=../shared/data python bench/data.py WORK [--sizes 120 480 1200] [--div2k 800]

Makes VOC-sized photos (about 500x375 JPEG) from the mirror's SunHays80 photos (crops, flips,
resizes), and optionally DIV2K-shaped ones (2040x1356 PNG), in WORK. Then, for each collection
size, runs the real prepare stage with 1 and with 2 workers and one short training epoch on the
store, each as its own process, and prints a table: wall time, peak RSS of the process and its
workers together (sampled every 50 ms; shared pages counted once per process, so an upper bound),
the store's size on disk and whether 1 and 2 workers wrote the same bytes (md5 of every file).
`--stores /dev/shm/...` puts the stores in memory, to see the CPU's share when the disk is the limit. Settings: the
assignment note's (x2, 240 px HR, 48 patches per photo, 5:1 train:val); the DIV2K shape at the
SRGAN note's x4 and 128 px. Training: SRCNN on CPU, 256 random 48 px crops, batch 16, one epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

from srlab.fileio import file_md5

REPO = Path(__file__).resolve().parents[1]
VOC = {"data.scale": 2, "data.hr_size": 240, "data.patches_per_image": 48, "data.layout": "patches"}
DIV2K = {"data.scale": 4, "data.hr_size": 128, "data.patches_per_image": 48, "data.layout": "patches"}
TRAIN = {
    "train.epochs": 1,
    "train.epoch_samples": 256,
    "train.crop_size": 48,
    "train.batch_size": 16,
    "train.device": "cpu",
    "model.name": "srcnn",
}


def make_photos(mirror: Path, out: Path, count: int, size: tuple[int, int], fmt: str) -> list[Path]:
    """`count` photos of `size` (landscape; portrait sources stay portrait) from SunHays80: each a
    seeded crop of 80 to 100% of a source photo, flipped every other round, resized."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in (mirror / "SunHays80").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = []
    for i in range(count):
        path = out / f"{i:05d}.{fmt}"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        with Image.open(sources[i % len(sources)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            keep = rng.uniform(0.8, 1.0)
            cw, ch = int(w * keep), int(h * keep)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            im = im.crop((x, y, x + cw, y + ch))
            if (i // len(sources)) % 2:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            im = im.resize(size if cw >= ch else size[::-1], Image.Resampling.BICUBIC)
            im.save(path, **({"quality": 90} if fmt == "jpg" else {"compress_level": 1}))
    return paths


def raw_folder(photos: list[Path], out: Path, val_share: float = 1 / 6) -> Path:
    """The download stage's layout (train/, val/) as symbolic links to the photos."""
    n_val = round(len(photos) * val_share)
    for split, chosen in (("val", photos[:n_val]), ("train", photos[n_val:])):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for p in chosen:
            link = folder / p.name
            if not link.exists():
                link.symlink_to(p)
    return out


def params_file(path: Path, overrides: dict) -> Path:
    from srlab.params import apply_overrides, load_params

    raw = apply_overrides(
        yaml.safe_load((REPO / "params.yaml").read_text()), [f"{k}={v}" for k, v in overrides.items()]
    )
    path.write_text(yaml.safe_dump(raw))
    load_params(path)  # one line now rather than a failed run later
    return path


def measure(cmd: list[str]) -> dict:
    """Wall time and the peak of the summed RSS of the process and its descendants. Dirty pages of
    earlier steps are written out first, so a run does not pay for the one before it."""
    os.sync()
    start, peak = time.perf_counter(), 0
    proc = psutil.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:  # a worker ended between listing and reading
            pass
        time.sleep(0.05)
    output = proc.stdout.read().decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"bench/data.py: {' '.join(map(str, cmd))} failed:\n{output[-2000:]}")
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_gb": peak / 1e9,
        "last_line": output.strip().splitlines()[-1],
    }


def store_digest(folder: Path) -> dict[str, str]:
    return {f.name: file_md5(f) for f in sorted(folder.iterdir())}


def run_size(work: Path, stores: Path, name: str, photos: list[Path], data: dict, train: bool) -> dict:
    tag = f"{name}-{len(photos)}"
    raw = raw_folder(photos, work / "raw" / tag)
    row = {"collection": name, "photos": len(photos), "stores": str(stores)}
    digests = {}
    for workers in (1, 2):
        out = stores / f"{tag}-w{workers}"
        params = params_file(work / f"params-{tag}-w{workers}.yaml", {**data, "data.workers": workers})
        m = measure(
            [
                sys.executable,
                "stages/prepare.py",
                "--params",
                str(params),
                "--raw",
                str(raw),
                "--out",
                str(out),
                "--report",
                str(work / f"report-{tag}.json"),
            ]
        )
        row[f"prepare_w{workers}_s"], row[f"prepare_w{workers}_rss_gb"] = m["seconds"], m["peak_rss_gb"]
        digests[workers] = store_digest(out)
        if workers == 1:  # gigabytes: only one store at a time
            shutil.rmtree(out)
    row["same_bytes"] = digests[1] == digests[2]
    row["store_gb"] = json.loads((work / f"report-{tag}.json").read_text())["bytes"] / 1e9
    row["speedup"] = row["prepare_w1_s"] / row["prepare_w2_s"]
    if train:
        params = params_file(work / f"params-{tag}-train.yaml", {**data, **TRAIN})
        run = work / "train" / tag
        m = measure(
            [
                sys.executable,
                "stages/train_mse.py",
                "--params",
                str(params),
                "--patches",
                str(out),
                "--out",
                str(run / "model.pt"),
                "--live",
                str(run / "live"),
                "--checkpoints",
                str(run / "ckpt"),
            ]
        )
        row["train_s"], row["train_rss_gb"] = m["seconds"], m["peak_rss_gb"]
    shutil.rmtree(out)
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| photos | prepare 1 worker: wall, peak RSS | 2 workers: wall, peak RSS | 2 vs 1 | same bytes | store on disk "
        "| one training epoch: wall, peak RSS |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        training = f"{r['train_s']:.0f} s, {r['train_rss_gb']:.2f} GB" if "train_s" in r else "not run"
        lines.append(
            f"| {r['photos']} {r['collection']} | {r['prepare_w1_s']:.1f} s, {r['prepare_w1_rss_gb']:.2f} GB "
            f"| {r['prepare_w2_s']:.1f} s, {r['prepare_w2_rss_gb']:.2f} GB | {r['speedup']:.2f}x "
            f"| {'yes' if r['same_bytes'] else 'NO'} | {r['store_gb']:.2f} GB | {training} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a folder for the photos and stores (tens of GB at the largest sizes)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[120, 480, 1200], help="VOC-sized collections")
    parser.add_argument("--div2k", type=int, default=0, help="also this many DIV2K-shaped photos (the issue asks 800)")
    parser.add_argument(
        "--stores", type=Path, help="where the stores go (default WORK/stores; /dev/shm takes the disk out)"
    )
    parser.add_argument("--no-train", action="store_true", help="measure prepare only")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    from srlab.data.sources import mirror_dir

    mirror = mirror_dir()
    if mirror is None or not (mirror / "SunHays80").is_dir():
        raise SystemExit("bench/data.py: needs SRLAB_DATA_MIRROR with a SunHays80 folder")
    work = args.work.resolve()
    stores = (args.stores or work / "stores").resolve()
    rows = []
    if args.sizes:
        voc = make_photos(mirror, work / "photos-voc", max(args.sizes), (500, 375), "jpg")
        rows += [run_size(work, stores, "VOC-sized", voc[:n], VOC, not args.no_train) for n in args.sizes]
    if args.div2k:
        div2k = make_photos(mirror, work / "photos-div2k", args.div2k, (2040, 1356), "png")
        rows.append(run_size(work, stores, "DIV2K-shaped", div2k, DIV2K, not args.no_train))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
