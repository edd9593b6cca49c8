"""The figures the plots stage writes: every label inside the picture."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from srlab.data.images import save_png
from srlab.plotting import comparison_figure, loss_curves


def _margins_are_blank(path) -> bool:
    """True when the outermost 3 pixels on every side are background: text cut off at an edge
    leaves dark pixels there."""
    img = np.asarray(Image.open(path).convert("L")).astype(int)
    edges = [img[:3], img[-3:], img[:, :3], img[:, -3:]]
    return all((edge > 250).all() for edge in edges)


def test_the_comparison_figure_keeps_every_panel_title_inside_the_picture(tmp_path, photo):
    """The assignment note's input / output / ground-truth figure: each panel's two-line label (the
    method, then its PSNR / SSIM) must be readable, not cut off at the top."""
    save_png(tmp_path / "hr.png", photo)
    outputs = {}
    for method in ("bicubic", "srcnn_mse", "srcnn_perceptual"):
        save_png(tmp_path / f"{method}.png", photo)
        outputs[method] = tmp_path / f"{method}.png"
    scores = pd.DataFrame({"psnr": [30.0, 31.5, 31.4], "ssim": [0.9, 0.92, 0.91]}, index=list(outputs))
    comparison_figure(tmp_path / "hr.png", outputs, scores, crop=64, out=tmp_path / "figure.png")
    assert _margins_are_blank(tmp_path / "figure.png")
    top = np.asarray(Image.open(tmp_path / "figure.png").convert("L"))[:40]
    assert (top < 128).any()  # and the titles are there, in the band above the panels


def test_the_loss_curves_keep_their_labels_inside_the_picture(tmp_path):
    for run in ("mse", "perceptual"):
        for split in ("train", "val"):
            folder = tmp_path / run / "plots" / "metrics" / split
            folder.mkdir(parents=True)
            pd.DataFrame({"step": [1, 2, 3], "l_mse": [3e-3, 2e-3, 1e-3]}).to_csv(
                folder / "l_mse.tsv", sep="\t", index=False
            )
    loss_curves(
        {"srcnn_mse": tmp_path / "mse", "srcnn_perceptual": tmp_path / "perceptual"},
        "l_mse",
        tmp_path / "curves.png",
        "vgg16 random init (seed 0), not ImageNet-trained",
    )
    assert _margins_are_blank(tmp_path / "curves.png")


def test_a_one_epoch_stage_shows_on_the_loss_curves(tmp_path, monkeypatch):
    """The CPU recipe runs have stages of one epoch: each must be a visible point, not an empty line."""
    for split in ("train", "val"):
        folder = tmp_path / "perceptual" / "plots" / "metrics" / split
        folder.mkdir(parents=True)
        pd.DataFrame({"step": [1], "l_mse": [2e-3]}).to_csv(folder / "l_mse.tsv", sep="\t", index=False)
    drawn = []
    monkeypatch.setattr("srlab.plotting.plt.close", drawn.append)  # keep the figure to look at
    loss_curves({"srcnn_perceptual": tmp_path / "perceptual"}, "l_mse", tmp_path / "curves.png", "random")
    lines = drawn[0].axes[0].get_lines()
    assert len(lines) == 2
    assert all(line.get_marker() not in (None, "", "None") for line in lines)
    assert all(tick == int(tick) for tick in drawn[0].axes[0].get_xticks())  # epochs, whole numbers
