"""The tables of docs/RESULTS.md's "The design notes at a CPU budget", from the runs that
bench/recipes_cpu.sh kept in docs/results/recipes/RUN/ (run.json, params.yaml, metrics.json).

    python bench/recipes_table.py [docs/results/recipes] [RUN ...]

Prints two markdown tables: each run's budget, steps, wall time and peak memory; then each
model's Set5 / Set14 Y-PSNR and SSIM (and RGB PSNR where the run scored it) beside bicubic and
beside the number the note's paper publishes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import yaml

# What the papers publish for the notes' models (Y channel, border shaved), by method and scale
PUBLISHED = {
    ("srcnn_mse", 2): "9-5-5 (Dong et al., TPAMI 2016): 36.66 / 32.45",
    ("srcnn915_mse", 3): "9-1-5 (Dong et al., ECCV 2014): 32.39 / 29.00",
    ("srresnet_mse", 4): "SRResNet (Ledig et al., CVPR 2017): Set5 32.05 / 0.9019",
    ("srresnet_perceptual", 4): "SRGAN (Ledig et al., CVPR 2017): Set5 29.40 / 0.8472",
}
OFFLINE = ("data.train_source", "data.train_dir", "loss.vgg_init", "loss.vgg19_init", "eval.lpips")


def steps(params: dict, stage_epochs: int, train_pairs: int) -> str:
    train = params["train"]
    samples = train["epoch_samples"] or train_pairs
    return f"{stage_epochs} x {samples:,} ({stage_epochs * math.ceil(samples / train['batch_size']):,} steps)"


def runs_table(runs: list[Path]) -> str:
    rows = [
        "| run | budget on top of the recipe | MSE stage: epochs x samples | perceptual stage | wall | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        params = yaml.safe_load((run / "params.yaml").read_text())
        pairs = json.loads((run / "prepare.json").read_text())["train"]["patches"]
        overrides = dict(o.split("=", 1) for o in info["command"].split(" -S ")[1:])  # the last of a key wins
        budget = " ".join(f"{k}={v}" for k, v in overrides.items() if k not in OFFLINE)
        minutes, seconds = divmod(info["wall_s"], 60)
        rows.append(
            f"| {run.name} | `{budget}` | {steps(params, params['train']['epochs'], pairs)} "
            f"| {steps(params, params['train']['perceptual_epochs'], pairs)} "
            f"| {minutes}:{seconds:02d} | {info['peak_rss_gb']:.2f} GiB |"
        )
    return "\n".join(rows)


def scores_table(runs: list[Path]) -> str:
    scores = {run: json.loads((run / "metrics.json").read_text()) for run in runs}
    rgb = any("rgb_psnr" in metrics["Set5"]["bicubic"] for metrics in scores.values())
    head = "| run | method | Set5 Y-PSNR / SSIM | Set14 Y-PSNR / SSIM |" + (" Set5 / Set14 RGB PSNR |" if rgb else "")
    rows = [head + " published (Set5 / Set14) |", "|---" * head.count("|") + "|"]
    shown = set()
    for run, metrics in scores.items():
        scale = metrics["provenance"]["scale"]
        for method in metrics["Set5"]:
            cells = [f"{metrics[s][method]['psnr']:.2f} / {metrics[s][method]['ssim']:.4f}" for s in ("Set5", "Set14")]
            if rgb:
                scored = "rgb_psnr" in metrics["Set5"][method]
                cells.append(
                    " / ".join(f"{metrics[s][method]['rgb_psnr']:.2f}" for s in ("Set5", "Set14")) if scored else ""
                )
            if (scale, method, *cells) in shown:
                continue  # bicubic on the same inputs, or the same model, as in a run above
            shown.add((scale, method, *cells))
            published = PUBLISHED.get((method, scale), "")
            rows.append(f"| {run.name} (x{scale}) | {method} | " + " | ".join(cells) + f" | {published} |")
    return "\n".join(rows)


NOTES = ["assignment", "srcnn-cli", "rescnn", "srgan", "johnson"]  # the README's order


def kept_runs(folder: Path) -> list[Path]:
    """The runs kept in `folder`, each note's main run first, then its other runs and variants."""
    runs = [p for p in folder.iterdir() if (p / "run.json").is_file()]
    recipe = {p: json.loads((p / "run.json").read_text())["command"].split()[2] for p in runs}
    return sorted(runs, key=lambda p: (NOTES.index(recipe[p]), p.name != recipe[p], p.name))


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("docs/results/recipes")
    runs = [folder / name for name in argv[1:]] or kept_runs(folder)
    print(runs_table(runs), end="\n\n")
    print(scores_table(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
