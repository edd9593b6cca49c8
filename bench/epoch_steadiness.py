"""Time and memory of each epoch of a run's MSE stage, trained again on its own patches: tells a run
that slows down or grows from a machine that slowed down under it.

    python bench/epoch_steadiness.py WORK [--epochs 6] [--set train.precision=bf16 ...]

WORK is a run's folder (a scratch clone of bench/recipes_cpu.sh: params.yaml, data/patches).
Prints, for each epoch, its seconds, the process's RSS and its peak RSS so far. The model and
checkpoints go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from srlab.errors import SrlabError
from srlab.params import apply_overrides, parse_params
from srlab.training import TrainJob, train


def memory_mb() -> tuple[int, int]:
    """The process's resident memory now and at its peak, in MB (Linux)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(status[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        steadiness(args.work, args.epochs, args.set)
    except SrlabError as error:  # bad params, or patches this code cannot train on: one line
        raise SystemExit(f"epoch_steadiness: {error}") from None


def steadiness(work: Path, epochs: int, overrides: list[str]) -> None:
    patches = work / "data" / "patches"
    if not (work / "params.yaml").is_file() or not (patches / "index.json").is_file():
        raise SrlabError(f"{work} has no params.yaml and data/patches/ of a run")
    raw = yaml.safe_load((work / "params.yaml").read_text())
    p = parse_params(apply_overrides(raw, [f"train.epochs={epochs}", *overrides]))
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainJob.for_stage("mse", p, patches, Path(tmp) / "model.pt", Path(tmp) / "ckpt")
        last = [time.perf_counter()]

        def log(row: dict) -> None:
            now = time.perf_counter()
            rss, peak = memory_mb()
            print(f"epoch {row['epoch']}: {now - last[0]:.1f} s, RSS {rss} MB, peak {peak} MB", flush=True)
            last[0] = now

        train(job, log=log)


if __name__ == "__main__":
    main()
