"""torchrun with 2 processes on the gloo backend trains the same model as one process."""

import json
import subprocess
import sys

import pytest
import torch

from srlab import checkpoint
from srlab.data.patches import Degradation, crop_pairs
from srlab.data.store import save_pairs

_DRIVER = """
import json, os, sys
from pathlib import Path
import srlab.checkpoint
from srlab.params import parse_params
from srlab.data.loader import BatchLoader
from srlab.training import TrainJob, train

# record what this process trains on (the pair indices of each step) and which files it writes
seen, written = [], []
real_batches, real_save = BatchLoader.batches, srlab.checkpoint.save
BatchLoader.batches = lambda self, indices: (seen.append([i.tolist() for i in indices]), real_batches(self, indices))[1]
srlab.checkpoint.save = lambda path, payload: (written.append(Path(path).name), real_save(path, payload))[1]

patches, run, crop = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
p = parse_params({"data": {"hr_size": 16}, "train": {"batch_size": 8, "device": "cpu", "epochs": 2, "crop_size": crop}})
job = TrainJob(name="t", params=p, weights={"mse": 1.0, "perceptual": 0.5}, epochs=2, patches=patches,
               model_out=run / "model.pt", checkpoint_dir=run / "ckpt")
train(job)
run.mkdir(parents=True, exist_ok=True)  # rank 1 may get here first
(run / f"record_rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps({"seen": seen, "written": written}))
"""


@pytest.fixture
def patches(tmp_path, photo):
    rng = __import__("numpy").random.default_rng(0)
    folder = tmp_path / "patches"
    save_pairs(folder, "train", crop_pairs(photo, 2, 16, 32, Degradation("bicubic"), rng))
    save_pairs(folder, "val", crop_pairs(photo, 2, 16, 8, Degradation("bicubic"), rng))
    return folder


def _torchrun_two(driver, *args) -> list[str]:
    """`torchrun --standalone --nproc_per_node 2 DRIVER ARGS...`: two gloo processes on this CPU."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver)] + [
        str(a) for a in args
    ]


def _run_group(cmd: list[str]) -> subprocess.CompletedProcess:
    """torchrun and its workers in their own session, all killed if they outlive the timeout."""
    import os
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("crop", [0, 8], ids=["whole-patches", "random-crops"])
def test_two_gloo_processes_match_one_process(tmp_path, patches, crop):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    one = subprocess.run(
        [sys.executable, str(driver), str(patches), str(tmp_path / "one"), str(crop)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = _run_group(_torchrun_two(driver, patches, tmp_path / "two", crop))
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (checkpoint.load(tmp_path / run / "model.pt") for run in ("one", "two"))
    # the same batches and flips, gradients averaged over two half-batches instead of one full one:
    # equal up to float summation order
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-4, atol=1e-5)
    # every curve of every epoch, training's included: averaged over the ranks, not one rank's nor their sum
    for row_a, row_b in zip(a["meta"]["history"], b["meta"]["history"], strict=True):
        assert row_a.keys() == row_b.keys()
        for key, value in row_a.items():
            assert row_b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (row_a["epoch"], key)
    assert not list((tmp_path / "two" / "ckpt").glob(".*.tmp"))  # no half-written file from either rank
    # each rank trained on its own half of every batch one process trained on, and only rank 0 wrote
    one, r0, r1 = (
        json.loads((tmp_path / run / f"record_rank{r}.json").read_text())
        for run, r in (("one", 0), ("two", 0), ("two", 1))
    )
    for whole, half0, half1 in zip(_steps(one), _steps(r0), _steps(r1), strict=True):
        assert len(half0) == len(half1) == len(whole) // 2 and not set(half0) & set(half1)
        assert sorted(half0 + half1) == sorted(whole)
    assert r1["written"] == [] and {"last.pt", "model.pt"} <= set(r0["written"])


def _steps(record: dict) -> list[list[int]]:
    return [step for epoch in record["seen"] for step in epoch]


_SRGAN_DRIVER = """
import os, sys
from pathlib import Path
import torch
import srlab.training
from srlab.params import parse_params
from srlab.training import TrainJob, train

made, batch_sizes = [], []


# this rank's discriminator, its initial weights and batches
def build_and_keep(*args, build=srlab.training.build_discriminator):
    discriminator = build(*args)
    made.append((discriminator, {k: v.clone() for k, v in discriminator.state_dict().items()}))
    discriminator.register_forward_pre_hook(lambda module, args: batch_sizes.append(len(args[0])))
    return discriminator


srlab.training.build_discriminator = build_and_keep

patches, run = Path(sys.argv[1]), Path(sys.argv[2])
p = parse_params({"model": {"name": "srresnet"}, "loss": {"adversarial_weight": 1e-3},
                  "train": {"batch_size": 8, "device": "cpu", "perceptual_epochs": 1}})
job = TrainJob(name="g", params=p, weights=p.loss.second_stage_weights(), epochs=1, patches=patches, stage="perceptual",
               model_out=run / "model.pt", checkpoint_dir=run / "ckpt")
train(job)
run.mkdir(parents=True, exist_ok=True)  # rank 1 may get here first
discriminator, initial = made[0]
saved = {"initial": initial, "final": discriminator.state_dict(), "batch_sizes": batch_sizes}
torch.save(saved, run / f"discriminator_rank{os.environ.get('RANK', '0')}.pt")
"""


def test_srgan_under_torchrun_keeps_one_discriminator_across_ranks(tmp_path, patches):
    """Each rank's discriminator sees only its half of the batch; with its gradients averaged the
    two stay the same network, step after step (without, they would drift apart at the first)."""
    driver = tmp_path / "srgan.py"
    driver.write_text(_SRGAN_DRIVER)
    two = _run_group(_torchrun_two(driver, patches, tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    d0, d1 = (torch.load(tmp_path / "two" / f"discriminator_rank{r}.pt") for r in (0, 1))
    weights = [k for k in d0["final"] if k.endswith(("weight", "bias"))]
    for key in weights:
        assert torch.equal(d0["initial"][key], d1["initial"][key]), key  # the same start (same seed)
        assert torch.equal(d0["final"][key], d1["final"][key]), key
    assert all(not torch.equal(d0["final"][k], d0["initial"][k]) for k in weights)  # every layer trained
    # on its own share: half of each batch of 8 (one process would see all 8 and need no averaging)
    assert d0["batch_sizes"] and set(d0["batch_sizes"]) == set(d1["batch_sizes"]) == {4}
    state = checkpoint.load(tmp_path / "two" / "ckpt" / "last.pt")
    assert "discriminator" in state and "train/objective_l_adversarial" in state["meta"]["history"][0]
