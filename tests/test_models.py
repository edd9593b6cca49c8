"""SRCNN as the design note describes it."""

import pytest
import torch

from srlab.models import MODELS, build_model, count_parameters
from srlab.models.srcnn import SRCNN
from srlab.params import ModelParams


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srcnn_takes_lr_and_returns_hr_size(scale):
    model = build_model(ModelParams(), scale)
    lr = torch.rand(2, 3, 10, 13)
    assert model(lr).shape == (2, 3, 10 * scale, 13 * scale)


def test_srcnn_is_9_5_5_with_64_and_32_channels():
    model = SRCNN(scale=2)
    convs = [model.extract, model.map, model.reconstruct]
    assert [c.kernel_size for c in convs] == [(9, 9), (5, 5), (5, 5)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 32), (32, 3)]
    assert count_parameters(model) == (9 * 9 * 3 * 64 + 64) + (5 * 5 * 64 * 32 + 32) + (5 * 5 * 32 * 3 + 3)


def test_residual_adds_the_upsampled_input():
    lr = torch.rand(1, 3, 8, 8)
    plain, residual = SRCNN(2, residual=False), SRCNN(2, residual=True)
    residual.load_state_dict(plain.state_dict())
    up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(residual(lr), plain(lr) + up)


def test_registry_names_every_model():
    assert set(MODELS) == {"srcnn"}
