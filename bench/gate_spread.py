"""How far each gated figure moves when nothing but the machine's rounding or the training seed
changes: the spreads the CI gate's tolerances come from (docs/ci.md).

Run it in the project after `dvc repro`. It trains both models again and scores them, on the
prepared patches of the committed params, once per variant, in a scratch folder:

    SRLAB_DATA_MIRROR=../shared/data python bench/gate_spread.py --seeds 0 1 2 3 --isa native avx2

- seed: the training seed alone (weight init, batch order, augmentation); data, patches and test
  images stay those of the committed run, so this is the spread of training itself.
- isa: `native` is what this CPU runs by default; `avx2` pins PyTorch's and oneDNN's kernels to
  AVX2 (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2), which on an Intel Xeon with AVX-512
  reproduces an AMD EPYC's numbers bit for bit. So one machine measures both CPU kinds.

Prints one row per variant and, per figure, the largest move from the first variant; writes the
same to --json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def run_stage(script: str, params: Path, env: dict, **paths: Path) -> None:
    args = [arg for name, path in paths.items() for arg in (f"--{name.replace('_', '-')}", str(path))]
    done = subprocess.run(
        [sys.executable, f"stages/{script}.py", "--params", str(params), *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"{script} failed:\n{done.stderr[-2000:]}")


def variant(seed: int, isa: str, work: Path, overrides: list[str]) -> dict:
    """Train both models with `seed` under `isa` and return the PSNRs of evaluate's metrics."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["seed"] = seed
    for override in overrides:
        key, _, value = override.partition("=")
        *path, last = key.split(".")
        section = params
        for name in path:
            section = section[name]
        section[last] = yaml.safe_load(value)
    out = work / f"seed{seed}-{isa}"
    out.mkdir(parents=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, **(PINNED if isa == "avx2" else {})}
    p, mse, perceptual = out / "params.yaml", out / "mse.safetensors", out / "perceptual.safetensors"
    run_stage(
        "train_mse", p, env, patches=Path("data/patches"), out=mse, live=out / "live_mse", checkpoints=out / "ck_mse"
    )
    run_stage(
        "train_perceptual",
        p,
        env,
        patches=Path("data/patches"),
        init=mse,
        out=perceptual,
        live=out / "live_perceptual",
        checkpoints=out / "ck_perceptual",
    )
    run_stage(
        "evaluate",
        p,
        env,
        test=Path("data/raw/test"),
        manifest=Path("data/raw/manifest.json"),
        mse_model=mse,
        perceptual_model=perceptual,
        sr_out=out / "sr",
        metrics=out / "metrics.json",
        per_image=out / "per_image.csv",
        provenance=out / "provenance.json",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    return {f"{s}/{m}": v["psnr"] for s, methods in metrics.items() if s != "provenance" for m, v in methods.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--isa", nargs="+", choices=["native", "avx2"], default=["native", "avx2"])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a params override for every variant"
    )
    parser.add_argument("--json", type=Path, help="also write the rows and spreads here")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="gate-spread-") as work:
        for seed, isa in itertools.product(args.seeds, args.isa):
            rows[f"seed {seed} {isa}"] = variant(seed, isa, Path(work), args.set)
            print(
                f"seed {seed} {isa}: " + "  ".join(f"{k} {v:.4f}" for k, v in rows[f"seed {seed} {isa}"].items()),
                flush=True,
            )
    first = next(iter(rows.values()))
    spreads = {}
    for name, label in (("isa", "same seed, other ISA"), ("seed", "same ISA, other seed")):
        pairs = [
            (a, b)
            for a, b in itertools.combinations(rows, 2)
            if (a.split()[1] == b.split()[1]) == (name == "isa") and (a.split()[2] == b.split()[2]) == (name == "seed")
        ]
        if pairs:
            spreads[label] = {k: max(abs(rows[a][k] - rows[b][k]) for a, b in pairs) for k in first}
    for label, spread in spreads.items():
        print(f"largest move, {label}: " + "  ".join(f"{k} {v:.4f}" for k, v in spread.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "largest_move": spreads, "overrides": args.set}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
