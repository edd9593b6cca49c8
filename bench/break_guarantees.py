"""Break each guarantee of the README on purpose and check that its test fails.

    python bench/break_guarantees.py [--only NAME ...]

For every entry below: copy the repository to a scratch folder, apply one edit that breaks the
guarantee (the kind of slip a refactor makes), run the tests that guard it there, and report
whether they failed, as they must. The working tree is never touched. A break whose tests still
pass (or were skipped) is a guarantee nobody is checking: the script exits 1 and names it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Break:
    name: str
    guarantee: str
    file: str
    old: str  # text the edit replaces; it must occur exactly once
    new: str
    tests: tuple[str, ...]


BREAKS = (
    Break(
        "atomic-writes",
        "checkpoints and outputs are written atomically; SIGKILL inside a save loses nothing",
        "src/srlab/fileio.py",
        "        yield tmp\n",
        "        yield path\n        return\n",
        (
            "tests/test_training.py::test_sigkill_mid_epoch_and_inside_every_kind_of_save_then_rerun_gives_the_same_weights",
        ),
    ),
    Break(
        "ctrl-c",
        "Ctrl-C: exit 130, one line, a resumable checkpoint",
        "src/srlab/entry.py",
        "    except KeyboardInterrupt:",
        "    except ZeroDivisionError:",
        ("tests/test_training.py::test_ctrl_c_on_a_training_stage_exits_130_in_one_line_and_the_rerun_resumes",),
    ),
    Break(
        "resume-other-data",
        "resume refuses a checkpoint made on other data",
        "src/srlab/training.py",
        '"data": store.digest(job.patches),',
        '"data": None,',
        ("tests/test_training.py::test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data",),
    ),
    Break(
        "resume-other-params",
        "resume refuses a checkpoint made with other params",
        "src/srlab/training.py",
        '        "params": params,\n',
        '        "params": None,\n',
        ("tests/test_training.py::test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data",),
    ),
    Break(
        "torchrun-whole-batch",
        "torchrun: each process trains its own share of every batch",
        "src/srlab/training.py",
        "    share = slice(ranks.rank, None, ranks.world)\n",
        "    share = slice(None)\n",
        ("tests/test_distributed.py::test_two_gloo_processes_match_one_process",),
    ),
    Break(
        "torchrun-every-rank-writes",
        "torchrun: rank 0 alone scores, logs and writes checkpoints",
        "src/srlab/training.py",
        "        if not ranks.main:\n            continue",
        "        if False:\n            continue",
        ("tests/test_distributed.py::test_two_gloo_processes_match_one_process",),
    ),
    Break(
        "srgan-discriminator-whole-batch",
        "SRGAN under torchrun: each discriminator sees its share, gradients averaged",
        "src/srlab/training.py",
        "    share = slice(ranks.rank, None, ranks.world)\n",
        "    share = slice(None)\n",
        ("tests/test_distributed.py::test_srgan_under_torchrun_keeps_one_discriminator_across_ranks",),
    ),
    Break(
        "no-horizontal-flip",
        "the 8 symmetries of a square are drawn",
        "src/srlab/data/augment.py",
        "    x = torch.where(flips[0, :, None, None, None], x.flip(-1), x)\n",
        "",
        ("tests/test_training.py::test_each_of_the_8_symmetries_is_drawn_and_turns_lr_and_hr_alike",),
    ),
    Break(
        "flips-hr-only",
        "the same flips for LR and HR",
        "src/srlab/data/augment.py",
        "    return [apply_flips(as_float(t), flips, layout) for t in (lr, hr)]",
        "    return [as_float(lr, layout), apply_flips(as_float(hr), flips, layout)]",
        ("tests/test_training.py::test_each_of_the_8_symmetries_is_drawn_and_turns_lr_and_hr_alike",),
    ),
    Break(
        "scores-without-border",
        "scores follow the published convention on the saved images",
        "src/srlab/evaluation.py",
        '"psnr": psnr_y(out, hr, scale)',
        '"psnr": psnr_y(out, hr, 0)',
        ("tests/test_pipeline.py::test_scores_and_provenance_are_what_the_saved_images_and_the_run_say",),
    ),
    Break(
        "provenance-wrong-count",
        "provenance says which data made the run",
        "src/srlab/provenance.py",
        '"train_photos": len(manifest["train"]),',
        '"train_photos": len(manifest["val"]),',
        ("tests/test_pipeline.py::test_scores_and_provenance_are_what_the_saved_images_and_the_run_say",),
    ),
    Break(
        "bomb-limit-doubled",
        "images over 100 megapixels are refused before decoding, and only those",
        "src/srlab/data/images.py",
        "            if im.width * im.height > max_pixels:",
        "            if im.width * im.height > 2 * max_pixels:",
        ("tests/test_images.py::test_the_default_bomb_limit_is_100_megapixels_checked_before_decoding",),
    ),
    Break(
        "exif-wrong-way",
        "EXIF orientation turns the photo the way it is displayed",
        "src/srlab/data/images.py",
        "                im = ImageOps.exif_transpose(im)",
        "                im = ImageOps.exif_transpose(im).transpose(Image.Transpose.ROTATE_180)",
        ("tests/test_images.py::test_exif_orientation_turns_the_photo_the_way_it_is_displayed",),
    ),
    Break(
        "zero-vgg-layers",
        "all-zero loss.vgg_layers is refused before any work",
        "src/srlab/params.py",
        'return None if self.nonzero() else "every layer weight is 0; at least one must be above 0"',
        "return None",
        ("tests/test_params.py::test_bad_parameters_name_the_key_the_value_and_what_is_allowed",),
    ),
    Break(
        "writes-before-params",
        "a bad parameter stops a stage before it writes anything",
        "src/srlab/entry.py",
        "    return parser.parse_args()\n",
        "    Path('reports').mkdir(exist_ok=True)\n    (Path('reports') / 'started').write_text('')\n"
        "    return parser.parse_args()\n",
        ("tests/test_params.py::test_a_typo_stops_every_stage_before_it_writes_anything",),
    ),
    Break(
        "figure-labels-cut",
        "every panel label of the input / output / ground-truth figures is inside the picture",
        "src/srlab/plotting.py",
        'fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)',
        'fig.savefig(tmp, format="png", dpi=100)',
        ("tests/test_plots.py",),
    ),
    Break(
        "gate-ignores-code",
        "CI fails when the committed metrics were not made by the committed code",
        "src/srlab/gate.py",
        'if d["path"].startswith(("src/", "stages/"))}',
        "if False}",
        ("tests/test_gate.py::test_check_lock_passes_other_outputs_and_fails_other_code_or_params",),
    ),
    Break(
        "gate-one-sided",
        "CI fails when a PSNR moves past the tolerance from the committed metrics",
        "src/srlab/gate.py",
        "            if abs(delta) > allowed:",
        "            if delta > allowed:",
        ("tests/test_gate.py",),
    ),
    Break(
        "gate-one-tolerance",
        "each method is gated at its own tolerance",
        "src/srlab/gate.py",
        'allowed = run["psnr"] - ref["psnr"], tolerance.get(method, tolerance["*"])',
        'allowed = run["psnr"] - ref["psnr"], tolerance["*"]',
        (
            "tests/test_gate.py::test_ci_gate_passes_the_committed_metrics_moved_as_far_as_measured_across_cpus_and_catches_regressions",
        ),
    ),
    Break(
        "gate-ignores-command",
        "CI fails when a stage's command differs from the committed dvc.lock's",
        "src/srlab/gate.py",
        '        for part in ("command", "params", "code"):',
        '        for part in ("params", "code"):',
        ("tests/test_gate.py::test_check_lock_passes_other_outputs_and_fails_other_code_or_params",),
    ),
    Break(
        "gaussian-mixes-channels",
        "the gaussian degradation blurs each colour channel on its own",
        "src/srlab/data/degrade.py",
        "sigma=(sigma, sigma, 0)",
        "sigma=(sigma, sigma, 1)",
        ("tests/test_patches.py::test_bilinear_and_gaussian_degradations_match_independent_references",),
    ),
    Break(
        "ema-wrong-way",
        "the weight average moves towards the new weights by 1 - decay",
        "src/srlab/ema.py",
        "            mine.lerp_(theirs, 1.0 - decay)",
        "            mine.lerp_(theirs, decay)",
        ("tests/test_training.py::test_the_weight_average_follows_the_ramped_formula_step_by_step",),
    ),
    Break(
        "lpips-wrong-range",
        "LPIPS gets its inputs in the range the lpips package expects",
        "src/srlab/lpips_score.py",
        ", normalize=True).mean())",
        ", normalize=False).mean())",
        ("tests/test_inference.py::test_lpips_equals_the_lpips_package_called_directly_on_inputs_in_minus_one_to_one",),
    ),
    Break(
        "export-unchecked",
        "an ONNX export that runs differently from PyTorch fails and writes nothing",
        "src/srlab/export.py",
        "        if difference is not None and difference > TOLERANCE:",
        "        if False:",
        (
            "tests/test_model_files.py::"
            "test_an_export_that_onnxruntime_runs_differently_fails_in_one_line_and_writes_nothing",
        ),
    ),
    Break(
        "ctrl-c-inside-a-lock",
        "Ctrl-C never leaves a training stage waiting for a lock for ever",
        "src/srlab/interrupts.py",
        "    signal.signal(signal.SIGINT, ask)\n",
        "",
        ("tests/test_training.py::test_ctrl_c_at_any_of_the_first_lock_releases_of_an_epoch_exits_130",),
    ),
    Break(
        "folder-by-name",
        "DVC sees a folder source by content",
        "dvc.yaml",
        "      - ${data.train_dir}",
        "      - src/srlab/errors.py",
        ("tests/test_pipeline.py::test_dvc_sees_a_folder_source_by_content",),
    ),
    Break(
        "imagenet-by-name",
        "ImageNet weights are used only when their hash is the published one",
        "src/srlab/backbones.py",
        "    if digest.startswith(spec.sha256_prefix):",
        "    if True:",
        (
            "tests/test_perceptual.py::test_imagenet_weights_are_used_only_with_the_published_hash_and_provenance_records_it",
        ),
    ),
    Break(
        "resume-other-weights",
        "resume refuses a checkpoint made with other perceptual weights under the same path",
        "src/srlab/training.py",
        '"backbones": [\n            describe(name',
        '"backbones": [] and [\n            describe(name',
        ("tests/test_training.py::test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data",),
    ),
    Break(
        "mirror-by-name",
        "DVC sees the data mirror (data.mirror) by content",
        "dvc.yaml",
        "      - ${data.mirror}",
        "      - src/srlab/errors.py",
        ("tests/test_pipeline.py::test_dvc_sees_a_folder_source_by_content",),
    ),
    Break(
        "weights-folder-not-a-dep",
        "every stage that reads loss.*_init depends on data/weights",
        "dvc.yaml",
        "      - data/patches\n      - models/mse.safetensors\n      - data/weights",
        "      - data/patches\n      - models/mse.safetensors",
        ("tests/test_params.py::test_every_stage_that_reads_a_weights_path_depends_on_data_weights",),
    ),
    Break(
        "env-mirror-first",
        "data.mirror is looked in before $SRLAB_DATA_MIRROR, which is named when used",
        "src/srlab/data/sources.py",
        "    return [m for m in (tracked, mirror_dir()) if m is not None]",
        "    return [m for m in (mirror_dir(), tracked) if m is not None]",
        ("tests/test_download.py::test_the_tracked_mirror_is_used_before_srlab_data_mirror_which_is_named_when_used",),
    ),
    Break(
        "histogram-truncates",
        "histogram matching matches each channel and rounds",
        "src/srlab/inference.py",
        "[match_histograms(sr[..., c], reference[..., c]) for c in range(sr.shape[-1])]",
        "[match_histograms(sr, reference, channel_axis=-1)[..., c] for c in range(sr.shape[-1])]",
        ("tests/test_inference.py::test_histogram_matching_matches_each_channel_on_its_own_and_rounds",),
    ),
    Break(
        "histogram-to-ground-truth",
        "histogram-matched scores match each output to its LR input, not the ground truth",
        "src/srlab/evaluation.py",
        "histogram_match(outputs[name], lr) for name in nets",
        "histogram_match(outputs[name], hr) for name in nets",
        (
            "tests/test_inference.py::test_histogram_matched_scores_match_each_output_to_its_lr_input_made_by_eval_degradation",
        ),
    ),
    Break(
        "eval-reads-data-degradation",
        "eval.degradation, not data.degradation, makes the test inputs",
        "src/srlab/evaluation.py",
        "lr = downscale(hr, scale, params.eval.degradation, params.data.blur_sigma)",
        "lr = downscale(hr, scale, params.data.degradation, params.data.blur_sigma)",
        (
            "tests/test_inference.py::test_histogram_matched_scores_match_each_output_to_its_lr_input_made_by_eval_degradation",
        ),
    ),
    Break(
        "cli-tile-ignored",
        "srlab super-resolve --tile takes effect",
        "src/srlab/cli.py",
        "            sr = run_model(model, lr, device, tile=args.tile, overlap=args.overlap)",
        "            sr = run_model(model, lr, device)",
        ("tests/test_inference.py::test_cli_tile_and_histogram_match_take_effect",),
    ),
    Break(
        "ema-best-holds-raw-weights",
        "EMA best checkpoints hold the averaged weights whose score they record",
        "src/srlab/training.py",
        '                        "model": run.evaluated.state_dict(),',
        '                        "model": run.model.state_dict(),',
        ("tests/test_training.py::test_ema_weights_are_validated_saved_and_resumed_exactly",),
    ),
    Break(
        "model-meta-default-params",
        "a model file's header holds the params it was trained with",
        "src/srlab/training.py",
        '        "params": p.to_dict(),',
        '        "params": type(p)().to_dict(),',
        ("tests/test_training.py::test_model_file_loads_weights_only_and_refuses_other_scales",),
    ),
    Break(
        "code-record-top-level-only",
        "the code a checkpoint records covers every module",
        "src/srlab/training.py",
        '        for path in sorted(package.rglob("*.py"))',
        '        for path in sorted(package.glob("*.py"))',
        ("tests/test_training.py::test_the_code_record_covers_every_python_file_of_the_package_by_content",),
    ),
    Break(
        "resume-under-new-code",
        "resume refuses a checkpoint made by other code unless --new-code, and records it",
        "src/srlab/training.py",
        "        if code and not self.job.new_code:",
        "        if code and not self.job.new_code and False:",
        (
            "tests/test_training.py::test_resume_after_a_code_change_names_the_modules_and_continues_only_when_asked",
            "tests/test_training.py::test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data",
        ),
    ),
    Break(
        "val-crop-off-centre",
        "data.val_crop validates on the centre crop of each val photo",
        "src/srlab/data/patches.py",
        "        ys, xs = np.array([(lr_h - lr_size) // 2]), np.array([(lr_w - lr_size) // 2])",
        "        ys, xs = np.array([0]), np.array([0])",
        (
            "tests/test_patches.py::test_val_crop_makes_the_val_split_one_centre_crop_per_photo_and_refuses_a_smaller_photo",
        ),
    ),
    Break(
        "resnet-blocks-skip-layer1",
        "the ResNet content loss takes the i-th residual block counted from layer1's first",
        "src/srlab/losses/content.py",
        "    blocks = [*net.layer1, *net.layer2, *net.layer3, *net.layer4]",
        "    blocks = [*net.layer2, *net.layer3, *net.layer4]",
        (
            "tests/test_notes.py::test_srgan_notes_resnet_content_losses_take_the_ith_residual_block_counted_from_the_first",
        ),
    ),
    Break(
        "bf16-without-amx-silent",
        "bf16 asked for on a CPU without AMX says what to expect, once",
        "src/srlab/device.py",
        '    if enabled and device.type == "cpu" and "amx_bf16" not in cpu_flags():',
        "    if False:",
        (
            "tests/test_inference.py::test_bf16_on_a_cpu_without_amx_says_what_to_expect_once_and_auto_stays_fp32_on_every_kind",
        ),
    ),
    Break(
        "auto-bf16-on-amx",
        "train.precision auto stays fp32 on every CPU kind, so CI's verdict does not depend on AMX",
        "src/srlab/device.py",
        '    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()',
        '    return precision == "auto" and ("amx_bf16" in cpu_flags() or torch.cuda.is_available())',
        (
            "tests/test_inference.py::test_bf16_on_a_cpu_without_amx_says_what_to_expect_once_and_auto_stays_fp32_on_every_kind",
        ),
    ),
    Break(
        "resume-beside-the-copy",
        "resuming a copied checkpoint writes into one run and leaves the original untouched",
        "src/srlab/cli.py",
        "    own = args.checkpoint.resolve().parent == job.checkpoint_dir.resolve()",
        "    own = True",
        ("tests/test_training.py::test_resuming_a_copied_checkpoint_writes_only_into_the_run_named_by_out",),
    ),
    Break(
        "resume-other-start-model",
        "resume refuses a checkpoint that started from another model file",
        "src/srlab/training.py",
        '        "init": file_md5(job.init_from) if job.init_from else None,',
        '        "init": None,',
        ("tests/test_training.py::test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data",),
    ),
    Break(
        "recipe-keeps-the-last-one",
        "a recipe applied after another leaves nothing of the other",
        "src/srlab/recipes.py",
        "        return _merge(Params().to_dict(), self.params)",
        "        return self.params",
        ("tests/test_recipes.py::test_a_recipe_applied_after_any_other_gives_its_own_params_and_nothing_of_the_other",),
    ),
    Break(
        "stage-reads-an-unlisted-param",
        "each stage's dvc.yaml params hold every param it reads",
        "dvc.yaml",
        "      - eval.lpips\n      - eval.rgb\n",
        "      - eval.lpips\n",
        ("tests/test_params.py::test_each_stage_reads_exactly_the_params_dvc_yaml_lists_for_it",),
    ),
    Break(
        "stage-lists-an-unread-param",
        "each stage's dvc.yaml params hold only params it reads",
        "dvc.yaml",
        "      - loss.vgg_init     # the perceptual curve",
        "      - plots.crop\n      - loss.vgg_init     # the perceptual curve",
        ("tests/test_params.py::test_each_stage_reads_exactly_the_params_dvc_yaml_lists_for_it",),
    ),
    Break(
        "store-pages-kept",
        "training's resident memory stays bounded however large the store",
        "src/srlab/data/loader.py",
        "            self.pairs.release()  # the folios those rows mapped",
        "            pass  # the folios those rows mapped",
        ("tests/test_training.py::test_training_over_a_512_mb_store_keeps_its_resident_memory_bounded",),
    ),
    Break(
        "torchrun-curves-summed",
        "torchrun's curves equal one process's",
        "src/srlab/distributed.py",
        "        return dict(zip(values, stacked / self.world))",
        "        return dict(zip(values, stacked))",
        ("tests/test_distributed.py::test_two_gloo_processes_match_one_process",),
    ),
)


def apply(root: Path, brk: Break) -> None:
    path = root / brk.file
    text = path.read_text()
    if text.count(brk.old) != 1:
        raise SystemExit(
            f"{brk.name}: the text to replace occurs {text.count(brk.old)} times in {brk.file}; update this script"
        )
    path.write_text(text.replace(brk.old, brk.new))


def scratch_copy() -> Path:
    root = Path(tempfile.mkdtemp(prefix="srlab-breaks-"))
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    )
    for name in listed.stdout.splitlines():
        source = REPO / name
        # what tests read: measured spreads, the default folder, the (empty) tracked mirror and weights
        kept = name.startswith(("docs/results/", "data/photos/", "data/mirror/", "data/weights/"))
        if source.is_file() and (kept or not name.startswith(("reports/", "docs/", "data/", "models/"))):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for name in ("reports", "dvc.lock"):  # the committed run, which some tests read
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name, dirs_exist_ok=True)
        elif (REPO / name).is_file():
            shutil.copy2(REPO / name, root / name)
    git = ["git", "-c", "user.name=breaks", "-c", "user.email=breaks@localhost"]
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-qm", "scratch"],
    ):  # the end-to-end tests list files with git
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True)
    return root


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[str, float]:
    """'failed' (as it must), 'PASSED' (the break went unnoticed) or 'SKIPPED' (nothing was checked)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    beside = REPO.parent / "shared" / "data"  # the scratch copy has no ../shared beside it
    if not env.get("SRLAB_DATA_MIRROR") and (beside / "Set5").is_dir():
        env["SRLAB_DATA_MIRROR"] = str(beside)
    imported = subprocess.run(
        [sys.executable, "-c", "import srlab; print(srlab.__file__)"], env=env, cwd=root, capture_output=True, text=True
    ).stdout.strip()
    if not imported.startswith(str(root)):  # an install that shadows PYTHONPATH would test the unbroken code
        raise SystemExit(f"break_guarantees: srlab imports from {imported}, not from the scratch copy {root}")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - start
    if done.returncode:
        return "failed", seconds
    return ("SKIPPED" if " skipped" in done.stdout.splitlines()[-1] else "PASSED"), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the breaks to try (default: all)")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the tests on an unbroken copy first")
    args = parser.parse_args()
    chosen = [b for b in BREAKS if not args.only or b.name in args.only]
    if not args.no_baseline:  # a test that fails without any break would "catch" every break
        tests = tuple(dict.fromkeys(t for b in chosen for t in b.tests))
        root = scratch_copy()
        try:
            outcome, seconds = run_tests(root, tests)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"{'(no break)':<34} {outcome:<8} {seconds:5.0f}s  the guarding tests on an unbroken copy", flush=True)
        if outcome != "PASSED":
            raise SystemExit(f"break_guarantees: the tests do not pass unbroken ({outcome.lower()}); fix that first")
    unguarded = []
    print(f"{'break':<34} {'tests':<8} {'time':>6}  guarantee")
    for brk in chosen:
        root = scratch_copy()
        try:
            apply(root, brk)
            outcome, seconds = run_tests(root, brk.tests)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"{brk.name:<34} {outcome:<8} {seconds:5.0f}s  {brk.guarantee}", flush=True)
        if outcome != "failed":
            unguarded.append(f"{brk.name} ({outcome.lower()})")
    if unguarded:
        raise SystemExit(f"break_guarantees: these breaks went unnoticed by their tests: {', '.join(unguarded)}")
    print(f"break_guarantees: each of the {len(chosen)} breaks made its tests fail")


if __name__ == "__main__":
    main()
