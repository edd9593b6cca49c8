"""Recipes: each design note one command away. The files are checked against what each note says;
`srlab recipe NAME` writes them into params.yaml; and (marked `recipes`, which CI runs after the
README's test command) each runs end to end through `dvc exp run`, on tiny data in the notes'
own source layouts, with `-S` overrides that only shrink sizes and epochs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, copy_project, mirror_or_skip, run_ok
from PIL import Image

from srlab.cli import main
from srlab.params import Params, parse_params
from srlab.recipes import load_recipe, names

NOTES = ["assignment", "johnson", "rescnn", "srcnn-cli", "srgan"]


def _recipe_params(name: str, run: str | None = None) -> Params:
    from srlab.params import apply_overrides

    recipe = load_recipe(name, REPO / "recipes")
    return parse_params(apply_overrides(recipe.values(), recipe.runs[run] if run else []))


def test_there_is_one_valid_recipe_per_note():
    assert names(REPO / "recipes") == NOTES
    for name in NOTES:
        assert load_recipe(name, REPO / "recipes").note  # loading checks its params and every run's


def test_assignment_recipe_is_the_voc2011_note():
    p = _recipe_params("assignment")
    assert (p.data.train_source, p.data.train_images, p.data.val_images) == ("voc2011", 1000, 200)
    assert (p.data.scale, p.data.hr_size, p.data.hr_size // p.data.scale) == (2, 240, 120)  # LR 120 -> HR 240
    assert (p.model.name, p.model.residual) == ("srcnn", False)  # 9-5-5 as the note draws it
    assert p.train.perceptual_init == "mse" and p.loss.vgg_weight > 0
    assert all(w > 0 for w in p.loss.vgg_layers.nonzero().values()) and len(p.loss.vgg_layers.nonzero()) == 4
    assert p.loss.vgg_init == "imagenet"  # the note's VGG16
    assert _recipe_params("assignment", "control").loss.vgg_weight == 0  # the same epochs without the VGG term
    assert _recipe_params("assignment", "scratch").train.perceptual_init == "scratch"


def test_srcnn_cli_recipe_is_the_9_1_5_note():
    p = _recipe_params("srcnn-cli")
    assert (p.model.name, p.model.upsample, p.model.residual, p.data.scale) == ("srcnn915", "bicubic", False, 3)
    assert (p.train.lr, p.train.batch_size, p.train.epochs, p.train.save_every) == (1e-4, 128, 100, 10)
    assert p.loss.pixel_weights() == {"mse": 1.0, "l1": 0.0, "ssim": 0.0}
    assert p.data.train_source == "folder"  # the 91 images have no checksummed archive
    assert (p.data.train_dir, p.data.hr_size, p.data.hr_size // p.data.scale) == ("data/T91", 33, 11)
    # the paper's sub-images: a grid of 33 px tiles, its stride 14 moved onto the x3 LR grid (12), and
    # its epoch of about 24,800 of them
    assert (p.data.layout, p.data.step(), p.data.step() % p.data.scale, p.train.epoch_samples) == (
        "tiles",
        12,
        0,
        24800,
    )


def test_rescnn_recipe_is_the_four_term_note():
    p = _recipe_params("rescnn")
    assert (p.model.name, p.data.scale, p.train.batch_size, p.train.perceptual_init) == ("rescnn", 4, 16, "scratch")
    assert (p.data.hr_size, p.data.hr_size // p.data.scale) == (256, 64)  # the note's 64 -> 256
    weights = {k: w for k, w in p.loss.second_stage_weights().items() if w > 0}
    assert weights == {"mse": 1.0, "l1": 1.0, "ssim": 1.0, "perceptual": 1.0}
    assert p.loss.vgg_init == "imagenet" and p.loss.pixel_weights() == {"mse": 1.0, "l1": 1.0, "ssim": 1.0}
    nearest = _recipe_params("rescnn", "nearest")
    assert (nearest.data.degradation, nearest.eval.degradation) == ("nearest", "nearest")


def test_srgan_recipe_is_the_srresnet_srgan_note():
    p = _recipe_params("srgan")
    assert (p.data.train_source, p.data.train_images, p.data.val_images, p.data.scale) == ("div2k", 800, 100, 4)
    assert (p.trained_size(), p.train.rotate_degrees, p.train.lr, p.train.flips) == (128, 10.0, 1e-4, "horizontal")
    assert (p.model.name, p.model.discriminator, p.train.perceptual_init) == ("srresnet", "note", "mse")
    assert p.loss.pixel_weights()["mse"] == 1.0  # SRResNet pre-trained with MSE
    assert {k: w for k, w in p.loss.second_stage_weights().items() if w > 0} == {"vgg19": 1.0, "adversarial": 1e-3}
    assert p.eval.rgb  # the note's RGB scores beside the published Y ones
    assert (p.data.hr_size, p.train.batch_size, p.loss.vgg19_init, p.loss.pixel_in_perceptual) == (
        192,  # stored patches the 128 px crops are drawn from
        16,
        "imagenet",
        False,
    )
    # the note's budget in its units: 250 SRResNet epochs, then 100 (or 200) SRGAN epochs of 800 crops
    assert (p.train.epochs, p.train.perceptual_epochs, p.train.epoch_samples) == (250, 100, 800)
    assert _recipe_params("srgan", "longer").train.perceptual_epochs == 200
    assert p.data.val_crop == 256  # validation and the best checkpoints on 256 px centre crops
    for run, (model, block) in {
        "res18_4": ("resnet18", 4),
        "res34_3": ("resnet34", 3),
        "res34_5": ("resnet34", 5),
    }.items():
        r = _recipe_params("srgan", run)
        assert (r.loss.resnet_model, r.loss.resnet_block, r.loss.resnet_init) == (model, block, "imagenet"), run
        assert {k: w for k, w in r.loss.second_stage_weights().items() if w > 0} == {"resnet": 1.0, "adversarial": 1e-3}


def test_johnson_recipe_is_the_perceptual_losses_note():
    p = _recipe_params("johnson")
    assert (p.data.train_source, p.data.hr_size, p.data.degradation, p.data.blur_sigma) == (
        "div2k",
        288,
        "gaussian",
        1.0,
    )
    assert (p.model.name, p.data.scale, p.train.lr, p.train.batch_size) == ("johnson", 4, 1e-3, 4)
    assert {k: w for k, w in p.loss.second_stage_weights().items() if w > 0} == {"perceptual": 1.0}
    assert p.loss.vgg_layers.nonzero() == {"relu2_2": 1.0} and p.train.perceptual_init == "scratch"
    assert (p.data.train_images, p.data.val_images, p.loss.vgg_init) == (800, 100, "imagenet")
    assert (p.eval.degradation, p.loss.pixel_in_perceptual) == ("gaussian", False)  # test inputs blurred alike
    assert (p.train.epochs, p.train.perceptual_epochs, p.train.epoch_samples) == (5, 5, 800)  # 5 epochs of 800
    assert _recipe_params("johnson", "x8").data.scale == 8
    assert _recipe_params("johnson", "pixel").loss.second_stage_weights()["mse"] == 1.0


def test_srlab_recipe_writes_params_yaml_keeps_its_comments_and_default_restores_it(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    main(["recipe", "srgan", "--params", str(params), "--recipes", str(REPO / "recipes")])
    out = capsys.readouterr().out
    assert "model.name: 'srcnn' -> 'srresnet'" in out and "dvc exp run -n srgan" in out
    text = params.read_text()
    assert "# SRGAN's: pooled (paper's convs, any size)" in text  # the comments stay
    assert parse_params(yaml.safe_load(text)) == _recipe_params("srgan")
    main(["recipe", "default", "--params", str(params), "--recipes", str(REPO / "recipes")])
    assert yaml.safe_load(params.read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())


def test_a_recipe_applied_after_any_other_gives_its_own_params_and_nothing_of_the_other(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    for first in NOTES:
        for second in NOTES:
            params.write_text((REPO / "params.yaml").read_text())
            for name in (first, second):
                main(["recipe", name, "--params", str(params), "--recipes", str(REPO / "recipes")])
            assert parse_params(yaml.safe_load(params.read_text())) == _recipe_params(second), (first, second)
    capsys.readouterr()


def test_a_bad_recipe_is_one_line_and_params_yaml_is_untouched(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    (tmp_path / "typo.yaml").write_text("note: x\nreproduces: y\nparams:\n  model: {nmae: srcnn}\n")
    for name in ("typo", "nosuch"):
        with pytest.raises(SystemExit):
            main(["recipe", name, "--params", str(params), "--recipes", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0], err
    assert params.read_text() == (REPO / "params.yaml").read_text()
    with pytest.raises(SystemExit):
        main(["recipe", "typo", "--params", str(params), "--recipes", str(tmp_path)])
    assert "model.nmae: unknown parameter; did you mean model.name?" in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------------

# only sizes, epochs, the device and the offline backbones change; each recipe's data source stays
SHRINK = [
    "train.epochs=1",
    "train.perceptual_epochs=1",
    "train.device=cpu",
    "data.train_images=4",
    "data.val_images=2",
    "data.patches_per_image=4",
    "eval.sets=[Set5]",
    "eval.lpips=off",
    "plots.crop=64",
    "loss.vgg_init=random",
    "loss.vgg19_init=random",
    "loss.resnet_init=random",
]
TINY = {
    "assignment": ["data.hr_size=32", "train.batch_size=8"],
    "srcnn-cli": ["train.batch_size=8", "train.epochs=2", "train.save_every=1"],  # data.train_dir: below
    "rescnn": ["data.hr_size=32", "train.batch_size=8"],
    "srgan": ["data.hr_size=48", "data.val_crop=64", "train.crop_size=32", "train.batch_size=8"],
    "johnson": ["data.hr_size=32"],
}


def _photos(mirror: Path, count: int, size: tuple[int, int]) -> list[Image.Image]:
    """Real photos (the mirror's SunHays80, or Set14 in a mirror of the test sets alone), resized to `size`."""
    from srlab.data.images import is_image_file

    folder = mirror / "SunHays80" if (mirror / "SunHays80").is_dir() else mirror / "Set14"
    photos = sorted(p for p in folder.iterdir() if is_image_file(p))[:count]
    return [Image.open(p).convert("RGB").resize(size, Image.Resampling.BICUBIC) for p in photos]


@pytest.fixture(scope="module")
def note_mirror(tmp_path_factory):
    """A data mirror with the test sets and, in their official folder names, a few VOC2011-sized
    JPEGs, DIV2K-like PNGs (smaller than 2K) and a stand-in for the SRCNN note's 91-image folder."""
    real = mirror_or_skip()
    mirror = tmp_path_factory.mktemp("mirror")
    for name in ("Set5", "Set14"):
        (mirror / name).symlink_to(real / name)
    layouts = {
        "VOC2011": (".jpg", (500, 375), 8),
        "DIV2K_train_HR": (".png", (408, 272), 6),
        "DIV2K_valid_HR": (".png", (408, 272), 3),
        "T91": (".png", (120, 90), 6),
    }
    for folder, (suffix, size, count) in layouts.items():
        (mirror / folder).mkdir()
        for i, photo in enumerate(_photos(real, count, size)):
            photo.save(mirror / folder / f"{i:04d}{suffix}")
    return mirror


def _metrics(repo: Path) -> dict:
    return json.loads((repo / "reports" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.recipes
@pytest.mark.parametrize("name", NOTES)
def test_each_recipe_runs_end_to_end_with_its_one_command(name, note_mirror, tmp_path):
    repo, env = copy_project(tmp_path / "project", note_mirror)
    run_ok(f"srlab recipe {name}", repo, env)
    recipe = load_recipe(name, repo / "recipes")
    tiny = SHRINK + TINY[name] + ([f"data.train_dir={note_mirror / 'T91'}"] if name == "srcnn-cli" else [])
    overrides = " ".join(f"-S '{o}'" for o in tiny)
    run_ok(f"dvc exp run -n {name} {overrides}", repo, env)
    p = parse_params(yaml.safe_load((repo / "params.yaml").read_text()))
    metrics, model = _metrics(repo), p.model.name
    assert metrics["provenance"]["model"] == model and metrics["provenance"]["scale"] == p.data.scale
    for method in ("bicubic", f"{model}_mse", f"{model}_perceptual"):
        assert np.isfinite(metrics["Set5"][method]["psnr"]), method
    for out in ("reports/curves_mse.png", "reports/curves_perceptual.png", "reports/figures/Set5/baby.png"):
        assert (repo / out).is_file(), out
    if name == "srgan":  # the note's scores, both models' best and last checkpoints, the discriminator's loss
        assert "rgb_psnr" in metrics["Set5"][f"{model}_perceptual"]
        for stage in ("mse", "perceptual"):
            assert {"best_psnr.pt", "best_ssim.pt", "last.pt"} <= {
                f.name for f in (repo / "checkpoints" / stage).iterdir()
            }
        assert (repo / "reports/train/perceptual/plots/metrics/train/discriminator.tsv").is_file()
    if name == "srcnn-cli":
        assert (repo / "checkpoints/mse/epoch_0001.pt").is_file() and (repo / "checkpoints/mse/epoch_0002.pt").is_file()
    for run, extra in recipe.runs.items():  # the note's other runs, shrunk the same (the shrink wins: srgan-longer)
        more = " ".join(f"-S '{o}'" for o in extra)
        run_ok(f"dvc exp run -n {name}-{run} {more} {overrides}", repo, env)
        again = _metrics(repo)
        assert np.isfinite(again["Set5"][f"{model}_perceptual"]["psnr"]), run
        if run == "x8":
            assert again["provenance"]["scale"] == 8


def _recipes_table():
    """bench/recipes_table.py, which prints docs/RESULTS.md's tables of the notes at a CPU budget."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recipes_table", REPO / "bench" / "recipes_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The CPU runs kept in docs/results/: at a CPU budget (every note's), and at a note's full budget
KEPT = {"recipes": {"assignment", "srcnn", "rescnn", "srgan", "johnson"}, "full": {"srcnn"}}


@pytest.mark.parametrize("folder", KEPT)
def test_results_md_shows_the_kept_cpu_runs_as_their_files_give_them(folder):
    """The tables of docs/RESULTS.md's notes on a CPU are what bench/recipes_table.py makes of the
    runs kept in docs/results/<folder>/: a number edited by hand, or a run redone without its
    tables, fails here."""
    table = _recipes_table()
    runs = table.kept_runs(REPO / "docs" / "results" / folder)
    assert {run.name.split("-")[0] for run in runs} >= KEPT[folder]
    results = (REPO / "docs" / "RESULTS.md").read_text()
    assert table.runs_table(runs) in results
    assert table.scores_table(runs) in results


def test_every_score_in_the_readme_recipe_table_is_a_kept_run_or_a_paper_number():
    """The README's table of the notes at a CPU budget holds numbers from the kept runs (Set5 Y-PSNR,
    two decimals) and the papers' numbers; any other number in it was typed, not measured."""
    import re

    table = _recipes_table()
    measured = set()
    for run in table.kept_runs(REPO / "docs" / "results" / "recipes"):
        metrics = json.loads((run / "metrics.json").read_text())
        measured |= {f"{scores['psnr']:.2f}" for scores in metrics["Set5"].values()}
    published = {n for text in table.PUBLISHED.values() for n in re.findall(r"\d+\.\d\d\b", text)}
    readme = (REPO / "README.md").read_text()
    rows = readme.split("<!-- recipes at a CPU budget -->")[1].strip().split("\n\n")[0].splitlines()[2:]
    assert len(rows) >= 5
    for row in rows:
        for number in re.findall(r"\b\d\d\.\d\d\b", row):
            assert number in measured | published, f"{number} in the README's row: {row}"
