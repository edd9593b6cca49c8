"""The `srlab` command: helpers around the DVC pipeline (`srlab --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlab.entry import run
from srlab.errors import SrlabError


def check_metrics(args) -> None:
    from srlab.gate import check, read_metrics

    lines, failures = check(read_metrics(args.metrics), args.set, args.min_gain)
    print("\n".join(lines))
    if failures:
        raise SrlabError("; ".join(failures))
    print("check-metrics: passed")


def inspect(args) -> None:
    from srlab import checkpoint

    meta = checkpoint.load(args.checkpoint)["meta"]
    for key in ("arch", "scale", "upsample", "residual", "parameters", "epochs", "vgg_weight", "backbone", "device", "torch", "srlab"):
        if key in meta:
            print(f"{key:>11}: {meta[key]}")
    if meta.get("history"):
        last = meta["history"][-1]
        print(f"{'last epoch':>11}: " + ", ".join(f"{k} {v:.6g}" for k, v in last.items() if k != "epoch"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="srlab", description="Reproducible super-resolution experiments on DVC.")
    commands = parser.add_subparsers(dest="command", required=True)

    gate = commands.add_parser("check-metrics", help="fail unless the trained models beat the baselines")
    gate.add_argument("metrics", nargs="?", type=Path, default=Path("reports/metrics.json"))
    gate.add_argument("--set", default="Set5", help="test set to check (default Set5)")
    gate.add_argument("--min-gain", type=float, default=0.5, help="dB srcnn_mse must gain over bicubic (default 0.5)")
    gate.set_defaults(func=check_metrics)

    show = commands.add_parser("inspect", help="print what a model file or checkpoint holds")
    show.add_argument("checkpoint", type=Path)
    show.set_defaults(func=inspect)

    args = parser.parse_args(argv)
    run(lambda: args.func(args), f"srlab {args.command}")


if __name__ == "__main__":
    sys.exit(main())
