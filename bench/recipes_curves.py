"""Redraws the loss curves of the runs kept in docs/results/recipes/ from their dvclive files, with
the plots stage's own code (srlab.plotting.training_curves), so a change to the plots reaches the
kept runs without training them again.

    python bench/recipes_curves.py [docs/results/recipes]
"""

from __future__ import annotations

import sys
from pathlib import Path

from srlab.backbones import describe_vgg
from srlab.params import load_params
from srlab.plotting import training_curves


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("docs/results/recipes")
    for run in sorted(p for p in folder.iterdir() if (p / "params.yaml").is_file()):
        p = load_params(run / "params.yaml")
        training_curves(
            run / "train" / "mse",
            run / "train" / "perceptual",
            p.model.name,
            describe_vgg(p.loss.vgg_init, p.seed),
            run,
        )
        print(f"{run}: curves_mse.png, curves_perceptual.png")


if __name__ == "__main__":
    main(sys.argv[1:])
