"""Stage train_perceptual: the pixel terms + loss.vgg_weight * VGG16 perceptual loss, and the
VGG19 / ResNet content and adversarial (SRGAN) terms when their weights are above 0.

Starts from the MSE model's weights unless train.perceptual_init is `scratch` (SRGAN's
"generator pre-trained with the content loss first").
"""

from srlab.distributed import is_main_process
from srlab.entry import run, stage_paths
from srlab.params import load_params
from srlab.training import TrainJob, curves, train


def main():
    args = stage_paths("patches", "init", "out", "live", "checkpoints")
    p = load_params(args.params)
    job = TrainJob.for_stage(
        "perceptual", p, args.patches, args.out, args.checkpoints, live=args.live, init_from=args.init
    )
    with curves(args.live) as log:
        meta = train(job, log=log)
    if not is_main_process():  # under torchrun, one summary line
        return
    last = meta["history"][-1]
    print(
        f"train_perceptual: {meta['epochs']} epochs on {meta['device']}, backbone {meta['backbone']}, "
        f"val MSE {last['val/l_mse']:.5f}, val perceptual {last['val/l_perceptual']:.5f}"
    )


if __name__ == "__main__":
    run(main, "train_perceptual")
