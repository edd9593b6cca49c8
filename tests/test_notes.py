"""The five design notes, read from the note's side: each note's command or network table, and
what it must produce. (Their recipes, end to end through DVC, are in tests/test_recipes.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import cli, train_params_file
from PIL import Image
from torch import nn

from srlab import checkpoint
from srlab.data.patches import Degradation, crop_pairs
from srlab.errors import SrlabError
from srlab.models import build_discriminator, build_model
from srlab.params import ModelParams, parse_params
from srlab.training import TrainJob, train

# -- the SRCNN note: its command-line tool ---------------------------------------------------------


def test_srcnn_note_flags_save_every_n_epochs_and_resume_from_any_checkpoint_name(tmp_path, patches, capsys):
    """`train --batch-size 8 --lr 1e-3 --num-epoch 2 --save-freq 1`, then `resume checkpoint.1`:
    with only the epoch count, bit for bit the uninterrupted run; with `--batch-size=4
    --num-epoch=3`, a continued run that says it differs and records why."""
    run = tmp_path / "run"
    cli(
        "train",
        "--params",
        train_params_file(tmp_path),
        "--patches",
        patches,
        "--out",
        run,
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--num-epoch",
        "2",
        "--save-freq",
        "1",
    )
    ckpt = run / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("epoch_*.pt")) == ["epoch_0001.pt", "epoch_0002.pt"]
    saved = checkpoint.load(ckpt / "epoch_0001.pt")["meta"]["params"]["train"]
    assert (saved["batch_size"], saved["lr"], saved["epochs"], saved["save_every"]) == (8, 1e-3, 2, 1)
    uninterrupted = checkpoint.load(run / "model.safetensors")["model"]

    (ckpt / "epoch_0001.pt").rename(ckpt / "checkpoint.1")  # the note's names work as well as srlab's
    capsys.readouterr()
    cli("resume", ckpt / "checkpoint.1", "--num-epoch", "2")
    out = capsys.readouterr().out
    assert "resuming from" in out and "differs" not in out
    for key, value in checkpoint.load(run / "model.safetensors")["model"].items():
        assert torch.equal(value, uninterrupted[key]), key

    cli("resume", ckpt / "last.pt", "--batch-size=4", "--num-epoch=3")
    out = capsys.readouterr().out
    assert "train.epochs 2 -> 3, train.batch_size 8 -> 4: from here this run differs from an uninterrupted one" in out
    last = checkpoint.load(ckpt / "last.pt")["meta"]
    assert last["epoch"] == 3 and [row["epoch"] for row in last["history"]] == [1, 2, 3]
    assert last["overrides"] == [{"epoch": 2, "train": {"epochs": [2, 3], "batch_size": [8, 4]}}]
    assert checkpoint.load(run / "model.safetensors")["meta"]["overrides"] == last["overrides"]


def test_srcnn_note_scores_a_model_trained_with_srlab_train_on_set5(tmp_path, patches, photo, capsys, monkeypatch):
    """ "The testing result of your well-trained model": `srlab evaluate RUN` prints the scores the
    evaluate stage would write, bicubic beside, from the data mirror; bad input is one line."""
    from srlab.data.degrade import downscale, interpolate, mod_crop
    from srlab.inference import super_resolve
    from srlab.metrics import psnr_y, ssim_y

    monkeypatch.chdir(tmp_path)  # no data/mirror here: the test sets come from $SRLAB_DATA_MIRROR
    (tmp_path / "mirror" / "Set5").mkdir(parents=True)
    Image.fromarray(photo[:50, :63]).save(tmp_path / "mirror" / "Set5" / "baby.png")
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path / "mirror"))
    cli("train", "--params", train_params_file(tmp_path, epochs=1), "--patches", patches, "--out", tmp_path / "run")
    capsys.readouterr()
    cli("evaluate", tmp_path / "run", "--sets", "Set5")
    rows = {
        line.split()[1]: line.split()[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("Set5")
    }
    hr = mod_crop(photo[:50, :63], 2)
    lr = downscale(hr, 2, "bicubic", 1.0)
    model, _ = checkpoint.load_model(tmp_path / "run" / "model.safetensors")
    for method, out in (("bicubic", interpolate(lr, 2, "bicubic")), ("model", super_resolve(model, lr, "cpu"))):
        assert rows[method][:2] == [f"{psnr_y(out, hr, 2):.2f}", f"{ssim_y(out, hr, 2):.4f}"], method

    (tmp_path / "notes.txt").write_text("not a model")
    for args, message in (
        ([tmp_path / "notes.txt"], "not a loadable srlab checkpoint"),
        ([tmp_path / "run", "--scale", "3"], "trained for x2, not x3 (--scale)"),
        ([tmp_path / "nothing"], "no such file"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli("evaluate", *args)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 1 and len(err) == 1 and message in err[0], err


def test_srcnn_note_super_resolves_and_inspects_a_training_checkpoint(tmp_path, patches, photo, capsys):
    run = tmp_path / "run"
    cli("train", "--params", train_params_file(tmp_path), "--patches", patches, "--out", run, "--num-epoch", "1")
    Image.fromarray(photo).save(tmp_path / "photo.png")
    capsys.readouterr()
    for name in ("last.pt", "best_psnr.pt"):
        cli("super-resolve", "--checkpoint", run / "checkpoints" / name, tmp_path / "photo.png")  # no --out
        out = Image.open(tmp_path / "photo_x2.png")
        assert out.size == (2 * photo.shape[1], 2 * photo.shape[0])
        (tmp_path / "photo_x2.png").unlink()
    capsys.readouterr()
    cli("inspect", run / "checkpoints" / "last.pt")
    shown = capsys.readouterr().out
    assert "arch: srcnn" in shown and "batch_size=8" in shown and "lr=0.0003" in shown
    assert "Conv2d(3, 64, kernel_size=(9, 9)" in shown  # the architecture, layer by layer


# -- the residual-CNN note -------------------------------------------------------------------------


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_rescnn_follows_the_notes_layer_table():
    model = build_model(ModelParams(name="rescnn"), 4)
    convs = _convs(model)
    assert len(convs) == 10 and all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [128, 128, 128, 64, 64, 64, 64, 64, 64, 3]
    # batch norm right after conv_2, 3, 5, 6, 8 and 9; a ReLU after every convolution
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU))]
    after = {i + 1: type(layers[layers.index(c) + 1]).__name__ for i, c in enumerate(convs)}
    assert [n for n, kind in after.items() if kind == "BatchNorm2d"] == [2, 3, 5, 6, 8, 9]
    for n, c in enumerate(convs, 1):
        follows = layers[layers.index(c) + 1 : layers.index(c) + 3]
        assert any(isinstance(m, nn.ReLU) for m in follows), f"conv_{n} has no ReLU"
    # conv_1..3 on the LR image, x2 after conv_3 and after conv_6, conv_7.. at HR
    sizes = {}
    for n in (1, 4, 7, 10):
        convs[n - 1].register_forward_pre_hook(lambda m, i, n=n: sizes.update({n: i[0].shape[-1]}))
    assert model(torch.rand(1, 3, 12, 12)).shape == (1, 3, 48, 48)
    assert sizes == {1: 12, 4: 24, 7: 48, 10: 48}
    # x2: one upsampling stage, after conv_3; x3: one bilinear x3 stage
    assert build_model(ModelParams(name="rescnn"), 2)(torch.rand(1, 3, 12, 12)).shape == (1, 3, 24, 24)
    assert build_model(ModelParams(name="rescnn"), 3)(torch.rand(1, 3, 12, 12)).shape == (1, 3, 36, 36)


def test_nearest_is_a_degradation_for_training_and_test_inputs_and_an_upsampler(photo, rng):
    from srlab.data.degrade import downscale
    from srlab.params import DEGRADATIONS

    p = parse_params(
        {"data": {"degradation": "nearest"}, "eval": {"degradation": "nearest"}, "model": {"upsample": "nearest"}}
    )
    assert (p.data.degradation, p.eval.degradation, p.model.upsample) == ("nearest",) * 3
    hr = photo[:64, :64]
    assert np.array_equal(downscale(hr, 2, "nearest"), hr[1::2, 1::2])  # the grader's resize: one pixel of each 2x2
    assert "nearest" in DEGRADATIONS  # so data.degradation mixed draws it too
    mixed = crop_pairs(photo, 2, 16, 64, Degradation("mixed"), rng)
    nearest = [np.array_equal(lr, hr[1::2, 1::2]) for lr, hr in zip(mixed.lr, mixed.hr)]
    assert 0 < sum(nearest) < len(nearest)
    from srlab.models.srcnn import SRCNN

    residual, plain = build_model(p.model, 2), SRCNN(2, "nearest", residual=False)
    plain.load_state_dict(residual.state_dict())
    lr = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close(residual(lr) - plain(lr), lr.repeat_interleave(2, -1).repeat_interleave(2, -2))


# -- the SRResNet / SRGAN note ---------------------------------------------------------------------


def test_srgan_notes_discriminator_has_its_block_list_and_dense_head():
    """`note`: the input conv 3 -> 64 at stride 1, then the note's blocks (64,64,2), (64,128,1),
    (128,128,2), (128,256,1), (256,512,1), (512,512,2); the Dense 1024 head on the flattened
    features, the nearest working reading of its code (138 M weights at 128 px crops, most of them
    the first Dense). `dense` stays the paper's 8 convs and dense head."""
    note = build_discriminator("note", 128)
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in _convs(note)] == [
        (3, 64, 1),
        (64, 64, 2),
        (64, 128, 1),
        (128, 128, 2),
        (128, 256, 1),
        (256, 512, 1),
        (512, 512, 2),
    ]
    dense = [m for m in note.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(512 * 16 * 16, 1024), (1024, 1)]
    assert note(torch.rand(2, 3, 128, 128)).shape == (2,)
    paper = build_discriminator("dense", 128)
    assert [(c.out_channels, c.stride[0]) for c in _convs(paper)] == [
        (64, 1),
        (64, 2),
        (128, 1),
        (128, 2),
        (256, 1),
        (256, 2),
        (512, 1),
        (512, 2),
    ]
    assert [(m.in_features, m.out_features) for m in paper.modules() if isinstance(m, nn.Linear)] == [
        (512 * 8 * 8, 1024),
        (1024, 1),
    ]
    with pytest.raises(SrlabError, match="dense needs HR crops of a multiple of 16"):
        build_discriminator("dense", 100)
    with pytest.raises(SrlabError, match="note needs HR crops of a multiple of 8"):
        build_discriminator("note", 100)


def test_content_plus_adversarial_without_a_pixel_term_is_allowed_and_nothing_at_all_is_refused():
    p = parse_params(
        {"loss": {"pixel_in_perceptual": False, "vgg_weight": 0, "vgg19_weight": 1, "adversarial_weight": 1e-3}}
    )
    weights = {k: w for k, w in p.loss.second_stage_weights().items() if w > 0}
    assert weights == {"vgg19": 1.0, "adversarial": 1e-3}
    assert p.loss.pixel_weights()["mse"] == 1.0  # train_mse, the SRResNet pre-training, keeps MSE
    with pytest.raises(SrlabError, match="train_perceptual would train on nothing"):
        parse_params({"loss": {"pixel_in_perceptual": False, "vgg_weight": 0}})
    with pytest.raises(SrlabError, match="train_mse needs at least one above 0"):
        parse_params({"loss": {"mse_weight": 0}})


def test_srgan_logs_its_discriminator_loss_keeps_it_with_the_best_checkpoints_and_has_its_own_rate(tmp_path, patches):
    p = parse_params(
        {
            "model": {"name": "srresnet", "discriminator": "dense"},
            "loss": {"pixel_in_perceptual": False, "vgg_weight": 0, "vgg19_weight": 1, "adversarial_weight": 1e-3},
            "train": {
                "batch_size": 8,
                "device": "cpu",
                "perceptual_epochs": 2,
                "lr": 1e-4,
                "discriminator_lr": 4e-4,
                "crop_size": 16,
            },
        }
    )
    job = TrainJob.for_stage("perceptual", p, patches, tmp_path / "g.safetensors", tmp_path / "ck")
    meta = train(job)
    assert all(row["train/discriminator"] > 0 for row in meta["history"])
    assert "train/objective_l_mse" not in meta["history"][0]  # no pixel term in the objective
    for name in ("best_psnr.pt", "best_ssim.pt"):
        assert "discriminator" in checkpoint.load(tmp_path / "ck" / name)
    last = checkpoint.load(tmp_path / "ck" / "last.pt")
    assert last["optimizer"]["param_groups"][0]["lr"] == 1e-4 and last["optimizer_d"]["param_groups"][0]["lr"] == 4e-4


@pytest.mark.parametrize(
    "name, model, block",
    [("res_loss_18_4", "resnet18", 4), ("res_loss_34_3", "resnet34", 3), ("res_loss_34_5", "resnet34", 5)],
)
def test_srgan_notes_resnet_content_losses_take_the_ith_residual_block_counted_from_the_first(name, model, block):
    """As the note's text says (its code skips layer1 and counts stages instead: docs/notes.md)."""
    from srlab.backbones import backbone
    from srlab.losses.content import resnet_features

    net = backbone(model, "random", 0, param="loss.resnet_init")
    x = torch.rand(1, 3, 48, 48)
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for i, residual in enumerate([*net.layer1, *net.layer2, *net.layer3, *net.layer4], start=1):
        h = residual(h)
        if i == block:
            break
    assert torch.equal(resnet_features(model, block, "random", 0)(x), h), name
    p = parse_params({"loss": {"resnet_weight": 1.0, "resnet_model": model, "resnet_block": block}})
    assert (p.loss.resnet_model, p.loss.resnet_block) == (model, block)


def test_a_resnet_block_past_the_networks_last_is_one_line():
    with pytest.raises(SrlabError, match="resnet_block: 9 is past the last of resnet18's 8 residual blocks"):
        parse_params({"loss": {"resnet_block": 9}})
    assert parse_params({"loss": {"resnet_block": 16, "resnet_model": "resnet34"}}).loss.resnet_block == 16


def test_random_rotation_keeps_lr_and_hr_an_exact_pair(photo):
    from srlab.data.augment import draw_rotations, rotation
    from srlab.data.degrade import downscale, rotate

    p = parse_params({"data": {"scale": 4}, "train": {"rotate_degrees": 10, "batch_size": 4}})
    angles, kernels = draw_rotations(p, torch.Generator().manual_seed(0))
    assert angles.abs().max() <= 10 and len(set(angles.tolist())) == 4 and kernels == ["bicubic"] * 4
    hr = torch.from_numpy(np.stack([photo[:32, :32]] * 4)).permute(0, 3, 1, 2)
    lr, rotated = rotation(p, angles, kernels)(hr)
    assert lr.shape == (4, 3, 8, 8) and rotated.shape == hr.shape and lr.dtype == torch.uint8
    for i, angle in enumerate(angles.tolist()):
        turned = rotate(photo[:32, :32], angle)
        assert np.array_equal(rotated[i].permute(1, 2, 0).numpy(), turned)
        assert np.array_equal(lr[i].permute(1, 2, 0).numpy(), downscale(turned, 4, "bicubic"))
    assert np.array_equal(rotate(photo, 0.0), photo)


def test_evaluate_scores_the_notes_way_beside_the_published_one(tmp_path, photo):
    from srlab.evaluation import evaluate
    from srlab.models.srcnn import SRCNN

    torch.manual_seed(0)
    model = tmp_path / "m.safetensors"
    checkpoint.save_model(
        model, SRCNN(2).state_dict(), {"arch": "srcnn", "scale": 2, "upsample": "bicubic", "residual": True}
    )
    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params({"eval": {"sets": ["Set5"], "rgb": True}, "train": {"device": "cpu"}})
    summary, _ = evaluate(params, tmp_path / "test", {"srcnn_mse": model}, tmp_path / "sr")
    sr = np.asarray(Image.open(tmp_path / "sr" / "Set5" / "srcnn_mse" / "a.png")).astype(np.float64)
    rgb_psnr = 10 * np.log10(255.0**2 / np.mean((sr - photo[:96, :120]) ** 2))  # all of it, RGB, no border shaved
    assert summary["Set5"]["srcnn_mse"]["rgb_psnr"] == pytest.approx(rgb_psnr, abs=1e-5)
    assert summary["Set5"]["srcnn_mse"]["rgb_psnr"] != summary["Set5"]["srcnn_mse"]["psnr"]
    assert 0 < summary["Set5"]["srcnn_mse"]["rgb_ssim"] <= 1
    assert "rgb_psnr and rgb_ssim: RGB, no border shaved" in summary["provenance"]["metric"]


# -- the perceptual-losses note (Johnson et al.) ---------------------------------------------------


def test_x8_for_every_model_whose_design_allows_it():
    """(Each builds and returns x8 outputs in tests/test_models.py's cases.)"""
    from srlab.models import MODELS, SCALES

    assert parse_params({"data": {"scale": 8, "hr_size": 64}}).data.scale == 8
    assert {name for name in MODELS if 8 in SCALES.get(name, (8,))} == {
        "srcnn",
        "srcnn915",
        "srresnet",
        "edsr",
        "johnson",
    }


def test_johnson_upsamples_with_the_notes_4x4_fractionally_strided_convolutions():
    model = build_model(ModelParams(name="johnson"), 8)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 3 and all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in ups)
    with pytest.raises(SrlabError, match="rescnn supports data.scale 2, 3, 4, not 8"):
        build_model(ModelParams(name="rescnn"), 8)


def test_a_feature_only_objective_trains_from_scratch(tmp_path, patches):
    p = parse_params(
        {
            "model": {"name": "johnson"},
            "loss": {"pixel_in_perceptual": False},
            "train": {
                "batch_size": 4,
                "lr": 1e-3,
                "device": "cpu",
                "perceptual_epochs": 1,
                "perceptual_init": "scratch",
            },
        }
    )
    job = TrainJob.for_stage(
        "perceptual", p, patches, tmp_path / "j.safetensors", tmp_path / "ck", init_from=tmp_path / "unused"
    )
    assert job.init_from is None and {k for k, w in job.weights.items() if w > 0} == {"perceptual"}
    meta = train(job)
    assert meta["loss_weights"] == {"perceptual": 1.0}
    assert meta["history"][0]["train/loss"] == meta["history"][0]["train/objective_l_perceptual"]


def test_the_test_sets_are_scored_at_x8(tmp_path, photo):
    from srlab.evaluation import evaluate

    model = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    checkpoint.save_model(
        model,
        build_model(ModelParams(name="johnson"), 8).state_dict(),
        {"arch": "johnson", "scale": 8, "upsample": "bicubic", "residual": True},
    )
    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params(
        {
            "data": {"scale": 8, "hr_size": 64},
            "model": {"name": "johnson"},
            "eval": {"sets": ["Set5"]},
            "train": {"device": "cpu"},
        }
    )
    summary, _ = evaluate(params, tmp_path / "test", {"johnson_mse": model}, tmp_path / "sr")
    assert summary["provenance"]["scale"] == 8 and np.isfinite(summary["Set5"]["bicubic"]["psnr"])
    assert Image.open(tmp_path / "sr" / "Set5" / "johnson_mse" / "a.png").size == (
        120,
        96,
    )  # 96 x 120 is a multiple of 8


def test_srcnn_note_flags_are_shortcuts_for_their_params():
    """--cuda, --lr, --batch-size, --num-epoch and --save-freq, on `srlab train` and `srlab resume`."""
    import argparse

    from srlab.cli import add_note_flags, note_flags

    parser = argparse.ArgumentParser()
    add_note_flags(parser)
    args = parser.parse_args(["--cuda", "--lr", "1e-4", "--batch-size=128", "--num-epoch=200", "--save-freq", "10"])
    assert note_flags(args, "mse") == [
        "train.device=cuda",
        "train.lr=0.0001",
        "train.batch_size=128",
        "train.epochs=200",
        "train.save_every=10",
    ]
    assert "train.perceptual_epochs=200" in note_flags(args, "perceptual")  # a perceptual run's epoch count
    assert note_flags(parser.parse_args([]), "mse") == []
