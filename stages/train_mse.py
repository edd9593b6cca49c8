"""Stage train_mse: SRCNN trained with pixel MSE alone."""

from dvclive import Live

from srlab.entry import run, stage_paths
from srlab.params import load_params
from srlab.training import TrainJob, dvclive_logger, train


def main():
    args = stage_paths("patches", "out", "live", "checkpoints")
    p = load_params(args.params)
    with Live(str(args.live), dvcyaml=None, save_dvc_exp=False) as live:
        meta = train(TrainJob(
            name="srcnn_mse", params=p, vgg_weight=0.0, epochs=p.train.epochs,
            patches=args.patches, model_out=args.out, checkpoint_dir=args.checkpoints,
        ), log=dvclive_logger(live))
    print(f"train_mse: {meta['epochs']} epochs on {meta['device']}, val MSE {meta['history'][-1]['val/l_mse']:.5f}")


if __name__ == "__main__":
    run(main, "train_mse")
