"""A GPU measurement without DVC: train SRCNN with MSE on prepared patches, score it on the test
sets, and time the training step against the same model on a fixed on-device batch (the ceiling).
Kept to reproduce the H100 rows of docs/RESULTS.md; for throughput use `srlab bench`.

    python bench/gpu_run.py PARAMS PATCHES TEST_ROOT OUT_DIR
"""

import json
import sys
import time
from pathlib import Path

import torch

from srlab.evaluation import evaluate
from srlab.models import build_model
from srlab.params import load_params
from srlab.training import TrainJob, _as_float, apply_flips, draw_flips, train


def step_throughput(p, hr_size: int, batch: int, steps: int = 50) -> dict:
    """images/s of (a) our step: sample + augment + fwd/bwd/step, (b) fwd/bwd/step on one fixed batch."""
    device = torch.device("cuda")
    layout = torch.channels_last
    model = build_model(p.model, p.data.scale).to(device, memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=p.train.lr)
    pool_lr = torch.randint(0, 256, (4096, 3, hr_size // 2, hr_size // 2), dtype=torch.uint8, device=device)
    pool_hr = torch.randint(0, 256, (4096, 3, hr_size, hr_size), dtype=torch.uint8, device=device)
    gen = torch.Generator().manual_seed(0)
    fixed_lr, fixed_hr = _as_float(pool_lr[:batch], layout), _as_float(pool_hr[:batch], layout)

    def real():
        idx = torch.randint(0, 4096, (batch,), generator=gen).to(device)
        flips = draw_flips(batch, gen).to(device)
        return apply_flips(_as_float(pool_lr[idx]), flips, layout), apply_flips(_as_float(pool_hr[idx]), flips, layout)

    results = {}
    for name, draw in (("a_loop", real), ("b_ceiling", lambda: (fixed_lr, fixed_hr))):
        for i in range(steps + 10):
            if i == 10:
                torch.cuda.synchronize()
                start = time.perf_counter()
            lr, hr = draw()
            loss = torch.nn.functional.mse_loss(model(lr), hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        results[name] = steps * batch / (time.perf_counter() - start)
    results["a_over_b"] = results["a_loop"] / results["b_ceiling"]
    return results


def main(params_path, patches, test_root, out):
    out = Path(out)
    p = load_params(params_path)
    print("gpu:", torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    for size in (96, 240):
        print(f"step throughput, {size}px HR, batch 64:", json.dumps(step_throughput(p, size, 64)), flush=True)

    start = time.perf_counter()

    def log(row):
        print(f"{time.perf_counter() - start:7.1f}s", json.dumps({k: round(v, 7) for k, v in row.items()}), flush=True)

    job = TrainJob(name="srcnn_mse", params=p, weights=p.loss.pixel_weights(), epochs=p.train.epochs, patches=Path(patches),
                   model_out=out / "srcnn_mse.pt", checkpoint_dir=Path("/tmp/gpu-ckpt"))
    meta = train(job, log=log)
    train_seconds = time.perf_counter() - start
    summary, table = evaluate(p, Path(test_root), {"srcnn_mse": out / "srcnn_mse.pt"}, Path("/tmp/gpu-sr"))
    summary["run"] = {"train_seconds": round(train_seconds, 1), "epochs": meta["epochs"], "gpu": torch.cuda.get_device_name(),
                      "torch": torch.__version__, "params": p.to_dict()}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    table.to_csv(out / "per_image.csv", index=False)
    for set_name in p.eval.sets:
        print(set_name, json.dumps(summary[set_name]), flush=True)
    print(f"trained {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
