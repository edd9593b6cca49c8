"""Stage train_mse: the model trained with the pixel terms of the loss (MSE by default; L1, SSIM)."""

from dvclive import Live

from srlab.entry import run, stage_paths
from srlab.params import load_params
from srlab.training import TrainJob, dvclive_logger, train


def main():
    args = stage_paths("patches", "out", "live", "checkpoints")
    p = load_params(args.params)
    with Live(str(args.live), dvcyaml=None, save_dvc_exp=False) as live:
        meta = train(TrainJob(
            name=f"{p.model.name}_mse", params=p, weights=p.loss.pixel_weights(), epochs=p.train.epochs,
            patches=args.patches, model_out=args.out, checkpoint_dir=args.checkpoints, live=args.live,
        ), log=dvclive_logger(live))
    print(f"train_mse: {meta['epochs']} epochs on {meta['device']}, val PSNR {meta['history'][-1]['val/psnr']:.2f} dB (RGB)")


if __name__ == "__main__":
    run(main, "train_mse")
