"""Published checkpoints through spandrel: each architecture's file built here from a randomly
initialised model (tiny configurations) and saved as its official repository saves it, then
detected, checked for scale and scored by srlab's own evaluation. No weights are downloaded."""

from __future__ import annotations

import argparse
import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.errors import SrlabError
from srlab.inference import CHANNELS_LAST, super_resolve
from srlab.published import load_published

# architecture (spandrel's name): (spandrel module, class, tiny hyper-parameters, how the official
# repository saves its weights: None for a bare state dict, else the key it is stored under)
ARCHS = {
    "SwinIR": ("SwinIR", "SwinIR", dict(upscale=2, img_size=8, window_size=4, embed_dim=12, depths=[1],
               num_heads=[2], mlp_ratio=2.0, upsampler="pixelshuffle", resi_connection="1conv"), "params"),
    "HAT": ("HAT", "HAT", dict(upscale=2, img_size=8, window_size=4, embed_dim=12, depths=[1], num_heads=[2],
            compress_ratio=3, squeeze_factor=4, mlp_ratio=2.0, num_feat=16), "params_ema"),
    "RCAN": ("RCAN", "RCAN", dict(scale=2, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4), None),
    "SPAN": ("SPAN", "SPAN", dict(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2), "params"),
    "PLKSR": ("PLKSR", "PLKSR", dict(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7), "params"),
    "SAFMN": ("SAFMN", "SAFMN", dict(dim=16, n_blocks=1, upscaling_factor=2), "params"),
    "OmniSR": ("OmniSR", "OmniSR", dict(num_feat=16, window_size=4, up_scale=2), "params"),
    "DAT": ("DAT", "DAT", dict(upscale=2, img_size=8, embed_dim=32, split_size=[2, 4], depth=[1],
            num_heads=[2], expansion_factor=2.0), "params"),
    "ESRGAN": ("ESRGAN", "ESRGAN", dict(num_filters=8, num_blocks=1, scale=2), None),
    "RealESRGAN Compact": ("Compact", "Compact", dict(num_feat=8, num_conv=2, upscale=2), "params"),
}  # fmt: skip


def _checkpoint(tmp_path, name: str, scale: int = 2):
    module, cls, kwargs, key = ARCHS[name]
    kwargs = dict(kwargs)
    for scale_key in ("upscale", "scale", "upscaling_factor", "up_scale"):
        if scale_key in kwargs:
            kwargs[scale_key] = scale
    torch.manual_seed(0)
    model = getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls)(**kwargs).eval()
    state = model.state_dict()
    path = tmp_path / f"{name.replace(' ', '_')}_x{scale}.pth"
    torch.save(state if key is None else {key: state}, path)
    return path, model


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_published_architecture_is_detected_at_its_scale_and_runs_as_its_own_code_does(tmp_path, name, photo):
    path, original = _checkpoint(tmp_path, name)
    model, meta = load_published(path, scale=2)
    assert meta["scale"] == 2 and meta["sha256"] and meta["loader"].startswith("spandrel ")
    assert meta["arch"] == name  # detected from the weights' names and shapes alone
    lr = photo[:16, :16]
    out = super_resolve(model.to(memory_format=CHANNELS_LAST), lr, "cpu", raw=True)  # as evaluate runs it
    assert out.shape == (32, 32, 3)
    with torch.no_grad():  # the architecture's own forward on the same input, clamped as srlab's output is
        expected = original(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255).clamp(0, 1)
    assert np.allclose(out, expected[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_a_published_checkpoint_is_scored_by_evaluate_beside_bicubic_with_its_provenance(tmp_path, photo):
    from srlab.evaluation import evaluate
    from srlab.metrics import psnr_y
    from srlab.params import parse_params

    path, _ = _checkpoint(tmp_path, "RealESRGAN Compact")
    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo[:48, :64]).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params({"eval": {"sets": ["Set5"], "models": [path.name]}, "train": {"device": "cpu"}})
    summary, table = evaluate(params, tmp_path / "test", {}, tmp_path / "sr", {path.stem: path})
    assert list(summary["Set5"]) == ["bicubic", path.stem]
    out = np.asarray(Image.open(tmp_path / "sr" / "Set5" / path.stem / "a.png"))
    assert summary["Set5"][path.stem]["psnr"] == pytest.approx(psnr_y(out, photo[:48, :64], 2), abs=1e-6)
    made = summary["provenance"]["published"][path.stem]
    assert (made["arch"], made["scale"], made["file"]) == ("RealESRGAN Compact", 2, path.name)

    # and the results page shows it beside bicubic: a panel of its output, its scores, the table's row
    import json

    from conftest import page_data

    from srlab.page import Layout, Run, workspace, write_page

    table.to_csv(tmp_path / "per_image.csv", index=False)
    (tmp_path / "metrics.json").write_text(json.dumps(summary))
    layout = Layout("metrics.json", "per_image.csv", "test", "sr", lives=())
    page = write_page([Run("", workspace(tmp_path), layout)], tmp_path / "page", "t")
    data = page_data(page)
    shown = data["sets"]["Set5"]
    assert shown["summary"][path.stem] == summary["Set5"][path.stem]
    panel = np.asarray(Image.open(page.parent / shown["images"][0]["panels"][path.stem]))
    assert np.array_equal(panel, out) and "RealESRGAN Compact x2" in " ".join(data["notes"])


def test_the_cli_scores_a_published_checkpoint_as_evaluate_does(tmp_path, mirror, capsys, monkeypatch):
    from srlab.cli import main

    path, _ = _checkpoint(tmp_path, "RealESRGAN Compact")
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(mirror))
    monkeypatch.chdir(tmp_path)
    main(["evaluate", str(path), "--sets", "Set5", "--device", "cpu"])
    out = capsys.readouterr().out
    assert f"Set5      {path.stem[:15]}" in out and "bicubic" in out
    assert "RealESRGAN Compact x2 (spandrel" in out


def test_a_pickle_that_is_not_a_plain_state_dict_is_refused_in_one_line(tmp_path):
    path = tmp_path / "hostile.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "args": argparse.Namespace(scale=2)}, path)
    with pytest.raises(SrlabError, match=r"hostile.pth: not a plain state dict, refused by spandrel's restricted"):
        load_published(path)


def test_an_architecture_spandrel_does_not_detect_is_refused_in_one_line(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"body.0.weight": torch.zeros(8, 3, 3, 3), "tail.weight": torch.zeros(3, 8, 3, 3)}, path)
    with pytest.raises(SrlabError, match=r"mystery.pth: spandrel [\d.]+ does not detect this architecture"):
        load_published(path)


def test_a_checkpoint_of_another_scale_is_refused_in_one_line(tmp_path):
    path, _ = _checkpoint(tmp_path, "SPAN", scale=4)
    with pytest.raises(SrlabError, match=r"SPAN_x4.pth: SPAN x4, but data.scale is 2"):
        load_published(path, scale=2)


def _official_edsr(channels: int, blocks: int, scale: int) -> dict:
    """A state dict laid out as EDSR-PyTorch saves its models (random weights, as an OrderedDict)."""
    from collections import OrderedDict

    gen = torch.Generator().manual_seed(0)
    state = OrderedDict()

    def conv(name, c_in, c_out):
        state[f"{name}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * 0.05
        state[f"{name}.bias"] = torch.randn(c_out, generator=gen) * 0.01

    mean = 255 * torch.tensor([0.4488, 0.4371, 0.4040])  # MeanShift(rgb_range=255): a 1x1 conv
    state["sub_mean.weight"], state["sub_mean.bias"] = torch.eye(3).view(3, 3, 1, 1), -mean
    state["add_mean.weight"], state["add_mean.bias"] = torch.eye(3).view(3, 3, 1, 1), mean
    conv("head.0", 3, channels)
    for b in range(blocks):
        conv(f"body.{b}.body.0", channels, channels)
        conv(f"body.{b}.body.2", channels, channels)
    conv(f"body.{blocks}", channels, channels)
    for k, factor in enumerate({2: [2], 3: [3], 4: [2, 2]}[scale]):
        conv(f"tail.0.{2 * k}", channels, channels * factor * factor)
    conv("tail.1", channels, 3)
    return state


def _edsr_forward(state: dict, x: torch.Tensor, blocks: int, scale: int) -> torch.Tensor:
    """EDSR-PyTorch's forward (src/model/edsr.py, res_scale 1), written out with F.conv2d on its names."""
    import torch.nn.functional as F

    def conv(t, name):
        weight = state[f"{name}.weight"]
        return F.conv2d(t, weight, state[f"{name}.bias"], padding=weight.shape[-1] // 2)

    x = conv(x * 255, "sub_mean")
    x = conv(x, "head.0")
    res = x
    for b in range(blocks):
        res = res + conv(F.relu(conv(res, f"body.{b}.body.0")), f"body.{b}.body.2")
    res = conv(res, f"body.{blocks}") + x
    for k, factor in enumerate({2: [2], 3: [3], 4: [2, 2]}[scale]):
        res = F.pixel_shuffle(conv(res, f"tail.0.{2 * k}"), factor)
    return (conv(conv(res, "tail.1"), "add_mean") / 255).clamp(0, 1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_an_official_edsr_checkpoint_which_spandrel_lacks_is_mapped_onto_srlabs_edsr(tmp_path, photo, scale):
    state = _official_edsr(channels=8, blocks=2, scale=scale)
    path = tmp_path / f"edsr_baseline_x{scale}.pt"
    torch.save(state, path)
    model, meta = load_published(path, scale=scale)
    assert (meta["arch"], meta["scale"]) == ("EDSR (EDSR-PyTorch)", scale)
    lr = photo[:12, :16]
    out = super_resolve(model.to(memory_format=CHANNELS_LAST), lr, "cpu", raw=True)
    with torch.no_grad():
        expected = _edsr_forward(state, torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255, 2, scale)
    assert np.allclose(out, expected[0].permute(1, 2, 0).numpy(), atol=1e-5)
    with pytest.raises(SrlabError, match=rf"EDSR \(EDSR-PyTorch\) x{scale}, but data.scale is 8"):
        load_published(path, scale=8)
