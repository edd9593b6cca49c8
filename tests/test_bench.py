"""`srlab bench` is checked for running and reporting, never for speed (speed is what it measures)."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from srlab.cli import main
from srlab.params import load_params


def test_training_flops_are_three_forward_passes_at_the_patch_size():
    import torch

    from srlab.bench import step_under_test, training_flops_per_image
    from srlab.params import parse_params

    p = parse_params({"data": {"hr_size": 64}})  # SRCNN 9-5-5 on a pre-upsampled input, 3 channels
    _, _, objective = step_under_test(p, torch.device("cpu"), torch.contiguous_format, "mse")
    forward = 2 * (3 * 9 * 9 * 64 + 64 * 5 * 5 * 32 + 32 * 5 * 5 * 3)  # per output pixel, padded "same"
    assert training_flops_per_image(p, objective) == pytest.approx(3 * forward * 64 * 64)


def test_every_gpu_recipe_is_valid_params():
    recipes = sorted((REPO / "bench").glob("gpu_*.yaml"))
    assert len(recipes) >= 4
    for path in recipes:
        p = load_params(path)
        assert p.train.device == "cuda" and p.data.train_dir == ".device-data/SunHays80", path.name
        assert p.data.hr_size % p.data.scale == 0, path.name


def _shrunk_recipe(tmp_path, name: str, scale: int, hr_size: int):
    """An EDSR GPU recipe shrunk to seconds of CPU: SRCNN, tiny patches, Set5 only."""
    recipe = yaml.safe_load((REPO / "bench" / f"gpu_edsr_x{scale}.yaml").read_text())
    recipe["data"].update(train_source="sample", train_dir="", hr_size=hr_size, patches_per_image=4)
    recipe["model"]["name"] = "srcnn"  # EDSR on Set5 is minutes of CPU; the script does not care which model
    recipe["train"].update(device="cpu", batch_size=8, warmup_steps=2)
    recipe["eval"].update(sets=["Set5"], self_ensemble=False)
    (tmp_path / name).write_text(yaml.safe_dump(recipe))
    return tmp_path / name


def _gpu_run(tmp_path, recipe, out: str, *args: str, mirror):
    subprocess.run(
        [
            sys.executable,
            "bench/gpu_run.py",
            str(recipe),
            str(tmp_path / out),
            "--minutes",
            "0.02",
            "--work",
            str(tmp_path / f"work_{out}"),
            *args,
        ],
        cwd=REPO,
        check=True,
        env={**os.environ, "SRLAB_DATA_MIRROR": str(mirror)},
    )
    return json.loads((tmp_path / out / "metrics.json").read_text())


@pytest.mark.long
def test_gpu_run_fits_epochs_to_the_budget_and_scores_the_model(tmp_path, mirror):
    """bench/gpu_run.py on CPU with tiny sizes: the same steps the GPU run takes, end to end, then
    an x3 run started from the x2 model, whose training time includes the x2 run's."""
    metrics = _gpu_run(tmp_path, _shrunk_recipe(tmp_path, "x2.yaml", 2, 32), "x2", mirror=mirror)
    used = yaml.safe_load((tmp_path / "x2" / "params.yaml").read_text())
    assert used["train"]["epochs"] >= 1 and metrics["run"]["epochs"] == used["train"]["epochs"]
    assert set(metrics["Set5"]) == {"bicubic", "srcnn_mse"} and metrics["run"]["device"].startswith("cpu")

    x3 = _gpu_run(
        tmp_path,
        _shrunk_recipe(tmp_path, "x3.yaml", 3, 30),
        "x3",
        "--init",
        str(tmp_path / "x2" / "srcnn_mse.safetensors"),
        mirror=mirror,
    )
    assert x3["run"]["init"].endswith("srcnn_mse.safetensors") and x3["Set5"]["srcnn_mse"]["psnr"] > 0
    total = x3["run"]["train_seconds"] + metrics["run"]["train_seconds"]
    assert abs(x3["run"]["train_seconds_with_init"] - total) <= 0.1


def test_gpu_run_init_without_its_metrics_is_one_line_and_writes_nothing(tmp_path, mirror):
    (tmp_path / "loose.pt").write_bytes(b"not a gpu_run model")
    done = subprocess.run(
        [
            sys.executable,
            "bench/gpu_run.py",
            str(_shrunk_recipe(tmp_path, "x3.yaml", 3, 30)),
            str(tmp_path / "out"),
            "--init",
            str(tmp_path / "loose.pt"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "SRLAB_DATA_MIRROR": str(mirror)},
    )
    assert done.returncode != 0 and not (tmp_path / "out").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "loose.pt: needs a model made by gpu_run, with its metrics.json beside it" in lines[0]


def test_the_gpu_session_is_one_command_without_arguments_naming_files_that_exist():
    """bench/gpu_session.sh must run as it is on the device machine (no arguments, no edits there)."""
    import re

    script = REPO / "bench" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    top_level = [line for line in text.splitlines() if not re.match(r"\s*(#|\w+\(\) \{)", line)]  # not in a function
    assert not [line for line in top_level if re.search(r"\$\{?[1-9@*#]", line)], "the script reads arguments"
    named = set(re.findall(r"bench/[\w.]+\.(?:py|yaml)", text))
    assert {"bench/gpu_run.py", "bench/gpu_srcnn_x2.yaml"} <= named
    assert all((REPO / name).is_file() for name in named), named


def test_bench_smoke_of_a_perceptual_stage_reports_every_number_with_its_vgg16_terms_in_the_step(
    tmp_path, capsys, monkeypatch
):
    """`srlab bench --smoke --stage perceptual` on CPU: (a), (b) and (c) all step train_perceptual's
    objective and the TFLOP/s count the VGG16 passes too; `--versus` times (a) and (b) again with
    another setting in the same run; `--profile` writes the operator table. One bench run checks all
    of it: bench runs are among the suite's costliest tests."""
    from srlab import bench, training

    objectives = []
    real_step = training.optimisation_step

    def recording_step(net, objective, *args):
        objectives.append(sorted(objective.terms))
        return real_step(net, objective, *args)

    monkeypatch.setattr(training, "optimisation_step", recording_step)
    monkeypatch.setattr(bench, "optimisation_step", recording_step)
    common = ["bench", "--smoke", "--workers", "1", "--set", "train.device=cpu", "--set", "loss.vgg_weight=0.5"]
    with pytest.raises(SystemExit):
        main([*common, "--stage", "perceptual", "--set", "loss.adversarial_weight=0.001"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the adversarial term is not benched" in err[0] and not objectives  # before any work
    with pytest.raises(SystemExit):
        main([*common, "--set", "train.compile=true", "--versus", "train.compile=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "time the eager side first" in err[0] and not objectives

    versus = ["--versus", "train.memory_format=channels_last"]
    reports = ["--json", str(tmp_path / "bench.json"), "--profile", str(tmp_path / "profile.txt")]
    main([*common, "--stage", "perceptual", *versus, *reports])
    printed = capsys.readouterr().out
    for label in (
        "perceptual stage",
        "(a) training loop",
        "(b) on-device ceiling",
        "(c) seeds-style PIL loader",
        "a/b =",
        "TFLOP/s",
        "peak memory",
        "MP/s",
        "versus train.memory_format=channels_last: (a) ",
        "dense kernels in fp32: matmul ",
    ):
        assert label in printed
    assert objectives and all(terms == ["mse", "perceptual"] for terms in objectives)  # the loop and the timed steps
    numbers = json.loads((tmp_path / "bench.json").read_text())
    for key in (
        "a_loop",
        "b_ceiling",
        "c_seeds_loader",
        "a_over_b",
        "a_over_c",
        "a_tflops",
        "b_tflops",
        "dense_tflops",
        "super_resolve_mpix_per_s",
        "peak_rss_gib",
    ):
        assert numbers[key] > 0, key
    assert numbers["precision"] == "fp32" and numbers["device"].startswith("cpu") and numbers["stage"] == "perceptual"
    assert numbers["dense_tflops"] == max(numbers["dense"].values()) and len(numbers["dense"]) == 2
    assert numbers["memory_format"] == "contiguous_format"
    other = numbers["versus"]  # (a) and (b) again, channels_last, in the same run
    assert other["overrides"] == ["train.memory_format=channels_last"]
    assert other["a_loop"] > 0 and other["b_ceiling"] > 0 and other["a_over_b"] > 0
    # per HR pixel, 2 FLOPs a multiply-add: SRCNN 9-5-5 (64, 32 channels) and VGG16 up to relu2_2,
    # each counted 3 times (forward, and backward: the model's two gradients, VGG16's to its input)
    srcnn = 2 * (9 * 9 * 3 * 64 + 5 * 5 * 64 * 32 + 5 * 5 * 32 * 3)
    vgg = 2 * (3 * 3 * 3 * 64 + 3 * 3 * 64 * 64 + (3 * 3 * 64 * 128 + 3 * 3 * 128 * 128) / 4)  # conv2_*: after a pool
    per_image = numbers["a_tflops"] * 1e12 / numbers["a_loop"]
    assert per_image == pytest.approx(3 * (srcnn + vgg) * numbers["hr_size"] ** 2, rel=2e-3)
    table = (tmp_path / "profile.txt").read_text()
    # the model, and the time the step spent getting batches: gathering them, or waiting for the thread
    # that does where a core is free for it
    assert "Self CPU" in table and "aten::convolution" in table
    assert "srlab::gather_batch" in table or "srlab::wait_for_batch" in table
