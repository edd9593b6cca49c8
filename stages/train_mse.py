"""Stage train_mse: the model trained with the pixel terms of the loss (MSE by default; L1, SSIM)."""

from srlab.distributed import is_main_process
from srlab.entry import run, stage_paths
from srlab.params import load_params
from srlab.training import TrainJob, curves, train


def main():
    args = stage_paths("patches", "out", "live", "checkpoints")
    p = load_params(args.params)
    job = TrainJob.for_stage("mse", p, args.patches, args.out, args.checkpoints, live=args.live)
    with curves(args.live) as log:
        meta = train(job, log=log)
    if is_main_process():  # under torchrun, one summary line
        print(
            f"train_mse: {meta['epochs']} epochs on {meta['device']}, "
            f"val PSNR {meta['history'][-1]['val/psnr']:.2f} dB (RGB)"
        )


if __name__ == "__main__":
    run(main, "train_mse")
