"""The DVC pipeline end to end, in a temporary copy of this repository, on tiny parameters."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import copy_project, mirror_or_skip, page_data
from conftest import run_ok as _run

from srlab import checkpoint

TINY = {
    "data": {"hr_size": 32, "patches_per_image": 8},
    "train": {"epochs": 2, "perceptual_epochs": 1, "batch_size": 8, "device": "cpu"},
    "eval": {"sets": ["Set5"]},
    "plots": {"crop": 64},
}


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


def _deep_update(tree: dict, changes: dict) -> dict:
    for key, value in changes.items():
        tree[key] = _deep_update(tree.get(key, {}), value) if isinstance(value, dict) else value
    return tree


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh git + DVC project holding this repo's code and tiny params (no outputs copied)."""
    repo, env = copy_project(tmp_path_factory.mktemp("project"), mirror_or_skip())
    params = _deep_update(yaml.safe_load((repo / "params.yaml").read_text()), TINY)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run("git add -A && git commit -qm tiny", repo, env)
    return repo, env


@pytest.mark.slow
def test_repro_then_vgg_weight_experiment_reruns_only_what_depends_on_it(project):
    repo, env = project
    first = _run("dvc repro", repo, env)
    assert _stages_run(first.stdout) == {"download", "prepare", "train_mse", "train_perceptual", "evaluate", "plots"}
    for out in (
        "reports/metrics.json",
        "reports/per_image.csv",
        "reports/curves_mse.png",
        "reports/curves_perceptual.png",
        "reports/figures/Set5/baby.png",
        "models/perceptual.safetensors",
    ):
        assert (repo / out).is_file(), out
    _run("git add -A && git commit -qm baseline", repo, env)

    again = _run("dvc repro", repo, env)
    assert _stages_run(again.stdout) == set()

    experiment = _run("dvc exp run -S loss.vgg_weight=0.3", repo, env)
    assert _stages_run(experiment.stdout) == {"train_perceptual", "evaluate", "plots"}

    diff = _run("dvc metrics diff --json", repo, env)
    assert "Set5.srcnn_perceptual.psnr" in diff.stdout
    assert "Set5.bicubic.psnr" not in diff.stdout  # the baseline did not move


def _y_psnr(sr, hr, border: int) -> float:
    """The published convention, written out independently of srlab.metrics: BT.601 Y of uint8
    RGB, `border` pixels shaved, float64."""
    import numpy as np

    def y(rgb):
        return 16.0 + rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0

    diff = (y(sr) - y(hr))[border:-border, border:-border]
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def _y_ssim(sr, hr, border: int) -> float:
    import numpy as np
    from skimage.metrics import structural_similarity

    def y(rgb):
        return (16.0 + rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0)[
            border:-border, border:-border
        ]

    return float(
        structural_similarity(
            y(sr), y(hr), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


@pytest.mark.slow
def test_scores_and_provenance_are_what_the_saved_images_and_the_run_say(project):
    """reports/metrics.json recomputed from the images evaluate saved in data/sr/ and the test
    sets' HR images; reports/provenance.json checked against what this run really had."""
    import numpy as np
    import torch

    from srlab.data.images import load_rgb

    repo, env = project
    _run("dvc repro", repo, env)  # nothing to do after the tests above; the whole tiny run when alone
    params = yaml.safe_load((repo / "params.yaml").read_text())
    scale, metrics = params["data"]["scale"], json.loads((repo / "reports/metrics.json").read_text())
    for set_name in params["eval"]["sets"]:
        for method, reported in metrics[set_name].items():
            scores = []
            for hr_path in sorted((repo / "data/raw/test" / set_name).iterdir()):
                hr = load_rgb(hr_path)[0]
                hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
                sr = load_rgb(repo / "data/sr" / set_name / method / f"{hr_path.stem}.png")[0]
                scores.append((_y_psnr(sr, hr, scale), _y_ssim(sr, hr, scale)))
            psnr, ssim = np.mean(scores, axis=0)
            assert reported["psnr"] == pytest.approx(psnr, abs=1e-6), (set_name, method)
            assert reported["ssim"] == pytest.approx(ssim, abs=1e-4), (set_name, method)

    provenance = json.loads((repo / "reports/provenance.json").read_text())
    data = provenance["data"]
    assert data["train_photos"] == len(list((repo / "data/raw/train").iterdir()))
    assert data["val_photos"] == len(list((repo / "data/raw/val").iterdir()))
    assert data["test_sets"] == {name: "SRLAB_DATA_MIRROR" for name in params["eval"]["sets"]}
    assert (data["scale"], data["hr_size"], data["train_source"]) == (scale, params["data"]["hr_size"], "sample")
    backbone = f"vgg16 random init (seed {params['seed']}), not ImageNet-trained"
    assert provenance["evaluation"]["perceptual_backbone"] == backbone
    assert provenance["evaluation"]["device"].startswith("cpu")
    model = params["model"]["name"]
    mse, perceptual = provenance["models"][f"{model}_mse"], provenance["models"][f"{model}_perceptual"]
    assert (mse["epochs"], perceptual["epochs"]) == (params["train"]["epochs"], params["train"]["perceptual_epochs"])
    assert mse["loss_weights"] == {"mse": 1.0}
    assert perceptual["loss_weights"]["perceptual"] == params["loss"]["vgg_weight"]
    assert mse["backbone"] == perceptual["backbone"] == backbone
    assert provenance["versions"]["torch"] == torch.__version__ and provenance["seed"] == params["seed"]


@pytest.mark.slow
def test_push_clone_pull_then_a_forced_rerun_gives_the_same_bytes(project, tmp_path):
    """A second machine: clone, `dvc pull` from a local-folder remote, nothing to re-run."""
    repo, env = project
    _run("dvc repro && git add -A && git commit -qm results --allow-empty", repo, env)
    _run(f"dvc remote add -d shelf {tmp_path / 'remote'} && git add .dvc/config && git commit -qm remote", repo, env)
    _run("dvc push", repo, env)

    clone = tmp_path / "clone"
    _run(f"git clone -q {repo} {clone}", tmp_path, env)
    _run("dvc pull", clone, env)
    assert json.loads(_run("dvc status --json", clone, env).stdout) == {}
    assert _stages_run(_run("dvc repro", clone, env).stdout) == set()
    for out in (
        "reports/metrics.json",
        "models/mse.safetensors",
        "data/patches/train_hr.npy",
        "reports/figures/Set5/baby.png",
    ):
        assert (clone / out).read_bytes() == (repo / out).read_bytes(), out

    # train and score again from scratch on this "machine": the same seed gives the same bytes (that
    # prepare does is tests/test_patches.py's; that another seed gives other weights, test_training's)
    forced = _run("dvc repro -f -s train_mse && dvc repro -f -s evaluate", clone, env)
    assert _stages_run(forced.stdout) == {"train_mse", "evaluate"}
    assert (clone / "reports/metrics.json").read_bytes() == (repo / "reports/metrics.json").read_bytes()
    # the weights, not the file: its header records every param, and the earlier experiment moved
    # loss.vgg_weight, which train_mse does not read
    weights, again = (checkpoint.load(root / "models/mse.safetensors")["model"] for root in (repo, clone))
    assert all(torch.equal(again[k], v) for k, v in weights.items())


@pytest.mark.slow
def test_queued_sweep_compared_then_pushed_and_pulled_into_a_second_clone_that_pages_both_machines(project, tmp_path):
    """README's sweep: queue a grid, run the queue, compare the experiments, diff their plots. Then
    docs/experiments.md's two machines: A pushes the sweep (Git refs and DVC outputs), B clones,
    pulls it, sees the same `dvc exp show`, runs an experiment of its own and builds one results
    page of both machines' experiments."""
    repo, env = project
    storage = tmp_path / "dvc-storage"
    _run(f"dvc remote add -f -d storage {storage}", repo, env)
    _run("dvc repro && git add -A && git commit -qm sweep-base --allow-empty", repo, env)
    runs = _run_queue(repo, env, "-S 'loss.vgg_weight=0,1'", count=2)
    names = [run["name"] for run in runs]
    assert len(names) >= 2
    compared = _run("srlab compare --out reports/compare", repo, env)
    table = (repo / "reports/compare/experiments.md").read_text()
    assert "| vgg_weight" not in table and "loss.vgg_weight" in table  # the varied param is a column
    rows = [line for line in table.splitlines() if line.startswith("| ") and "experiment" not in line]
    assert {row.split(" | ")[1] for row in rows} >= {"0.0", "1.0"} or {row.split(" | ")[1] for row in rows} >= {
        "0",
        "1",
    }
    assert (repo / "reports/compare/perception_distortion.png").stat().st_size > 10_000
    assert "experiments ->" in compared.stdout

    html_dir = tmp_path / "plots"
    _run(f"dvc plots diff {names[0]} {names[1]} -o {html_dir}", repo, env)
    html = (html_dir / "index.html").read_text()
    for shown_plot in (
        "MSE loss",
        "Perceptual loss",
        "curves_mse.png",
        "curves_perceptual.png",
        "figures/Set5/baby.png",
    ):
        assert shown_plot in html, shown_plot
    assert names[0] in html and names[1] in html

    origin, clone = tmp_path / "origin.git", tmp_path / "machine-b"
    _run(f"git init -q --bare -b main {origin}", tmp_path, env)
    _run(f"git remote add origin {origin} && git push -q origin HEAD:main && dvc push -q", repo, env)
    _run(f"dvc exp push origin {' '.join(names)}", repo, env)
    _run(f"git clone -q {origin} {clone}", tmp_path, env)
    _run(f"dvc exp pull origin {' '.join(names)} && dvc pull -q", clone, env)
    assert _experiments(clone, env) == _experiments(repo, env)

    _run("dvc exp run -n from-b -S loss.vgg_weight=0.5", clone, env)
    _run(f"srlab page {names[0]} from-b --out page", clone, env)
    _check_page(clone / "page", {**_experiments(repo, env), **_experiments(clone, env)}, [names[0], "from-b"])


def _experiments(repo: Path, env: dict) -> dict[str, dict]:
    """{name: metrics} of the experiments `dvc exp show` lists."""
    shown = json.loads(_run("dvc exp show --json", repo, env).stdout)
    return {
        run["name"]: run["data"]["metrics"]["reports/metrics.json"]["data"]
        for commit in shown
        for group in commit.get("experiments") or []
        for run in group["revs"]
    }


def _check_page(folder: Path, metrics: dict[str, dict], names: list[str]) -> None:
    """The page's tables hold each experiment's metrics, and each model panel is that experiment's
    own output: its Y-PSNR against the ground truth panel is the one the experiment scored."""
    import numpy as np
    from PIL import Image

    from srlab.metrics import psnr_y

    page = page_data(folder / "index.html")
    summary = page["sets"]["Set5"]["summary"]
    for name in names:
        for method, scores in metrics[name]["Set5"].items():
            assert summary[f"{name}: {method}"] == scores
    scale = metrics[names[0]]["provenance"]["scale"]
    for image in page["sets"]["Set5"]["images"]:
        truth = np.asarray(Image.open(folder / image["panels"]["ground truth"]))
        for name in names:
            label = f"{name}: srcnn_perceptual"
            shown = np.asarray(Image.open(folder / image["panels"][label]))
            assert psnr_y(shown, truth, scale) == pytest.approx(image["scores"][label]["psnr"], abs=1e-5)
    first = page["sets"]["Set5"]["images"][0]["panels"]
    assert first[f"{names[0]}: srcnn_perceptual"] != first[f"{names[1]}: srcnn_perceptual"]  # two models, two images


def _run_queue(repo: Path, env: dict, sets: str, count: int) -> list[dict]:
    """Queue `dvc exp run --queue SETS` (`count` experiments), run the queue with two workers until
    every one succeeded, and return the experiments `dvc exp show --json` lists."""
    queued = _run(f"dvc exp run --queue {sets}", repo, env)
    assert queued.stdout.count("Queued experiment") == count, queued.stdout
    _run("dvc queue start -j 2", repo, env)
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", status := _run("dvc queue status", repo, env).stdout):
        assert time.monotonic() < deadline, status
        time.sleep(3)
    failed = re.findall(r"^(\w+)\s.*\bFailed\b", status, re.M)
    assert not failed, status + "".join(_run(f"dvc queue logs {task}", repo, env, ok=False).stdout for task in failed)
    shown = json.loads(_run("dvc exp show --json", repo, env).stdout)
    return [run for commit in shown for group in commit.get("experiments") or [] for run in group["revs"]]


def _stage(repo: Path, env: dict, script: str, args: str, params: dict) -> subprocess.CompletedProcess:
    (repo / "case.yaml").write_text(yaml.safe_dump(params))
    return _run(f"python stages/{script}.py --params case.yaml {args}", repo, env, ok=False)


def _one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.slow
def test_missing_mirror_offline_stops_with_one_line(project, tmp_path):
    repo, env = project
    offline = dict(env, SRLAB_DATA_MIRROR=str(tmp_path / "no-such-mirror"))
    done = _stage(repo, offline, "download", f"--out {tmp_path}/raw --downloads {tmp_path}/dl", {})
    _one_line_error(done, "SRLAB_DATA_MIRROR=", "is not a folder")
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_empty_training_folder_stops_with_one_line(project, tmp_path):
    repo, env = project
    (tmp_path / "empty").mkdir()
    params = {"data": {"train_source": "folder", "train_dir": str(tmp_path / "empty")}}
    done = _stage(repo, env, "download", f"--out {tmp_path}/raw --downloads {tmp_path}/dl", params)
    _one_line_error(done, "data.train_dir=", "no image files found")


@pytest.mark.slow
def test_dvc_sees_a_folder_source_by_content(tmp_path, photo):
    """Adding, changing or removing a photo of `data.train_dir`, or an image of a test set in the
    data mirror `data.mirror`, makes `dvc status` name the download stage, and `dvc repro` re-run
    it: the folders are dependencies, not just param values."""
    from PIL import Image

    repo, env = copy_project(tmp_path / "project", mirror_or_skip())
    set5 = repo / "data" / "mirror" / "Set5"
    shutil.copytree(mirror_or_skip() / "Set5", set5)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(photo[:, i * 4 :] if i % 2 else photo[i * 4 :]).save(photos / f"{i}.png")
    params = _deep_update(
        yaml.safe_load((repo / "params.yaml").read_text()),
        {**TINY, "data": {**TINY["data"], "train_source": "folder", "train_dir": str(photos)}},
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _stages_run(_run("dvc repro prepare", repo, env).stdout) == {"download", "prepare"}
    assert "up to date" in _run("dvc status --with-deps prepare", repo, env).stdout

    def status_names_download_alone(change, folder=photos) -> None:
        change()
        status = _run("dvc status --with-deps prepare", repo, env).stdout
        assert re.findall(r"^(\w+):", status, re.M) == ["download"] and str(folder) in status, status
        assert _stages_run(_run("dvc repro prepare", repo, env).stdout) == {"download", "prepare"}
        assert "up to date" in _run("dvc status --with-deps prepare", repo, env).stdout

    status_names_download_alone(lambda: Image.fromarray(photo[::-1]).save(photos / "added.png"))
    status_names_download_alone(lambda: Image.fromarray(photo[:, ::-1]).save(photos / "added.png"))
    status_names_download_alone(lambda: (photos / "0.png").unlink())
    status_names_download_alone(lambda: shutil.copyfile(set5 / "baby.png", set5 / "baby2.png"), "data/mirror")
    status_names_download_alone(lambda: Image.fromarray(photo).save(set5 / "baby2.png"), "data/mirror")
    manifest = json.loads((repo / "data" / "raw" / "manifest.json").read_text())
    assert sorted(n.split("_", 1)[1] for n in manifest["train"] + manifest["val"]) == [
        "1.png",
        "2.png",
        "3.png",
        "added.png",
    ]
    assert manifest["test"]["Set5"]["from"] == "data.mirror" and "baby2.png" in manifest["test"]["Set5"]["md5"]
