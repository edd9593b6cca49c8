"""The model registry: {name: builder}, one builder call per run (no import-time scanning).

Every model takes the LR image (`takes_lr`) and returns the HR image, values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.edsr import EDSR
from srlab.models.johnson import JohnsonSR
from srlab.models.rescnn import ResCNN
from srlab.models.srcnn import SRCNN
from srlab.models.srresnet import NOTE_BLOCKS, Discriminator, SRResNet
from srlab.params import ModelParams

MODELS: dict[str, Callable[[ModelParams, int], nn.Module]] = {
    "srcnn": lambda p, scale: SRCNN(scale, p.upsample, p.residual),
    "srcnn915": lambda p, scale: SRCNN(scale, p.upsample, p.residual, kernels=(9, 1, 5)),
    "rescnn": lambda p, scale: ResCNN(scale),
    "srresnet": lambda p, scale: SRResNet(scale),
    "johnson": lambda p, scale: JohnsonSR(scale),
    "edsr": lambda p, scale: EDSR(scale),
}
# what each design allows: interpolation and pixel shuffle take any of 2, 3, 4 and 8; Johnson's
# stride-2 path only powers of two; ResCNN's table has stages for 2, 3 and 4
SCALES = {"johnson": JohnsonSR.scales, "rescnn": ResCNN.scales}


def build_model(params: ModelParams, scale: int) -> nn.Module:
    allowed = SCALES.get(params.name, (2, 3, 4, 8))
    if scale not in allowed:
        raise SrlabError(f"model.name: {params.name} supports data.scale {', '.join(map(str, allowed))}, not {scale}")
    return MODELS[params.name](params, scale)


def build_discriminator(kind: str = "pooled", size: int = 96) -> nn.Module:
    """SRGAN's discriminator (model.discriminator): `pooled`, the paper's convs with a pooled head
    (any crop size); `dense`, the paper's own (a dense head sized for `size`-pixel HR crops);
    `note`, the SRGAN note's block list with the dense head its code means."""
    if kind == "note":
        return Discriminator("dense", size, NOTE_BLOCKS, name="note")
    return Discriminator(kind, size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def flops_per_output_pixel(model: nn.Module, lr_size: int = 32) -> float:
    """Multiply-adds of the convolutions (2 FLOPs each) per HR output pixel, counted with hooks."""
    total, out = conv_flops(model, torch.zeros(1, 3, lr_size, lr_size))
    return total / (out.shape[-1] * out.shape[-2])


def conv_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """FLOPs of the convolutions of one forward pass of `model` on `x` (2 per multiply-add), and its output."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * per_out * output.numel()
        elif isinstance(module, nn.ConvTranspose2d):  # each input value meets every kernel weight once
            total += 2 * inputs[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total, out
