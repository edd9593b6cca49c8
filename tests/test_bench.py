"""`srlab bench` is checked for running and reporting, never for speed (speed is what it measures)."""

import json
import os
import subprocess
import sys

import yaml
from conftest import REPO

from srlab.cli import main
from srlab.params import load_params


def test_bench_smoke_runs_on_cpu_and_reports_every_number(tmp_path, capsys):
    main(["bench", "--smoke", "--workers", "2", "--set", "train.device=cpu", "--json", str(tmp_path / "bench.json")])
    printed = capsys.readouterr().out
    for label in ("(a) training loop", "(b) on-device ceiling", "(c) seeds-style PIL loader", "a/b =", "peak memory", "MP/s"):
        assert label in printed
    numbers = json.loads((tmp_path / "bench.json").read_text())
    for key in ("a_loop", "b_ceiling", "c_seeds_loader", "a_over_b", "a_over_c", "super_resolve_mpix_per_s", "peak_rss_gib"):
        assert numbers[key] > 0, key
    assert numbers["precision"] == "fp32" and numbers["device"].startswith("cpu")


def test_every_gpu_recipe_is_valid_params():
    recipes = sorted((REPO / "bench").glob("gpu_*.yaml"))
    assert len(recipes) >= 4
    for path in recipes:
        p = load_params(path)
        assert p.train.device == "cuda" and p.data.train_dir == ".device-data/SunHays80", path.name
        assert p.data.hr_size % p.data.scale == 0, path.name


def test_gpu_run_fits_epochs_to_the_budget_and_scores_the_model(tmp_path, mirror):
    """bench/gpu_run.py on CPU with tiny sizes: the same steps the GPU run takes, end to end."""
    recipe = yaml.safe_load((REPO / "bench" / "gpu_edsr_x2.yaml").read_text())
    recipe["data"].update(train_source="sample", train_dir="", hr_size=32, patches_per_image=4)
    recipe["model"]["name"] = "srcnn"  # EDSR on Set5 is minutes of CPU; the script does not care which model
    recipe["train"].update(device="cpu", batch_size=8, warmup_steps=2)
    recipe["eval"].update(sets=["Set5"], self_ensemble=False)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    subprocess.run([sys.executable, "bench/gpu_run.py", str(tmp_path / "recipe.yaml"), str(tmp_path / "out"),
                    "--minutes", "0.02", "--work", str(tmp_path / "work")], cwd=REPO, check=True,
                   env={**os.environ, "SRLAB_DATA_MIRROR": str(mirror)})
    used = yaml.safe_load((tmp_path / "out" / "params.yaml").read_text())
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert used["train"]["epochs"] >= 1 and metrics["run"]["epochs"] == used["train"]["epochs"]
    assert set(metrics["Set5"]) == {"bicubic", "srcnn_mse"} and metrics["run"]["device"].startswith("cpu")
