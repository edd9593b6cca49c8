"""Stage plots: the MSE and perceptual loss curves, and an input / output / truth figure per image."""

import pandas as pd

from srlab.backbones import describe_vgg
from srlab.data.images import test_images
from srlab.entry import run, stage_paths
from srlab.params import load_params
from srlab.plotting import comparison_figure, loss_curves


def main():
    args = stage_paths("mse_live", "perceptual_live", "test", "sr", "per_image", "out")
    p = load_params(args.params)
    live = {f"{p.model.name}_mse": args.mse_live, f"{p.model.name}_perceptual": args.perceptual_live}
    backbone = describe_vgg(p.loss.vgg_init, p.seed)
    loss_curves(live, "l_mse", args.out / "curves_mse.png", backbone)
    loss_curves(live, "l_perceptual", args.out / "curves_perceptual.png", backbone)

    scores = pd.read_csv(args.per_image).set_index(["set", "image", "method"]).sort_index()
    for set_name in p.eval.sets:
        for hr_path in test_images(args.test / set_name):
            methods = scores.loc[(set_name, hr_path.stem)]
            outputs = {m: args.sr / set_name / m / f"{hr_path.stem}.png" for m in methods.index}
            comparison_figure(
                hr_path, outputs, methods, p.plots.crop, args.out / "figures" / set_name / f"{hr_path.stem}.png"
            )
    print(f"plots: curves and figures in {args.out}")


if __name__ == "__main__":
    run(main, "plots")
