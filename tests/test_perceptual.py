"""The VGG16 perceptual loss: which layers are tapped, how they are weighted, and that VGG is frozen."""

from pathlib import Path

import pytest
import torch
from torch import nn

import srlab.backbones as backbones
from srlab.errors import SrlabError
from srlab.losses import SRLoss, build_terms, build_vgg16_loss
from srlab.losses.perceptual import RELU_INDEX, VGGPerceptualLoss
from srlab.params import LayerWeights, LossParams


@pytest.fixture(scope="module")
def features():
    return backbones.vgg16_features("random", seed=0)


def test_taps_are_the_relus_after_conv1_2_conv2_2_conv3_3_conv4_3(features):
    # relu_k_m follows the m-th conv of block k, whose output widths are 64, 128, 256, 512
    widths = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512}
    for name, index in RELU_INDEX.items():
        assert isinstance(features[index], nn.ReLU), name
        assert isinstance(features[index - 1], nn.Conv2d) and features[index - 1].out_channels == widths[name]
        convs_in_block = [m for m in features[: index + 1] if isinstance(m, nn.Conv2d)]
        assert len(convs_in_block) == {"relu1_2": 2, "relu2_2": 4, "relu3_3": 7, "relu4_3": 10}[name]


def test_network_is_cut_after_the_deepest_weighted_layer(features):
    loss = VGGPerceptualLoss(features, {"relu1_2": 1.0, "relu2_2": 0.5, "relu3_3": 0.0, "relu4_3": 0.0})
    assert len(loss.trunk) == RELU_INDEX["relu2_2"] + 1
    assert set(loss.extract(torch.rand(1, 3, 16, 16))) == {"relu1_2", "relu2_2"}


def test_layer_weights_scale_each_term(features):
    out, target = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    one = VGGPerceptualLoss(features, {"relu1_2": 1.0})(out, target)
    three = VGGPerceptualLoss(features, {"relu1_2": 3.0})(out, target)
    both = VGGPerceptualLoss(features, {"relu1_2": 1.0, "relu2_2": 1.0})(out, target)
    only2 = VGGPerceptualLoss(features, {"relu2_2": 1.0})(out, target)
    torch.testing.assert_close(three, 3 * one)
    torch.testing.assert_close(both, one + only2)


def test_inputs_are_imagenet_normalised(features):
    loss = VGGPerceptualLoss(features, {"relu1_2": 1.0})
    grey = torch.full((1, 3, 8, 8), 0.5)
    expected = features[:4]((grey - loss.mean) / loss.std)
    torch.testing.assert_close(loss.extract(grey)["relu1_2"], expected)


def test_vgg_is_frozen_and_gradients_reach_the_output(features):
    loss = build_vgg16_loss("random", 0, LayerWeights())
    assert not any(p.requires_grad for p in loss.parameters())
    assert not loss.trunk.training
    out = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(out, torch.rand(1, 3, 16, 16)).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_random_backbone_is_seeded_and_leaves_training_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = backbones.vgg16_features("random", seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = backbones.vgg16_features("random", seed=7)
    c = backbones.vgg16_features("random", seed=8)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)


def test_total_loss_is_mse_plus_weighted_perceptual():
    perceptual = build_vgg16_loss("random", 0, LayerWeights())
    out, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    weights = LossParams(vgg_weight=0.3).second_stage_weights()
    total, terms = SRLoss(build_terms(LossParams(), weights, 0, perceptual), weights)(out, target)
    torch.testing.assert_close(total, terms["l_mse"] + 0.3 * terms["l_perceptual"])
    weights = LossParams().pixel_weights()
    total, terms = SRLoss(build_terms(LossParams(), weights, 0, perceptual), weights)(out, target)
    assert set(terms) == {"l_mse"}


def test_every_term_is_built_logged_and_weighted():
    from srlab.models import build_discriminator

    perceptual = build_vgg16_loss("random", 0, LayerWeights())
    loss = LossParams(
        mse_weight=1,
        l1_weight=0.5,
        ssim_weight=0.2,
        vgg_weight=0.1,
        vgg19_weight=0.01,
        resnet_weight=0.02,
        adversarial_weight=1e-3,
    )
    weights = loss.second_stage_weights()
    objective = SRLoss(build_terms(loss, weights, 0, perceptual, build_discriminator()), weights)
    out = torch.rand(2, 3, 32, 32, requires_grad=True)
    total, terms = objective(out, torch.rand(2, 3, 32, 32))
    assert set(terms) == {"l_mse", "l_l1", "l_ssim", "l_perceptual", "l_vgg19", "l_resnet", "l_adversarial"}
    torch.testing.assert_close(total, sum(weights[k[2:]] * v for k, v in terms.items()))
    total.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()
    assert all(not p.requires_grad for p in objective.terms["vgg19"].parameters())


def test_ssim_loss_is_zero_for_identical_images_and_agrees_with_the_metric(photo):
    from skimage.metrics import structural_similarity

    from srlab.losses.content import SSIMLoss

    x = torch.tensor(photo).permute(2, 0, 1)[None].float() / 255
    assert float(SSIMLoss()(x, x)) == pytest.approx(0.0, abs=1e-6)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    reference = structural_similarity(
        noisy[0].permute(1, 2, 0).numpy(),
        x[0].permute(1, 2, 0).numpy(),
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert 1 - float(SSIMLoss()(noisy, x)) == pytest.approx(reference, abs=2e-3)  # skimage pads, we do not


def test_missing_imagenet_weights_stop_with_one_line_naming_the_way_out(monkeypatch, tmp_path):
    def offline(**kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(backbones.BACKBONES["vgg16"].weights, "get_state_dict", offline, raising=False)
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path))
    with pytest.raises(SrlabError) as err:
        backbones.vgg16_features("imagenet", seed=0)
    assert "loss.vgg_init=random" in str(err.value) and "SRLAB_DATA_MIRROR" in str(err.value)


def test_weights_from_a_file_are_loaded_without_unpickling_code(tmp_path, features):
    good = tmp_path / "vgg.pth"
    torch.save(torchvision_vgg_state(), good)
    assert isinstance(backbones.vgg16_features(str(good), seed=0), nn.Sequential)
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(SrlabError, match="not a torchvision VGG16 state dict"):
        backbones.vgg16_features(str(bad), seed=0)


def test_a_weights_file_outside_data_weights_is_named_as_one_dvc_does_not_see(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # stages run at the project's root, where data/weights is
    (tmp_path / "data" / "weights").mkdir(parents=True)
    state = torchvision_vgg_state()
    for name in ("data/weights/vgg.pth", "elsewhere/vgg.pth"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, name)
    backbones.vgg16_features("data/weights/vgg.pth", seed=0)
    assert capsys.readouterr().err == ""
    backbones.vgg16_features(str(tmp_path / "elsewhere/vgg.pth"), seed=0)
    err = capsys.readouterr().err
    assert err.startswith("loss.vgg_init: ") and "outside data/weights/, which DVC hashes" in err
    assert err.count("\n") == 1


def test_imagenet_weights_are_used_only_with_the_published_hash_and_provenance_records_it(tmp_path, monkeypatch):
    """A file under torchvision's name is checked against the SHA-256 prefix in that name (what
    torch.hub checks) before use; a mismatch is one line naming the file; provenance records the
    file's full SHA-256, for ImageNet files and for a path alike."""
    import hashlib

    for folder in ("mirror", "torch"):
        (tmp_path / folder / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path / "mirror"))
    spec = backbones.BACKBONES["vgg16"]
    places = {
        "mirror": tmp_path / "mirror" / spec.filename,
        "hub": tmp_path / "torch" / "hub" / "checkpoints" / spec.filename,
    }
    for path in places.values():
        torch.save(torchvision_vgg_state(), path)  # random weights under the ImageNet name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with pytest.raises(SrlabError) as err:
            backbones.vgg16_features("imagenet", seed=0)
        line = str(err.value)
        assert (
            "\n" not in line
            and spec.filename in line
            and f"sha256 {digest[:8]}" in line
            and "expected 397923af" in line
        )
        monkeypatch.setattr(
            backbones.Backbone, "sha256_prefix", property(lambda self, d=digest: d[:8])
        )  # now it is "published"
        assert isinstance(backbones.vgg16_features("imagenet", seed=0), nn.Sequential)
        assert backbones.describe_vgg("imagenet", 0) == f"vgg16 imagenet1k_v1 (torchvision, sha256 {digest})"
        monkeypatch.undo()
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        path.unlink()
    weights = tmp_path / "mine.pth"
    torch.save(torchvision_vgg_state(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert backbones.describe_vgg(str(weights), 0) == f"vgg16 from {weights} (sha256 {digest})"


def torchvision_vgg_state():
    from torchvision.models import vgg16

    return vgg16(weights=None).state_dict()


def test_backbone_stays_in_eval_mode_when_the_loss_is_put_in_train_mode():
    loss = build_vgg16_loss("random", 0, LayerWeights()).train()
    assert not loss.trunk.training


@pytest.mark.parametrize("name, param", [("vgg19", "loss.vgg19_init"), ("resnet18", "loss.resnet_init")])
def test_other_backbones_follow_the_same_imagenet_rule(monkeypatch, tmp_path, name, param):
    def offline(**kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(backbones.BACKBONES[name].weights, "get_state_dict", offline, raising=False)
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path))
    with pytest.raises(SrlabError, match=f"{param}=imagenet: cannot get .*use {param}=random"):
        backbones.backbone(name, "imagenet", seed=0, param=param)
    bad = tmp_path / "w.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(SrlabError, match=f"{param}: .* is not a torchvision"):
        backbones.backbone(name, str(bad), seed=0, param=param)
