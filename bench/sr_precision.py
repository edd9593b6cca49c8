"""How fast `srlab super-resolve` runs a model on a full-HD frame in fp32 and in bf16, and how far
the bf16 output is from the fp32 one.

    python bench/sr_precision.py models/mse.safetensors [--repeats 3] [--tile 256]

Prints one line per precision: output megapixels per second (best of the repeats, after a
warm-up), and for bf16 the mean and largest difference from fp32 in grey levels. The frame is a
real photo (Set14's baboon from $SRLAB_DATA_MIRROR or data/mirror, tiled to 1920x1080).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from srlab import checkpoint
from srlab.data.images import load_rgb
from srlab.inference import CHANNELS_LAST, super_resolve


def frame(size=(1920, 1080)) -> np.ndarray:
    for mirror in (os.environ.get("SRLAB_DATA_MIRROR"), "data/mirror"):
        path = Path(mirror or "") / "Set14" / "baboon.png"
        if mirror and path.is_file():
            photo = load_rgb(path)[0]
            w, h = size
            reps = (h // photo.shape[0] + 1, w // photo.shape[1] + 1, 1)
            return np.ascontiguousarray(np.tile(photo, reps)[:h, :w])
    raise SystemExit("sr_precision: no Set14/baboon.png in $SRLAB_DATA_MIRROR or data/mirror")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()
    model, meta = checkpoint.load_model(args.model)
    model.to(memory_format=CHANNELS_LAST).eval()  # as `srlab super-resolve` runs it
    lr = frame()
    outputs = {}
    for precision in ("fp32", "bf16"):
        super_resolve(model, lr[:64, :64], "cpu", precision=precision)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs[precision] = super_resolve(model, lr, "cpu", tile=args.tile, precision=precision)
            times.append(time.perf_counter() - start)
        mp = outputs[precision].shape[0] * outputs[precision].shape[1] / 1e6
        line = (
            f"{precision}: {mp / min(times):.2f} MP/s ({lr.shape[1]}x{lr.shape[0]} -> x{meta['scale']}, "
            f"tile {args.tile}, best of {args.repeats}: {min(times):.2f} s)"
        )
        if precision == "bf16":
            diff = np.abs(outputs["bf16"].astype(int) - outputs["fp32"])
            line += f"; from fp32: mean {diff.mean():.3f}, max {diff.max()} grey levels"
        print(line, flush=True)
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {capability}")


if __name__ == "__main__":
    main()
