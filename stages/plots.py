"""Stage plots: the MSE and perceptual loss curves, an input / output / truth figure per image, and
the results page (a slider between any two of them per image, the scores, the curves)."""

import pandas as pd

from srlab.backbones import describe_vgg
from srlab.data.images import test_images
from srlab.entry import run, stage_paths
from srlab.page import Layout, Run, workspace, write_page
from srlab.params import load_params
from srlab.plotting import comparison_figure, training_curves


def main():
    args = stage_paths("mse_live", "perceptual_live", "test", "sr", "per_image", "metrics", "out", "page")
    p = load_params(args.params)
    backbone = describe_vgg(p.loss.vgg_init, p.seed)
    training_curves(args.mse_live, args.perceptual_live, p.model.name, backbone, args.out)

    scores = pd.read_csv(args.per_image).set_index(["set", "image", "method"]).sort_index()
    for set_name in p.eval.sets:
        for hr_path in test_images(args.test / set_name):
            methods = scores.loc[(set_name, hr_path.stem)]
            outputs = {m: args.sr / set_name / m / f"{hr_path.stem}.png" for m in methods.index}
            comparison_figure(
                hr_path, outputs, methods, p.plots.crop, args.out / "figures" / set_name / f"{hr_path.stem}.png"
            )
    layout = Layout(
        str(args.metrics),
        str(args.per_image),
        str(args.test),
        str(args.sr),
        (("mse", str(args.mse_live)), ("perceptual", str(args.perceptual_live))),
    )
    page = write_page([Run("", workspace(), layout)], args.page, f"srlab: {p.model.name}")
    print(f"plots: curves and figures in {args.out}, the results page in {page}")


if __name__ == "__main__":
    run(main, "plots")
