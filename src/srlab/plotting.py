"""The two loss-curve graphs and the input / output / ground-truth figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or the GPU machine
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from srlab.data.images import load_rgb
from srlab.fileio import atomic_path

TERMS = {"l_mse": "MSE loss", "l_perceptual": "perceptual loss (VGG16)"}


def read_curve(live_dir: Path, split: str, term: str) -> pd.DataFrame:
    return pd.read_csv(live_dir / "plots" / "metrics" / split / f"{term}.tsv", sep="\t")


def loss_curves(live_dirs: dict[str, Path], term: str, out: Path, backbone: str) -> None:
    """One graph of `term` against epoch: train and val of every model."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (model, live_dir), colour in zip(live_dirs.items(), ("tab:blue", "tab:orange", "tab:green")):
        for split, style in (("train", "--"), ("val", "-")):
            curve = read_curve(live_dir, split, term)
            # a marker on each epoch: a one-epoch stage is a single point, which a line alone hides
            ax.plot(curve["step"], curve[term], style, marker="o", ms=3, color=colour, label=f"{model} {split}")
    ax.set(xlabel="epoch of each run", ylabel=TERMS[term], yscale="log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs, not 1.25
    ax.set_title(f"{TERMS[term]} against epoch\nperceptual backbone: {backbone}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out)


def training_curves(mse_live: Path, perceptual_live: Path, model: str, backbone: str, out: Path) -> None:
    """Both graphs of a run's two trainings: `out`/curves_mse.png and `out`/curves_perceptual.png."""
    live = {f"{model}_mse": mse_live, f"{model}_perceptual": perceptual_live}
    for term in TERMS:
        loss_curves(live, term, out / f"curves_{term.removeprefix('l_')}.png", backbone)


def comparison_figure(hr_path: Path, outputs: dict[str, Path], scores: pd.DataFrame, crop: int, out: Path) -> None:
    """Side by side: each method's output and the ground truth, on a centre crop so detail shows."""
    hr = load_rgb(hr_path)[0]
    panels = {method: load_rgb(path)[0] for method, path in outputs.items()}
    h, w = next(iter(panels.values())).shape[:2]
    size = min(crop, h, w)
    y, x = (h - size) // 2, (w - size) // 2
    panels["ground truth"] = hr[:h, :w]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
    for ax, (name, img) in zip(np.atleast_1d(axes), panels.items()):
        ax.imshow(img[y : y + size, x : x + size], interpolation="nearest")
        title = name if name != "bicubic" else "input (bicubic up)"
        if name in scores.index:
            title += f"\n{scores.loc[name, 'psnr']:.2f} dB / {scores.loc[name, 'ssim']:.4f}"
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.supxlabel(
        f"{hr_path.parent.name} / {hr_path.stem}: centre {size}px crop; Y-PSNR / Y-SSIM of the whole image", fontsize=9
    )
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        # the saved area is grown to every label (tight_layout alone left two-line panel titles
        # cut off at the top edge)
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
