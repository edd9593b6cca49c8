"""One quality measurement on the GPU machine, where DVC is not installed: the pipeline's download,
prepare and train_mse steps for a params file, then Set5 / Set14 scores, in one command.

    PYTHONPATH=src SRLAB_DATA_MIRROR=.device-data python3 bench/gpu_run.py PARAMS OUT [--minutes M]

--minutes M chooses train.epochs so that training fits M minutes on this GPU: the training step is
timed on random batches of the run's shape first, and the epochs chosen are written into
OUT/params.yaml, so the run can be repeated exactly (this script with OUT/params.yaml, or
`dvc exp run` with the same values). OUT also gets metrics.json (scores, training seconds, GPU),
per_image.csv and the model.

--init MODEL starts training from another run's model, of the same arch at any scale (EDSR starts
x3 and x4 from x2). Its training time counts: metrics.json adds it, read from the metrics.json
beside MODEL, into run.train_seconds_with_init, the number a "trained at most N minutes" claim needs.

The H100 SRCNN rows of docs/RESULTS.md were made by this script's first version (commit ea7b6cb),
whose step timing `srlab bench` has since replaced.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from srlab.bench import ceiling_rate, step_under_test
from srlab.data.store import read_index
from srlab.device import describe_device, resolve_device
from srlab.entry import run
from srlab.errors import SrlabError
from srlab.evaluation import evaluate
from srlab.fileio import write_json, write_text
from srlab.inference import CHANNELS_LAST
from srlab.params import load_params
from srlab.training import TrainJob, train

SCORING_SHARE = 0.15  # of the budget left for per-epoch validation and checkpoints


def stage(script: str, params: Path, *args: str) -> None:
    if subprocess.run([sys.executable, f"stages/{script}.py", "--params", str(params), *args]).returncode:
        raise SrlabError(f"stage {script} failed (its error is above)")


def epochs_for(minutes: float, p, patches: Path) -> tuple[int, float]:
    """Epochs of training that fit `minutes`, from the step rate on random batches of the run's shape."""
    device = resolve_device(p.train.device)
    count = min(p.train.epoch_samples or math.inf, read_index(patches)["splits"]["train"]["count"])
    _, net, objective = step_under_test(p, device, CHANNELS_LAST)
    rate = ceiling_rate(net, objective, p, device, CHANNELS_LAST, steps=100, warmup=20)
    batch = p.train.batch_size
    epoch_seconds = (int(count) // batch) * batch / rate
    return max(1, math.floor(minutes * 60 * (1 - SCORING_SHARE) / epoch_seconds)), rate


def earlier_training(model: Path) -> float:
    """Seconds of training behind `model`, from the metrics.json that gpu_run wrote beside it."""
    metrics = model.parent / "metrics.json"
    if not model.is_file() or not metrics.is_file():
        raise SrlabError(f"--init {model}: needs a model made by gpu_run, with its metrics.json beside it")
    run_info = json.loads(metrics.read_text())["run"]
    return run_info.get("train_seconds_with_init", run_info["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("params", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, help="fit train.epochs to this much training time on this GPU")
    parser.add_argument(
        "--init", type=Path, help="start from this model file (another gpu_run's OUT/<model>_mse.safetensors)"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/srlab-gpu"), help="photos, patches, checkpoints (not kept)"
    )
    args = parser.parse_args()
    p = load_params(args.params)  # a bad params file stops before anything is written
    init_seconds = earlier_training(args.init) if args.init else 0.0
    device = describe_device(resolve_device(p.train.device))
    args.out.mkdir(parents=True, exist_ok=True)
    raw, patches = args.work / "raw", args.work / "patches"
    print("device:", device, "torch", torch.__version__, flush=True)

    stage("download", args.params, "--out", str(raw), "--downloads", str(args.work / "downloads"))
    stage("prepare", args.params, "--raw", str(raw), "--out", str(patches), "--report", str(args.out / "prepare.json"))
    settings = yaml.safe_load(args.params.read_text())
    if args.minutes:
        epochs, rate = epochs_for(args.minutes, p, patches)
        print(f"step rate {rate:.0f} img/s: {epochs} epochs fit {args.minutes} min", flush=True)
        settings.setdefault("train", {})["epochs"] = epochs
    params_used = args.out / "params.yaml"
    write_text(params_used, yaml.safe_dump(settings, sort_keys=False))
    p = load_params(params_used)

    start = time.perf_counter()

    def log(row):
        print(f"{time.perf_counter() - start:7.1f}s", json.dumps({k: round(v, 5) for k, v in row.items()}), flush=True)

    name = f"{p.model.name}_mse"
    job = TrainJob.for_stage(
        "mse", p, patches, args.out / f"{name}.safetensors", args.work / "checkpoints" / name, init_from=args.init
    )
    train(job, log=log)
    train_seconds = time.perf_counter() - start
    summary, table = evaluate(p, raw / "test", {name: job.model_out}, args.work / "sr")
    summary["run"] = {
        "train_seconds": round(train_seconds, 1),
        "epochs": p.train.epochs,
        "device": device,
        "torch": torch.__version__,
        "params": p.to_dict(),
    }
    if args.init:
        summary["run"] |= {"init": str(args.init), "train_seconds_with_init": round(train_seconds + init_seconds, 1)}
    write_json(args.out / "metrics.json", summary)
    table.to_csv(args.out / "per_image.csv", index=False)
    for set_name in p.eval.sets:
        print(set_name, json.dumps(summary[set_name]), flush=True)
    print(f"trained {train_seconds:.0f} s ({train_seconds / 60:.1f} min), {p.train.epochs} epochs", flush=True)
    if args.init:
        total = train_seconds + init_seconds
        print(f"with the training of {args.init}: {total:.0f} s ({total / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    run(main, "gpu_run")
