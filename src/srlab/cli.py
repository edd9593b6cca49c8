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


def super_resolve(args) -> None:
    from tqdm import tqdm

    from srlab import checkpoint
    from srlab.data.images import UnusableImage, load_rgb, save_png
    from srlab.device import resolve_device
    from srlab.inference import super_resolve as upscale

    if args.tile < 1 or args.overlap < 0:
        raise SrlabError(f"--tile must be at least 1 and --overlap at least 0 (got {args.tile}, {args.overlap})")
    for path in args.inputs:
        if not path.is_file():
            raise SrlabError(f"{path}: no such file")
    device = resolve_device(args.device)
    model, meta = checkpoint.load_model(args.checkpoint)
    model.to(device).eval()
    for path in tqdm(args.inputs, desc="super-resolve", unit="img", disable=None):
        try:
            lr, _ = load_rgb(path)
        except UnusableImage as exc:
            raise SrlabError(f"{path}: {exc}") from None
        sr = upscale(model, lr, device, tile=args.tile, overlap=args.overlap)
        if args.histogram_match:
            from skimage.exposure import match_histograms

            sr = match_histograms(sr, lr, channel_axis=-1).round().clip(0, 255).astype("uint8")
        out = args.out / f"{path.stem}_x{meta['scale']}.png"
        save_png(out, sr)
        print(f"{path} -> {out} ({sr.shape[1]}x{sr.shape[0]})")


def compare(args) -> None:
    import json

    from srlab.compare import exp_show, experiments, write_report

    if args.from_json:
        try:
            shown = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            raise SrlabError(f"{args.from_json}: not readable JSON ({exc})") from None
    else:
        shown = exp_show(("--all-commits",) if args.all_commits else ())
    runs = experiments(shown)
    picture, markdown = write_report(runs, args.out)
    print(markdown.read_text().split("\n![")[0])
    print(f"compare: {len(runs)} experiments -> {picture}, {markdown}")


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

    sr = commands.add_parser("super-resolve", help="upscale images of any size with a trained model")
    sr.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files (any mode: grey, RGBA, 16-bit...)")
    sr.add_argument("--checkpoint", type=Path, required=True, help="a model file, e.g. models/srcnn_mse.pt")
    sr.add_argument("--out", type=Path, required=True, help="folder for <name>_x<scale>.png")
    sr.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sr.add_argument("--tile", type=int, default=256, help="LR tile side; memory grows with its square (default 256)")
    sr.add_argument("--overlap", type=int, default=16, help="LR context around each tile (default 16)")
    sr.add_argument("--histogram-match", action="store_true", help="match each output's colour histogram to its input's")
    sr.set_defaults(func=super_resolve)

    cmp = commands.add_parser("compare", help="perception-distortion picture and table across DVC experiments")
    cmp.add_argument("--out", type=Path, default=Path("reports/compare"), help="folder for the PNG and markdown")
    cmp.add_argument("--all-commits", action="store_true", help="include experiments of every commit, not just HEAD")
    cmp.add_argument("--from-json", type=Path, help="read saved `dvc exp show --json` output instead of running it")
    cmp.set_defaults(func=compare)

    args = parser.parse_args(argv)
    run(lambda: args.func(args), f"srlab {args.command}")


if __name__ == "__main__":
    sys.exit(main())
