"""The model zoo: every model's output size at each scale, its structure, and that it can learn."""

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models import MODELS, SCALES, build_discriminator, build_model, count_parameters, flops_per_output_pixel
from srlab.models.srcnn import SRCNN
from srlab.params import ModelParams

CASES = [(name, scale) for name in MODELS for scale in (2, 3, 4, 8) if scale in SCALES.get(name, (2, 3, 4, 8))]


@pytest.mark.parametrize("name, scale", CASES)
def test_every_model_takes_lr_and_returns_hr_size(name, scale):
    model = build_model(ModelParams(name=name), scale)
    assert model.takes_lr
    lr = torch.rand(2, 3, 10, 13)
    assert model(lr).shape == (2, 3, 10 * scale, 13 * scale)


def test_a_scale_a_model_cannot_do_is_one_line():
    with pytest.raises(SrlabError, match="model.name: johnson supports data.scale 2, 4, 8, not 3"):
        build_model(ModelParams(name="johnson"), 3)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_overfits_one_patch(name, photo):
    """60 Adam steps on one pair cut from a photo: the loss must fall to a fifth (a model that
    cannot learn, or whose gradient is cut somewhere, fails this)."""
    torch.manual_seed(0)
    model = build_model(ModelParams(name=name), 2)
    hr = torch.tensor(photo[:32, :32]).permute(2, 0, 1)[None].float() / 255
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(lr), hr)
        first = first if first is not None else float(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < first / 5, (name, first, float(loss))


def test_srcnn_is_9_5_5_with_64_and_32_channels():
    model = SRCNN(scale=2)
    convs = [model.extract, model.map, model.reconstruct]
    assert [c.kernel_size for c in convs] == [(9, 9), (5, 5), (5, 5)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 32), (32, 3)]
    assert count_parameters(model) == (9 * 9 * 3 * 64 + 64) + (5 * 5 * 64 * 32 + 32) + (5 * 5 * 32 * 3 + 3)
    # FLOPs per output pixel: two per multiply-add of the three convolutions at HR resolution
    assert flops_per_output_pixel(model) == 2 * (9 * 9 * 3 * 64 + 5 * 5 * 64 * 32 + 5 * 5 * 32 * 3)


def test_srcnn915_has_a_1x1_mapping_layer():
    model = build_model(ModelParams(name="srcnn915"), 3)
    assert model.map.kernel_size == (1, 1)


def test_residual_adds_the_upsampled_input():
    lr = torch.rand(1, 3, 8, 8)
    plain, residual = SRCNN(2, residual=False), SRCNN(2, residual=True)
    residual.load_state_dict(plain.state_dict())
    up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(residual(lr), plain(lr) + up)


def test_srresnet_has_16_batch_norm_blocks_and_pixel_shuffle():
    model = build_model(ModelParams(name="srresnet"), 4)
    assert len(model.body) == 16
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in model.modules()) == 2
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.body.modules())


def test_edsr_has_no_batch_norm_and_scales_its_residuals():
    model = build_model(ModelParams(name="edsr"), 2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.body[0].res_scale == 0.1


def test_johnson_output_is_a_scaled_tanh_in_0_1():
    model = build_model(ModelParams(name="johnson"), 4)
    out = model(torch.rand(1, 3, 8, 8) * 50)  # saturating input
    assert out.min() >= 0 and out.max() <= 1
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules()) == 2


def test_discriminator_gives_one_logit_per_image_at_any_size():
    d = build_discriminator()
    assert d(torch.rand(3, 3, 32, 32)).shape == (3,) and d(torch.rand(2, 3, 48, 40)).shape == (2,)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_fine_tunes_scores_and_plots_as_the_stages_do(tmp_path, photo, rng, name):
    """What `dvc exp run -S model.name=NAME` runs, stage by stage, in-process on tiny data: the MSE
    training, the perceptual fine-tuning from its model file, the evaluation beside bicubic and the
    comparison figure. (The DVC mechanics around them, the same for every model, are in
    tests/test_pipeline.py.)"""
    import math

    import pandas as pd

    from srlab.data.images import load_rgb, save_png
    from srlab.data.patches import Degradation, crop_pairs
    from srlab.data.store import save_pairs
    from srlab.evaluation import evaluate
    from srlab.params import parse_params
    from srlab.plotting import comparison_figure
    from srlab.training import TrainJob, train

    p = parse_params(
        {
            "model": {"name": name},
            "data": {"hr_size": 16},
            "eval": {"sets": ["Set5"]},
            "train": {"batch_size": 8, "device": "cpu", "epochs": 1, "perceptual_epochs": 1},
        }
    )
    patches = tmp_path / "patches"
    save_pairs(patches, "train", crop_pairs(photo, 2, 16, 16, Degradation("bicubic"), rng))
    save_pairs(patches, "val", crop_pairs(photo, 2, 16, 8, Degradation("bicubic"), rng))
    models = {f"{name}_mse": tmp_path / "mse.safetensors", f"{name}_perceptual": tmp_path / "perceptual.safetensors"}
    train(TrainJob.for_stage("mse", p, patches, models[f"{name}_mse"], tmp_path / "ck_mse"))
    tuned = train(
        TrainJob.for_stage(
            "perceptual", p, patches, models[f"{name}_perceptual"], tmp_path / "ck_p", init_from=models[f"{name}_mse"]
        )
    )
    assert tuned["loss_weights"] == {"mse": 1.0, "perceptual": 1.0}
    (tmp_path / "test" / "Set5").mkdir(parents=True)
    save_png(tmp_path / "test" / "Set5" / "a.png", photo)
    summary, table = evaluate(p, tmp_path / "test", models, tmp_path / "sr")
    assert set(summary["Set5"]) == {"bicubic", *models} and summary["provenance"]["model"] == name
    for m in models:  # each wrote a whole output image and got a score (two steps teach nothing more)
        out = load_rgb(tmp_path / "sr" / "Set5" / m / "a.png")[0]
        assert out.shape == photo.shape and math.isfinite(summary["Set5"][m]["psnr"])
    scores = pd.DataFrame(table[table.image == "a"]).set_index("method")
    outputs = {m: tmp_path / "sr" / "Set5" / m / "a.png" for m in ("bicubic", *models)}
    comparison_figure(tmp_path / "test" / "Set5" / "a.png", outputs, scores, 64, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 10_000


def test_each_list_of_names_has_one_source_that_the_registries_follow():
    """Adding a model, a degradation, a test set or a backbone is one edit, and the params, the
    registries and the CLI cannot drift apart."""
    from srlab import backbones, params
    from srlab.cli import main
    from srlab.data import degrade, sources

    assert tuple(MODELS) == params.MODELS  # every model the params accept is built, and no other
    assert set(degrade.RESAMPLE) | {"gaussian"} == set(params.DEGRADATIONS)  # gaussian: a blur, then bicubic
    assert tuple(sources.TEST_SETS) == params.TEST_SETS
    used = [
        name
        for resnet in params.RESNET_BLOCKS
        for name, _, _ in backbones.used_by(params.LossParams(vgg19_weight=1.0, resnet_weight=1.0, resnet_model=resnet))
    ]
    assert sorted(set(used)) == sorted(backbones.BACKBONES)
    for resnet, blocks in params.RESNET_BLOCKS.items():  # the block counts the params check against
        net = backbones.BACKBONES[resnet].build(weights=None)
        assert len([*net.layer1, *net.layer2, *net.layer3, *net.layer4]) == blocks
    with pytest.raises(SystemExit):
        main(["download-test-sets", "x", "--sets", "Set99"])  # the CLI takes its choices from the same list
